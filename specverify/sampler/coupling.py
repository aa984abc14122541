"""Reflection maximal coupling of two Gaussians with equal isotropic covariance.

De Bortoli et al. (ICML 2025), Alg. 1 / Bou-Rabee et al. (2020). The draft is y = m_q + s z. With
D = (m_q - m_p) / s, the draft is accepted with probability min(1, p(y) / q(y)) = min(1, exp(log_ratio)),
log_ratio = -<z, D> - |D|^2 / 2, computed in log space (no densities are formed, so any dimension works).
On rejection the output is m_p + s (I - 2 e e^T) z with e = D / |D|: the reflection of the draft noise.

Contract: for z ~ N(0, I) and u ~ U(0, 1) independent, the output is an exact draw from N(m_p, s^2 I), it
equals the draft when accepted, and P(accepted) = 2 Phi(-|D| / 2) = 1 - TV(p, q), the largest possible.
All functions are pure; the noise comes in as arguments.

Each formula is written once, in a small public part (:func:`coupled_step` gathers D, the log ratio, the draft and
the reflected draw; :func:`accept` the test; :func:`select` the output), and :func:`couple` is built from them, as
are the known-broken couplings of :mod:`specverify.sampler.mutants` (each replaces one part). The harness's
``specverify.harness.coupling_check.reference_coupling`` is the deliberate twin of the reflection (numpy, written
apart; the two halves share no code).
"""

from __future__ import annotations

import dataclasses
import math

import torch

from specverify.errors import SamplerError

__all__ = ["CoupledStep", "accept", "acceptance_probability", "couple", "coupled_step", "log_acceptance_ratio",
           "reflection_coupling", "select"]


def _flat(t: torch.Tensor, batch_ndim: int) -> torch.Tensor:
    return t.reshape(t.shape[:batch_ndim] + (-1,))


def _scale(sigma, ref: torch.Tensor, batch_ndim: int, validate: bool = True) -> torch.Tensor:
    batch = ref.shape[:batch_ndim]
    if not (isinstance(sigma, torch.Tensor) and sigma.shape == batch and sigma.dtype == ref.dtype):
        sigma = torch.as_tensor(sigma, dtype=ref.dtype, device=ref.device)
        sigma = sigma.expand(batch) if sigma.ndim == 0 else sigma
    if sigma.shape != batch:
        raise SamplerError(f"sigma has shape {tuple(sigma.shape)}; expected () or {tuple(batch)}")
    if validate and not bool((sigma > 0).all()):
        raise SamplerError("sigma must be > 0: a zero-noise step cannot be coupled; take it with the target directly")
    return sigma


def _check_shapes(mean_p, mean_q, z):
    if not (mean_p.shape == mean_q.shape == z.shape):
        raise SamplerError(f"mean_p {tuple(mean_p.shape)}, mean_q {tuple(mean_q.shape)} and z {tuple(z.shape)} "
                           "must have the same shape")


def _ratio(mean_p, mean_q, sigma_t, z, batch_ndim):
    """D and z flattened over the event dimensions, |D| and the log ratio -<z, D> - |D|^2 / 2."""
    d = _flat(mean_q - mean_p, batch_ndim) / sigma_t[..., None]
    zf = _flat(z, batch_ndim)
    dist = torch.linalg.vector_norm(d, dim=-1)
    return d, zf, dist, -(zf * d).sum(-1) - 0.5 * dist**2


@dataclasses.dataclass(frozen=True)
class CoupledStep:
    """The parts of one coupled step (see :func:`coupled_step`).

    ``draft`` m_q + s z and ``reflected`` m_p + s (I - 2 e e^T) z have the means' shape; ``log_ratio``
    log p(y) / q(y) and ``dist`` |D| have the batch shape; ``scale`` is sigma shaped to broadcast against the means.
    """

    draft: torch.Tensor
    reflected: torch.Tensor
    log_ratio: torch.Tensor
    dist: torch.Tensor
    scale: torch.Tensor


