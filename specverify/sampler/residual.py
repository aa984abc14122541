"""The one-dimensional residual draw shared by the verifiers beyond reflection (``../shared/VERIFIERS.md``).

Write a step's state as X = m_dr + s (S e + W), e = (m_tg - m_dr) / (s delta): S is N(0, 1) under the draft and
N(delta, 1) under the target. Both D-GRS (after K rejected drafts) and block verification (after an accepted
prefix) draw S from a density proportional to (a phi(s - delta) - b phi(s))_+ with a, b > 0. It is positive on
s > t = delta / 2 + log(b / a) / delta, and its mass above s is R(s) = a Q(s - delta) - b Q(s) (Q = 1 - Phi),
so S = R^{-1}((1 - u) R(t)), in log space (R(t) underflows once t passes about 37): a few halvings of
[t, t + SPAN], then Newton steps on log R (concave: from either side of the root, Newton lands on its right and
then descends to it monotonically, quadratically), each kept inside the bracket. Everything here is float64 and
takes log a, log b (a may underflow).
"""

from __future__ import annotations

import dataclasses
import math

import torch

__all__ = ["BISECTIONS", "NEWTON", "SPAN", "Frame", "compose_state", "crossing", "log_mass_above", "mass_above",
           "normal_sf", "residual_projection", "tolerance"]

BISECTIONS = 24  # halvings of the bracket: a width of 40 ends near 2.4e-6
NEWTON = 6  # then Newton steps: quadratic from there (linear only within ~1e-6 of t)
SPAN = 40.0  # the bracket is [t, t + SPAN]: the residual's mass above t + 40 is below Q(38) ~ 1e-316


def normal_sf(x: torch.Tensor) -> torch.Tensor:
    """Q(x) = 1 - Phi(x), accurate in the upper tail (``torch.special.ndtr(-x)`` is 0 from x = 15 on)."""
    return 0.5 * torch.special.erfc(x / math.sqrt(2))


@dataclasses.dataclass(frozen=True)
class Frame:
    """Where a residual draw lives: the step's draft and target means ``mean_q``, ``mean_p`` (B, *shape), its
    ``sigma`` (B,) and ``dist`` |D| = |m_p - m_q| / sigma (B,); e = (m_p - m_q) / (sigma |D|)."""

    mean_q: torch.Tensor
    mean_p: torch.Tensor
    sigma: torch.Tensor
    dist: torch.Tensor


def compose_state(frame: Frame, z, proj) -> torch.Tensor:
    """m_q + sigma (S e + W): e = (m_p - m_q) / (sigma |D|), W the part of ``z`` orthogonal to e, S = ``proj``.
    z (B, *shape), proj (B,)."""
    mean_q, sigma, dist = frame.mean_q, frame.sigma, frame.dist
    shape = (-1, *[1] * (mean_q.ndim - 1))
    e = (frame.mean_p - mean_q).flatten(1) / (sigma * dist.clamp_min(torch.finfo(dist.dtype).tiny))[:, None]
    zf = z.flatten(1)
    w = zf - (zf * e).sum(1, keepdim=True) * e
    return mean_q + sigma.view(shape) * (proj.to(mean_q.dtype)[:, None] * e + w).view_as(z)


def tolerance(dtype: torch.dtype) -> float:
    """|D| at or below this is degenerate (the draft and target means agree to rounding): accept the draft."""
    return 4.0 * math.sqrt(torch.finfo(dtype).eps)


def crossing(log_a: torch.Tensor, log_b: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """t where a phi(t - delta) = b phi(t): t = delta / 2 + (log b - log a) / delta."""
    return delta / 2 + (log_b - log_a) / delta


def mass_above(s, log_a, log_b, delta) -> torch.Tensor:
    """R(s) = a Q(s - delta) - b Q(s), clamped at 0 (rounding): the residual's mass above s >= t."""
    return torch.clamp(torch.exp(log_a) * normal_sf(s - delta) - torch.exp(log_b) * normal_sf(s), min=0.0)


def log_mass_above(s, log_a, log_b, delta) -> torch.Tensor:
    """log R(s) for s >= t, where a Q(s - delta) > b Q(s): log a Q(s - delta) + log(1 - b Q(s) / (a Q(s - delta)))."""
    big = log_a + torch.special.log_ndtr(delta - s)
    return big + torch.log(-torch.expm1(torch.clamp(log_b + torch.special.log_ndtr(-s) - big, max=0.0)))


def residual_projection(log_a, log_b, delta, u, *, span: float = SPAN) -> torch.Tensor:
    """S from (a phi(s - delta) - b phi(s))_+ normalised, at the uniform u: the inverse CDF by bisection on
    [t, t + span]. All arguments are float64 tensors of one batch shape, delta > 0."""
    t = crossing(log_a, log_b, delta)
    goal = torch.log1p(-u) + log_mass_above(t, log_a, log_b, delta)
    lo, hi = t, t + span
    for _ in range(BISECTIONS):
        mid = (lo + hi) / 2
        above = log_mass_above(mid, log_a, log_b, delta) > goal  # R decreases: the root is above mid
        lo, hi = torch.where(above, mid, lo), torch.where(above, hi, mid)
    s = (lo + hi) / 2
    for _ in range(NEWTON):  # (log R)' = -rho / R, rho(s) = a phi(s - delta) - b phi(s) the density
        log_r = log_mass_above(s, log_a, log_b, delta)
        log_rho = log_density(s, log_a, log_b, delta)
        step = torch.nan_to_num((log_r - goal) * torch.exp(log_r - log_rho), nan=0.0)  # 0 x inf at s = t
        s = torch.clamp(s + step, min=lo, max=hi)
    return s


def log_density(s, log_a, log_b, delta) -> torch.Tensor:
    """log rho(s) = log(a phi(s - delta) - b phi(s)) for s > t (-inf at t)."""
    big = log_a - (s - delta) ** 2 / 2 - 0.5 * math.log(2 * math.pi)
    return big + torch.log(-torch.expm1(torch.clamp(log_b - log_a + delta**2 / 2 - delta * s, max=0.0)))
