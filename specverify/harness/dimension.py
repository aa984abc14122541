"""Acceptance against dimension (``theory/dimension.md``): the law of D for the frozen drafters on the
linear-Gaussian ``gaussian`` problem and the predicted acceptance E[2 Phi(-|D| / 2)], computed exactly (Imhof).

The chain's coefficients come from :func:`specverify.harness.reference.schedules.diffusion_transition` (the
harness's one copy of DDPM / DDIM; importing it loads the reference package, JAX in 64-bit mode).

Contract: pure functions of plain numbers and arrays; numpy (scipy where used), never torch or the sampler.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from specverify._validate import positive_int
from specverify.errors import StatsError, UsageError
from specverify.harness.predictions import acceptance_probability, first_zero_noise
from specverify.harness.reference.schedules import diffusion_transition, x0_to_eps
from specverify.specs import GaussianSpec, beta_schedule

__all__ = ["AcceptancePrediction", "ChainOptions", "gaussian_mean_acceptance", "predicted_acceptance"]


@dataclasses.dataclass(frozen=True)
class ChainOptions:
    """The options of the `gaussian` problem's ``chain(steps, schedule=..., sampler=..., prediction=..., eta=...)``
    that a prediction follows: "ddpm" or "ddim", the beta schedule's name, the model's output ("eps", "x0" or
    "v"), and DDIM's eta (DDPM ignores it)."""

    sampler: str = "ddpm"
    schedule: str = "linear"
    prediction: str = "eps"
    eta: float = 1.0


@dataclasses.dataclass(frozen=True)
class _AffineChain:
    """Per-step (a, b, sigma) (T,) and the model output f(x, k) = phi[k] c + gamma[k] in eigen-coordinates
    c = Q^T x, (T, d) each: the step's mean is a_k x + b_k f(x, k)."""

    a: np.ndarray
    b: np.ndarray
    sigma: np.ndarray
    phi: np.ndarray
    gamma: np.ndarray


def _affine_gaussian_chain(spec: GaussianSpec, steps: int, options: ChainOptions) -> _AffineChain:
    """The `gaussian` problem's chain of ``steps`` steps in the eigenbasis of its covariance, one coordinate at a
    time (see :class:`_AffineChain`). The step is the reference schedules' eps form, mean = c_x x + c_eps eps_hat,
    with eps_hat = r x + s f written for the model's output f: a = c_x + c_eps r, b = c_eps s. ``eta`` applies to
    DDIM only.
    """
    sampler, prediction = options.sampler, options.prediction
    betas = beta_schedule(options.schedule, steps)
    tr = diffusion_transition(betas, sampler, **({"eta": options.eta} if sampler == "ddim" else {}))
    lam, m, abar = spec.eigvals, spec.eigvecs.T @ spec.mean, tr.abar
    sa, sb = np.sqrt(abar), np.sqrt(1 - abar)
    # eps = r x + s f: x0 prediction, eps = (x - sa x0) / sb; v = sa eps - sb x0, eps = sb x + sa v
    r, s = {"eps": (np.zeros_like(abar), np.ones_like(abar)), "x0": (1 / sb, -sa / sb), "v": (sb, sa)}[prediction]
    a, b = tr.c_x + tr.c_eps * r, tr.c_eps * s
    # exact denoiser in eigen-coordinates: x0 = g c + (1 - g sa) m, g = sa lam / (abar lam + 1 - abar)
    g = sa[:, None] * lam / (abar[:, None] * lam + (1 - abar[:, None]))
    x0_lin, x0_off = g, (1 - g * sa[:, None]) * m
    eps_lin, eps_off = x0_to_eps(x0_lin, 1.0, abar[:, None]), x0_to_eps(x0_off, 0.0, abar[:, None])
    phi, gamma = {"x0": (x0_lin, x0_off), "eps": (eps_lin, eps_off),
                  "v": (sa[:, None] * eps_lin - sb[:, None] * x0_lin, sa[:, None] * eps_off - sb[:, None] * x0_off)
                  }[prediction]
    return _AffineChain(a, b, tr.sigma, phi, gamma)