def coupled_step(mean_p, mean_q, sigma, z, *, batch_ndim: int = 1, validate: bool = True) -> CoupledStep:
    """Draft, reflected draw, log ratio and |D| of coupling N(mean_p, sigma^2 I) with the draft mean_q + sigma z.
    ``validate=False`` skips the sigma > 0 check (a host read), for callers that guarantee it."""
    _check_shapes(mean_p, mean_q, z)
    sigma_t = _scale(sigma, mean_p, batch_ndim, validate)
    d, zf, dist, log_ratio = _ratio(mean_p, mean_q, sigma_t, z, batch_ndim)
    e = d / dist.clamp_min(torch.finfo(dist.dtype).tiny)[..., None]  # D = 0: e = 0, no reflection
    z_ref = zf - 2 * (zf * e).sum(-1, keepdim=True) * e
    s = sigma_t.reshape(sigma_t.shape + (1,) * (z.ndim - batch_ndim))
    return CoupledStep(mean_q + s * z, mean_p + s * z_ref.reshape(z.shape), log_ratio, dist, s)


def log_acceptance_ratio(mean_p, mean_q, sigma, z, *, batch_ndim: int = 1):
    """log p(y) / q(y) at the draft y = mean_q + sigma z, and |D|, reduced over the event dimensions."""
    _, _, dist, log_ratio = _ratio(mean_p, mean_q, _scale(sigma, mean_p, batch_ndim), z, batch_ndim)
    return log_ratio, dist


def accept(u, log_ratio: torch.Tensor) -> torch.Tensor:
    """The acceptance test log u <= log_ratio, in float64; ``u`` has the batch shape of ``log_ratio``."""
    u = torch.as_tensor(u, device=log_ratio.device)
    if u.shape != log_ratio.shape:
        raise SamplerError(f"u has shape {tuple(u.shape)}; expected the batch shape {tuple(log_ratio.shape)}")
    return torch.log(u.to(torch.float64)) <= log_ratio.to(torch.float64)


def select(accepted: torch.Tensor, draft: torch.Tensor, rejected: torch.Tensor) -> torch.Tensor:
    """The coupled output: ``draft`` where accepted (batch shape), ``rejected`` elsewhere."""
    return torch.where(accepted.reshape(accepted.shape + (1,) * (draft.ndim - accepted.ndim)), draft, rejected)


def acceptance_probability(dist: torch.Tensor) -> torch.Tensor:
    """2 Phi(-|D| / 2): the acceptance probability of one coupled step, given |D| = |m_q - m_p| / sigma.

    Deliberate twin of :func:`specverify.harness.predictions.acceptance_probability` (numpy): the sampler reports
    its own predictions, the harness recomputes them; the two halves share no code."""
    # erfc keeps relative accuracy in the tail; 2 ndtr(-x) = 1 + erf(-x / sqrt 2) underflows past |D| ~ 16.
    return torch.special.erfc(dist / (2 * math.sqrt(2)))


def reflection_coupling(mean_p, mean_q, sigma, z, u, *, batch_ndim: int = 1):
    """Couple N(mean_p, sigma^2 I) (target) with the draft mean_q + sigma z, using uniforms u.

    Shapes: means and z are ``(*batch, *event)``; sigma is a scalar or ``batch``-shaped; u is ``batch``-shaped
    in (0, 1). Returns ``(x, accepted)``: x has the means' shape, accepted is a bool tensor of shape ``batch``.
    """
    _check_shapes(mean_p, mean_q, z)
    u_t = torch.as_tensor(u)
    batch = tuple(mean_p.shape[:batch_ndim])
    if tuple(u_t.shape) != batch:
        raise SamplerError(f"u has shape {tuple(u_t.shape)}; expected the batch shape {batch}")
    for name, t in (("mean_p", mean_p), ("mean_q", mean_q), ("z", z)):
        if not bool(torch.isfinite(torch.as_tensor(t)).all()):
            raise SamplerError(f"{name} has NaN or Inf entries; check the model outputs that produced it")
    if not bool(((u_t > 0) & (u_t < 1)).all()):
        raise SamplerError("u must lie in the open interval (0, 1); draw it with torch.rand and reject zeros")
    _scale(sigma, mean_p, batch_ndim)
    x, accepted, _ = couple(mean_p, mean_q, sigma, z, u, batch_ndim=batch_ndim)
    return x, accepted


def couple(mean_p, mean_q, sigma, z, u, *, batch_ndim: int = 1):
    """:func:`reflection_coupling` that also returns |D| (for the predicted acceptance 2 Phi(-|D| / 2)).

    The sampler's core: it does not check finiteness, the range of u or sigma > 0 (the sampler passes sigma = 1
    at positions that do not count and checks model outputs itself).
    """
    step = coupled_step(mean_p, mean_q, sigma, z, batch_ndim=batch_ndim, validate=False)
    accepted = accept(u, step.log_ratio)
    return select(accepted, step.draft, step.reflected), accepted, step.dist
