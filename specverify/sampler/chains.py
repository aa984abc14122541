"""Gaussian Markov chains: DDPM (eps / x0 / v), DDIM (eta > 0), Euler-Maruyama Langevin.

A chain step k maps x_k to x_{k+1} ~ N(mean(x_k, k), sigma_k^2 I), k = 0 .. n_steps - 1, with sigma_k
independent of the state. Every chain here has a mean that is affine in one model output f:

    mean(x, k) = a_k * x + b_k * f(x, k)

where f is the network's prediction (eps, x0, v), the score (Langevin) or the mean itself (a generic chain,
a = 0, b = 1). The frozen-denoiser drafter reuses f; the frozen-drift drafter reuses mean(x, k) - x.

Zero-noise steps. A step with sigma_k = 0 (the last DDPM step with the posterior variance, the last DDIM
step) is deterministic: its output is a point mass, so no draft can ever be accepted (TV = 1). The
speculative sampler never drafts it: windows stop in front of it and the target takes it directly, from
the target output cached at that state when there is one, otherwise with one target call.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch

from specverify._validate import is_positive_int, step_sizes
from specverify.errors import ChainError
from specverify.specs import beta_schedule

__all__ = [
    "GaussianChain",
    "TimestepModel",
    "beta_schedule",
    "ddim",
    "ddpm",
    "first_zero_noise",
    "gaussian_chain",
    "langevin",
]

Model = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PREDICTIONS = ("eps", "x0", "v")


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianChain:
    """A Markov chain with Gaussian transitions and a mean affine in one model output.

    Contract: ``model(x, k)`` takes states ``x`` of shape ``(b, *shape)`` and per-sample chain steps ``k``
    (``(b,)``, int64; samples in one batch may be at different steps) and returns ``f`` of the same shape
    as ``x``. The coefficient arrays ``a``, ``b``, ``sigma`` have one entry per step and live in float64 on
    the CPU; :meth:`coefs` moves them where the states are.
    """

    model: Model
    sigma: np.ndarray
    a: np.ndarray
    b: np.ndarray
    shape: tuple[int, ...]
    output: str = "mean"
    prior_std: float = 1.0
    prior_mean: float = 0.0
    name: str = "chain"

    def __post_init__(self):
        arrays = {}
        for field in ("sigma", "a", "b"):
            v = np.asarray(getattr(self, field), dtype=np.float64)
            if v.ndim != 1 or v.size == 0:
                raise ChainError(f"{field} must be a non-empty 1-D array with one entry per step, got shape {v.shape}")
            if not np.all(np.isfinite(v)):
                raise ChainError(f"{field} has NaN or Inf entries at steps {np.flatnonzero(~np.isfinite(v))[:5]}")
            v.setflags(write=False)
            arrays[field] = v
        if not (arrays["sigma"].size == arrays["a"].size == arrays["b"].size):
            raise ChainError("sigma, a and b must have one entry per step (equal lengths)")
        if np.any(arrays["sigma"] < 0):
            raise ChainError("sigma must be >= 0 at every step")
        if not (isinstance(self.shape, (tuple, list, torch.Size)) and self.shape
                and all(is_positive_int(s) for s in self.shape)):
            raise ChainError(f"shape must be a non-empty tuple of positive ints, e.g. (d,) or (3, 32, 32); "
                             f"got {self.shape!r}")
        shape = tuple(int(s) for s in self.shape)
        for field, v in arrays.items():
            object.__setattr__(self, field, v)
        object.__setattr__(self, "shape", shape)
        if not callable(self.model):
            raise ChainError("model must be callable as model(x, k)")

    @property
    def n_steps(self) -> int:
        return int(self.sigma.size)

    @property
    def dim(self) -> int:
        return math.prod(self.shape)

    def coefs(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(a, b, sigma) as tensors on the device and dtype of ``like``."""
        key = (like.device, like.dtype)
        cache = self.__dict__.setdefault("_coefs", {})
        if key not in cache:
            kw = {"device": like.device, "dtype": like.dtype}
            cache[key] = tuple(torch.tensor(v, **kw) for v in (self.a, self.b, self.sigma))
        return cache[key]

    def evaluate(self, x: torch.Tensor, k: torch.Tensor, *, check_finite: bool = True) -> torch.Tensor:
        """The model output f(x, k), checked for shape, dtype and (unless ``check_finite=False``, for callers
        that check it themselves without a host read per call) finiteness."""
        f = self.model(x, k)
        if not isinstance(f, torch.Tensor) or f.shape != x.shape:
            got = tuple(f.shape) if isinstance(f, torch.Tensor) else type(f).__name__
            raise ChainError(f"model returned {got}, expected a tensor of shape {tuple(x.shape)} (same as x)")
        if f.dtype != x.dtype:
            raise ChainError(f"model returned {f.dtype} for {x.dtype} input; move the model with chain.to(dtype=...)")
        if check_finite and not torch.isfinite(f).all():
            bad = (~torch.isfinite(f)).flatten(1).any(1)
            steps = sorted(set(k[bad].tolist()))[:5]
            raise ChainError(f"model returned NaN or Inf at chain steps {steps}; check the model and its inputs")
        return f

    def mean_from(self, x: torch.Tensor, k: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
        """mean = a_k x + b_k f for per-sample steps k."""
        a, b, _ = self.coefs(x)
        return _bcast(a[k], x) * x + _bcast(b[k], x) * f

    def mean(self, x: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        return self.mean_from(x, k, self.evaluate(x, k))

    def prior(self, n: int, generator: torch.Generator | None = None, *, device=None, dtype=torch.float32):
        """Initial states x_0 ~ N(prior_mean, prior_std^2 I), shape (n, *shape)."""
        z = torch.randn((n, *self.shape), generator=generator, device=device, dtype=dtype)
        return self.prior_mean + self.prior_std * z

    def to(self, device=None, dtype=None) -> GaussianChain:
        """The same chain with its model moved (if it is a torch module)."""
        model = self.model
        if isinstance(model, torch.nn.Module) and _needs_move(model, device, dtype):
            # Module.to works in place: copy first, so the caller's model (and other chains sharing it) stay as they are
            model = copy.deepcopy(model).to(device=device, dtype=dtype)
        return dataclasses.replace(self, model=model)  # a new instance: no stale coefficient cache


def _needs_move(model: torch.nn.Module, device, dtype) -> bool:
    device = torch.device(device) if device is not None else None
    for t in list(model.parameters()) + list(model.buffers()):
        if device is not None and (t.device.type, t.device.index or 0) != (device.type, device.index or 0):
            return True
        if dtype is not None and t.is_floating_point() and t.dtype != dtype:
            return True
    return False


def _bcast(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def first_zero_noise(sigma) -> np.ndarray:
    """stop[k]: the first zero-noise step (sigma = 0) at or after step k, n_steps if none; n_steps + 1 entries.

    A speculative window starting at k drafts at most stop[k] - k steps. Deliberate twin of
    :func:`specverify.harness.predictions.first_zero_noise` (numpy, written apart; the two halves share no code).
    """
    sigma = np.asarray(sigma)
    T = sigma.size
    stop = np.full(T + 1, T, dtype=np.int64)
    for k in range(T - 1, -1, -1):
        stop[k] = k if sigma[k] == 0 else stop[k + 1]
    return stop


def gaussian_chain(mean_fn: Model, sigma, shape, *, prior_std=1.0, name="chain") -> GaussianChain:
    """A generic chain from a batched mean function ``mean_fn(x, k)`` and noise scales ``sigma``."""
    sigma = np.asarray(sigma, dtype=np.float64)
    return GaussianChain(mean_fn, sigma, np.zeros_like(sigma), np.ones_like(sigma), shape,
                         output="mean", prior_std=prior_std, name=name)


def _betas(betas) -> np.ndarray:
    if isinstance(betas, str):
        raise ChainError(f"pass an array of betas, e.g. beta_schedule({betas!r}, n_steps)")
    return beta_schedule(betas)


def _x0_eps_coefs(prediction: str, abar: np.ndarray):
    """Write x0 and eps as affine maps of (x_t, f): x0 = p x + q f, eps = r x + s f."""
    sa, sb = np.sqrt(abar), np.sqrt(1 - abar)
    one, zero = np.ones_like(abar), np.zeros_like(abar)
    if prediction == "eps":
        p, q, r, s = 1 / sa, -sb / sa, zero, one
    elif prediction == "x0":
        p, q, r, s = zero, one, 1 / sb, -sa / sb
    elif prediction == "v":  # v = sa eps - sb x0  =>  x0 = sa x - sb v, eps = sb x + sa v
        p, q, r, s = sa, -sb, sb, sa
    else:
        raise ChainError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
    return p, q, r, s


class TimestepModel(torch.nn.Module):
    """``model(x, t)`` on diffusion times, seen as ``f(x, k)`` on chain steps: t = timesteps[k]."""

    def __init__(self, model: Model, timesteps: np.ndarray):
        super().__init__()
        self.model = model
        self.register_buffer("timesteps", torch.tensor(np.array(timesteps, dtype=np.int64)))

    def forward(self, x, k):
        return self.model(x, self.timesteps[k])


def ddpm(model: Model, betas, shape, *, prediction="eps", variance="posterior") -> GaussianChain:
    """DDPM ancestral sampling (Ho et al. 2020, eq. 11 / Alg. 2) for ``model(x, t)`` with diffusion time t; the
    chain is named ``"ddpm"`` (another name: ``dataclasses.replace(chain, name=...)``).

    Chain step k goes from time t = T - 1 - k to t - 1 (diffusers' convention). ``variance``:
    ``"posterior"`` (beta tilde; zero at the last step, which the target then takes directly) or ``"beta"``.
    The sampler's one copy of these coefficients; deliberate twin of
    :func:`specverify.harness.reference.schedules.diffusion_transition` (numpy, eps form; the halves share no code).
    """
    betas = _betas(betas)
    alphas = 1 - betas
    abar = np.cumprod(alphas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    c_x0 = np.sqrt(abar_prev) * betas / (1 - abar)
    c_xt = np.sqrt(alphas) * (1 - abar_prev) / (1 - abar)
    p, q, _, _ = _x0_eps_coefs(prediction, abar)
    a = c_x0 * p + c_xt
    b = c_x0 * q
    if variance == "posterior":
        sigma = np.sqrt(betas * (1 - abar_prev) / (1 - abar))
    elif variance == "beta":
        sigma = np.sqrt(betas)
    else:
        raise ChainError(f"variance must be 'posterior' or 'beta', got {variance!r}")
    t = np.arange(betas.size)[::-1].copy()
    return GaussianChain(TimestepModel(model, t), sigma[t], a[t], b[t], shape, output=prediction, name="ddpm")


def ddim(model: Model, betas, shape, *, eta=1.0, timesteps=None, prediction="eps") -> GaussianChain:
    """DDIM (Song et al. 2021, eq. 12) with eta > 0 on a descending subsequence ``timesteps`` of the schedule; the
    chain is named ``"ddim"`` (another name: ``dataclasses.replace(chain, name=...)``).

    sigma_t = eta sqrt((1 - abar_prev) / (1 - abar_t)) sqrt(1 - abar_t / abar_prev); the last step goes to
    abar_prev = 1 and has sigma = 0. With eta = 1 on the full schedule this is DDPM with the posterior variance.
    Deliberate twin of :func:`specverify.harness.reference.schedules.diffusion_transition` (see :func:`ddpm`).
    """
    if not (math.isfinite(eta) and eta > 0):
        raise ChainError(f"eta must be > 0 and finite for a stochastic DDIM chain (1 is DDPM's noise), got {eta}: "
                         "eta = 0 cannot be speculated")
    betas = _betas(betas)
    abar_all = np.cumprod(1 - betas)
    ts = np.arange(betas.size)[::-1] if timesteps is None else np.asarray(timesteps, dtype=np.int64)
    if ts.ndim != 1 or ts.size == 0 or np.any(np.diff(ts) >= 0) or ts.min() < 0 or ts.max() >= betas.size:
        raise ChainError("timesteps must be strictly decreasing integers in [0, len(betas))")
    abar = abar_all[ts]
    abar_prev = np.concatenate([abar_all[ts[1:]], [1.0]])
    sigma = eta * np.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
    c_eps2 = 1 - abar_prev - sigma**2
    if np.any(c_eps2 < -1e-12):
        raise ChainError(f"eta = {eta} makes 1 - abar_prev - sigma^2 negative; use eta <= 1")
    c_eps = np.sqrt(np.maximum(c_eps2, 0.0))
    p, q, r, s = _x0_eps_coefs(prediction, abar)
    c_x0 = np.sqrt(abar_prev)
    a = c_x0 * p + c_eps * r
    b = c_x0 * q + c_eps * s
    return GaussianChain(TimestepModel(model, ts), sigma, a, b, shape, output=prediction, name="ddim")


def langevin(step_size, n_steps, shape, *, score=None, log_prob=None, model=None) -> GaussianChain:
    """Unadjusted Langevin (Euler-Maruyama): x_{k+1} = x_k + h_k grad log pi(x_k) + sqrt(2 h_k) z_k.

    Give exactly one of ``score(x)``, ``log_prob(x)`` (per-sample log density, shape (b,); the gradient is
    taken with autograd) or ``model(x, k)`` (the score as a chain model, e.g. a torch module that
    ``chain.to(dtype=...)`` can move). ``step_size`` is a float or one value per step. The chain starts from
    N(0, I) and is named ``"langevin"``; another prior scale or name: ``dataclasses.replace(chain, prior_std=...,
    name=...)``.
    """
    if sum(f is not None for f in (score, log_prob, model)) != 1:
        raise ChainError("give exactly one of score=, log_prob= or model=")
    h = step_sizes(step_size, n_steps)
    if model is None:
        if score is None:
            def score(x):
                with torch.enable_grad():
                    xg = x.detach().requires_grad_(True)
                    (g,) = torch.autograd.grad(log_prob(xg).sum(), xg)
                return g

        def model(x, k):
            return score(x)

    return GaussianChain(model, np.sqrt(2 * h), np.ones_like(h), h, shape, output="score", name="langevin")