def _dist_law(chain: _AffineChain, mx, vx, n, j, drafter):
    """D at drafted position j of a window that starts at step n, x_n ~ N(mx, vx) per eigen-coordinate, the
    drafts following the draft chain: D = alpha x_n + const + (noise), returned as per-coordinate (mean, var)."""
    a, b, sigma, phi, gamma = chain.a, chain.b, chain.sigma, chain.phi, chain.gamma
    A, C = a[:, None] + b[:, None] * phi, b[:, None] * gamma  # target mean: A_k c + C_k
    k, s = n + j, sigma[n + j]
    if drafter == "frozen-drift":  # y_j = (1 + j (A_n - 1)) x + j C_n + sum_i s_{n+i} z_i
        alpha = ((1 - A[k]) * (1 + j * (A[n] - 1)) + A[n] - 1) / s
        const = ((1 - A[k]) * j * C[n] + C[n] - C[k]) / s
        noise = (1 - A[k]) ** 2 * (sigma[n:k] ** 2).sum() / s**2
    else:  # frozen-denoiser: y_{i+1} = a y_i + b f(x_n, n) + s z, D = b_k (f(x_n, n) - f(y_j, k)) / s_k
        P, Q, V = np.ones_like(mx), np.zeros_like(mx), 0.0
        for i in range(n, k):
            P, Q, V = a[i] * P + b[i] * phi[n], a[i] * Q + b[i] * gamma[n], a[i] ** 2 * V + sigma[i] ** 2
        alpha = b[k] * (phi[n] - phi[k] * P) / s
        const = b[k] * (gamma[n] - phi[k] * Q - gamma[k]) / s
        noise = (b[k] * phi[k]) ** 2 * V / s**2
    return alpha * mx + const, alpha**2 * vx + noise


def gaussian_mean_acceptance(mu, var) -> float:
    """E[2 Phi(-|D| / 2)] for D ~ N(mu, diag(var)), independent coordinates.

    2 Phi(-|D| / 2) = P(|G| > |D| / 2) with G ~ N(0, 1) independent, so the expectation is P(Q < 0) for the
    generalised chi-square Q = sum_i (D_i)^2 - 4 G^2, computed by Imhof's (1961) inversion formula (a 1-D integral,
    absolute error about 1e-10). With all var = 0 it is 2 Phi(-|mu| / 2).
    """
    from scipy import integrate

    mu, v = (np.asarray(t, dtype=np.float64).ravel() for t in (mu, var))
    if mu.shape != v.shape or not (np.all(np.isfinite(mu)) and np.all(np.isfinite(v)) and np.all(v >= 0)):
        raise StatsError("mu and var must be finite arrays of the same shape, var >= 0")
    mu2 = mu**2
    if not np.any(v > 0):
        return float(acceptance_probability(math.sqrt(mu2.sum())))
    scale = float(mu2.sum() + v.sum() + 4.0)

    def f(t):  # sin(theta(u)) / (u rho(u)) du with u = t / scale (the du / u is scale free)
        if t == 0:
            return (0.5 * (v.sum() + mu2.sum()) - 2.0) / scale
        u = t / scale
        vu2 = (v * u) ** 2
        theta = 0.5 * (np.arctan(v * u) + mu2 * u / (1 + vu2)).sum() - 0.5 * math.atan(4 * u)
        log_rho = 0.25 * np.log1p(vu2).sum() + 0.5 * (mu2 * v * u * u / (1 + vu2)).sum() + 0.25 * math.log1p(16 * u * u)
        return math.sin(theta) / t * math.exp(-log_rho)

    val, _ = integrate.quad(f, 0, np.inf, limit=1000, epsabs=1e-13, epsrel=1e-11)
    return float(min(1.0, max(0.0, 0.5 - val / math.pi)))


