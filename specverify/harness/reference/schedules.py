"""DDPM and DDIM transitions written as x_{k+1} = c_x[k] x_k + c_eps[k] eps_hat(x_k, t[k]) + sigma[k] z.

N-version programming: this is a deliberate, independent twin of the coefficient math in the torch side
(``specverify.sampler.chains``), derived again here from the papers and written in a different form (eps-form
coefficients, Ho et al. eq. 11, instead of x0-form ones), so that a slip in either copy shows up as a
disagreement between the two halves. Do not import or copy the torch side.

Conventions shared with the torch side (they are part of the public contract, not of its code): chain step
k = 0 .. K-1 of a DDPM chain on ``betas`` of length T goes from diffusion time t = T-1-k to t-1; the last step
goes to abar_prev = 1; DDIM runs on a strictly decreasing subsequence ``timesteps`` of 0 .. T-1.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from specverify.errors import ChainError
from specverify.specs import beta_schedule

__all__ = ["DiffusionTransition", "diffusion_transition", "x0_to_eps"]


@dataclasses.dataclass(frozen=True, eq=False)
class DiffusionTransition:
    """Per-step coefficients of a Gaussian diffusion sampler (read-only float64 arrays, one entry per step).

    Contract: with eps_hat the model's noise prediction at diffusion time ``t[k]``, the chain step is
    x_{k+1} = c_x[k] x_k + c_eps[k] eps_hat(x_k, t[k]) + sigma[k] z_k, z_k ~ N(0, I). ``abar[k]`` is
    abar at ``t[k]`` and ``abar_prev[k]`` the abar the step moves to (1 at the last step). ``betas`` is the
    full schedule the times index into (what the denoisers of :mod:`specverify.harness.reference.denoisers` take).
    """

    t: np.ndarray
    abar: np.ndarray
    abar_prev: np.ndarray
    sigma: np.ndarray
    c_x: np.ndarray
    c_eps: np.ndarray
    betas: np.ndarray
    sampler: str
    eta: float

    @property
    def n_steps(self) -> int:
        return int(self.t.size)


def _schedule(betas) -> np.ndarray:
    if isinstance(betas, str):
        raise ChainError(f"pass an array of betas, e.g. specverify.specs.beta_schedule({betas!r}, n_steps)")
    return beta_schedule(betas)  # validates: 1-D, non-empty, every entry in (0, 1)


def diffusion_transition(betas, sampler: str = "ddpm", *, eta: float = 1.0, timesteps=None,
                         variance: str = "posterior") -> DiffusionTransition:
    """Coefficients of DDPM (Ho et al. 2020, eq. 11) or DDIM (Song et al. 2021, eq. 12) in eps form.

    DDPM: x_{t-1} = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t) + sigma_t z with
    ``variance="posterior"`` sigma_t^2 = beta_t (1 - abar_{t-1}) / (1 - abar_t) (zero at t = 0) or
    ``variance="beta"`` sigma_t^2 = beta_t; ``eta`` and ``timesteps`` do not apply.

    DDIM: x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps + sigma z, x0_hat =
    (x_t - sqrt(1 - abar_t) eps) / sqrt(abar_t), sigma = eta sqrt((1 - abar_prev) / (1 - abar_t))
    sqrt(1 - abar_t / abar_prev), on ``timesteps`` (default: the full schedule, descending); 0 <= eta <= 1
    (eta = 0 is the deterministic sampler: fine for laws, but it cannot be speculated).

    The harness's one copy of these coefficients (:mod:`specverify.harness.dimension` takes its chain from here);
    deliberate twin of :func:`specverify.sampler.chains.ddpm` and :func:`specverify.sampler.chains.ddim`.
    """
    betas = _schedule(betas)
    T = betas.size
    abar_all = np.cumprod(1.0 - betas)
    if sampler == "ddpm":
        if timesteps is not None or eta != 1.0:
            raise ChainError("DDPM runs on the full schedule with no eta; use sampler='ddim' for timesteps= / eta=")
        t = np.arange(T)[::-1].copy()
        alpha = 1.0 - betas[t]
        abar = abar_all[t]
        abar_prev = np.concatenate([abar_all[t[1:]], [1.0]])
        c_x = 1.0 / np.sqrt(alpha)
        c_eps = -betas[t] / (np.sqrt(alpha) * np.sqrt(1.0 - abar))
        if variance == "posterior":
            sigma = np.sqrt(betas[t] * (1.0 - abar_prev) / (1.0 - abar))
        elif variance == "beta":
            sigma = np.sqrt(betas[t])
        else:
            raise ChainError(f"variance must be 'posterior' or 'beta', got {variance!r}")
    elif sampler == "ddim":
        if variance != "posterior":
            raise ChainError("variance= applies to DDPM only; DDIM's noise level is set by eta")
        if not 0.0 <= eta <= 1.0:
            raise ChainError(f"eta must be in [0, 1] (eta > 1 makes 1 - abar_prev - sigma^2 negative), got {eta}")
        t = np.arange(T)[::-1].copy() if timesteps is None else np.asarray(timesteps)
        if (t.ndim != 1 or t.size == 0 or not np.issubdtype(t.dtype, np.integer) or np.any(np.diff(t) >= 0)
                or t.min() < 0 or t.max() >= T):
            raise ChainError(f"timesteps must be a strictly decreasing 1-D array of ints in [0, {T}), "
                             f"e.g. np.arange({T})[::-{max(T // 10, 1)}]")
        t = t.astype(np.int64)
        abar = abar_all[t]
        abar_prev = np.concatenate([abar_all[t[1:]], [1.0]])
        sigma = eta * np.sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev))
        dir_coef = np.sqrt(np.maximum(1.0 - abar_prev - sigma**2, 0.0))  # >= 0 for eta <= 1, up to rounding
        c_x = np.sqrt(abar_prev / abar)
        c_eps = dir_coef - np.sqrt(abar_prev) * np.sqrt(1.0 - abar) / np.sqrt(abar)
    else:
        raise ChainError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")
    arrays = dict(t=t, abar=abar, abar_prev=abar_prev, sigma=sigma, c_x=c_x, c_eps=c_eps, betas=betas.copy())
    for name, a in arrays.items():
        if not np.all(np.isfinite(a)):
            raise ChainError(f"{name} has non-finite entries; check the betas")
        a.setflags(write=False)
    return DiffusionTransition(**arrays, sampler=sampler, eta=float(eta))


def x0_to_eps(x0, x, abar):
    """The noise implied by a clean-data prediction: eps = (x - sqrt(abar) x0) / sqrt(1 - abar).

    Works on numpy and JAX arrays alike; ``abar`` broadcasts against ``x`` (shape (n, 1) for per-row times).
    """
    return (x - abar**0.5 * x0) / (1.0 - abar) ** 0.5