@dataclasses.dataclass(frozen=True)
class AcceptancePrediction:
    """Predicted acceptance of drafted position ``position`` of a window that starts at chain step n.

    ``accept[n]``: E[2 Phi(-|D| / 2)], exact for position 1 (its draft is an exact target step); for later
    positions the drafts follow the draft chain without conditioning on earlier acceptances (an approximation).
    ``mean_sq_dist[n]``: E|D|^2. ``concentrated[n]``: 2 Phi(-sqrt(E|D|^2) / 2), the large-d limit. NaN where the
    window cannot reach the position (a zero-noise step or the chain's end is in the way).
    """

    dim: int
    drafter: str
    position: int
    sigma: np.ndarray
    accept: np.ndarray
    mean_sq_dist: np.ndarray
    concentrated: np.ndarray

    @property
    def window2_starts(self) -> np.ndarray:
        """Window starts with window 2: frozen drafters always accept position 0, so every window commits
        min(span, 2) steps and the starts do not depend on the acceptances. Only those with a position 1."""
        stop, k, starts = first_zero_noise(self.sigma), 0, []
        while k < self.sigma.size:
            span = min(int(stop[k]) - k, 2)
            if span == 2:
                starts.append(k)
            k += max(span, 1)
        return np.asarray(starts, dtype=np.int64)

    @property
    def window2_rate(self) -> float:
        """Expected acceptance rate at position 1 of a run with window 2 (accepted / verified at position 1)."""
        if self.position != 1:
            raise UsageError("window2_rate is the rate at position 1; predict with position=1")
        return float(self.accept[self.window2_starts].mean())


def predicted_acceptance(dim, drafter: str = "frozen-drift", *, position: int = 1, steps: int = 100,
                         chain: ChainOptions = ChainOptions(), seed: int = 0) -> AcceptancePrediction:
    """Predicted acceptance of a frozen drafter on ``make_problem("gaussian", dim=dim, seed=seed).chain(steps,
    schedule=..., sampler=..., prediction=..., eta=...)`` (those four from ``chain``, a :class:`ChainOptions`) at
    every window start (see AcceptancePrediction).

    ``dim``: an int, or a :class:`GaussianSpec`. For a list of dimensions:
    ``[predicted_acceptance(d).window2_rate for d in dims]``; a DDIM chain:
    ``predicted_acceptance(d, chain=ChainOptions(sampler="ddim", eta=0.5))``.
    """
    if not isinstance(dim, GaussianSpec):
        dim = GaussianSpec.default(positive_int(dim, "dim", error=UsageError), seed)
    spec = dim
    if drafter not in ("frozen-drift", "frozen-denoiser"):
        raise UsageError(f"drafter must be 'frozen-drift' or 'frozen-denoiser', got {drafter!r}")
    if chain.sampler not in ("ddpm", "ddim") or chain.prediction not in ("eps", "x0", "v"):
        raise UsageError("sampler must be 'ddpm' or 'ddim' and prediction 'eps', 'x0' or 'v'")
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise UsageError(f"position must be an int >= 0, got {position!r}")
    affine = _affine_gaussian_chain(spec, steps, chain)
    a, b, sigma, phi, gamma = affine.a, affine.b, affine.sigma, affine.phi, affine.gamma
    T = sigma.size
    stop = first_zero_noise(sigma)
    accept, msd = np.full(T, np.nan), np.full(T, np.nan)
    mx, vx = np.zeros(spec.dim), np.ones(spec.dim)  # x_0 ~ N(0, I), isotropic: N(0, I) in eigen-coordinates too
    for n in range(T):
        if n + position < stop[n]:
            mu, var = _dist_law(affine, mx, vx, n, position, drafter)
            accept[n], msd[n] = gaussian_mean_acceptance(mu, var), float((mu**2 + var).sum())
        A, C = a[n] + b[n] * phi[n], b[n] * gamma[n]
        mx, vx = A * mx + C, A**2 * vx + sigma[n] ** 2
    conc = acceptance_probability(np.sqrt(msd))
    for arr in (sigma, accept, msd, conc):
        arr.setflags(write=False)
    return AcceptancePrediction(spec.dim, drafter, position, sigma, accept, msd, conc)
