"""The judge's view of a target chain: x_{k+1} = mean(x_k, k) + sigma_k eps_k, eps_k ~ N(0, I), x_0 ~ prior.

The innovation block (:mod:`specverify.harness.innovations`) needs only this: the mean of every step at any
state, the noise scale of every step and the initial law. A :class:`Transition` holds them as plain numpy
callables and arrays. It comes from one of three places, and ``source`` says which (the report prints it):

- a built-in problem's JAX twin on the reference side (``bridge``: independent of the sampler's torch code);
- a built-in problem's third-party view (``digits``: no JAX twin of its network);
- a user's own target (``--target file.py:obj``, :func:`as_transition`): any object with ``mean(x, k)``
  (array in, array out: numpy, torch or JAX), ``sigma`` (T,), ``n_steps``, ``shape`` and the prior of x_0 as
  ``prior_mean`` and ``prior_std`` (x_0 ~ N(prior_mean, prior_std^2 I)). A ``ThirdPartyView`` is one.

Optional ``coefs = (a, b)`` (arrays (T,)) say that mean(x, k) = a_k x + b_k f(x, k) for a model output f (an
eps-prediction): the judge then also looks along the directions of a frozen model output.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from specverify.errors import ContractError, UsageError

__all__ = ["Transition", "as_transition"]


@dataclasses.dataclass(frozen=True, eq=False)
class Transition:
    """``mean(x, k)``: float64 (m, d) states and int (m,) steps -> (m, d) means; ``sigma`` (T,); ``shape`` of
    one state (d = prod(shape)); ``prior_mean`` (scalar or (d,)) and ``prior_std``; ``source`` in words;
    ``coefs``: optional (a, b) as above; ``precision``: the dtype the target's arithmetic is assumed to use."""

    mean: Callable[[np.ndarray, np.ndarray], np.ndarray]
    sigma: np.ndarray
    shape: tuple[int, ...]
    prior_mean: object
    prior_std: float
    source: str
    coefs: tuple[np.ndarray, np.ndarray] | None = None
    precision: str = "float64"

    @property
    def n_steps(self) -> int:
        return int(self.sigma.size)

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))


def _as_numpy(out) -> np.ndarray:
    if hasattr(out, "detach"):  # torch, without importing it
        out = out.detach().cpu().double().numpy()
    return np.asarray(out, dtype=np.float64)


def _callers(shape):
    """Ways to call a user's mean: numpy first, then torch, then JAX (whichever the object accepts)."""

    def with_numpy(fn, x, k):
        return fn(x.reshape(-1, *shape), k)

    def with_torch(fn, x, k):
        import torch

        return fn(torch.as_tensor(x).reshape(-1, *shape), torch.as_tensor(k, dtype=torch.long))

    def with_jax(fn, x, k):
        import jax.numpy as jnp

        return fn(jnp.asarray(x).reshape(-1, *shape), jnp.asarray(k))

    return (("numpy", with_numpy), ("torch", with_torch), ("jax", with_jax))


def _wrap_mean(fn, shape, what: str):
    """``fn`` as a numpy (m, d) -> (m, d) function; the array library is found on the first call and kept."""
    chosen = []
    d = int(np.prod(shape))

    def mean(x, k):
        k = np.asarray(k, dtype=np.int64)
        errors = []
        for name, call in ([c for c in _callers(shape) if c[0] in chosen] or _callers(shape)):
            try:
                out = _as_numpy(call(fn, x, k))
            except Exception as e:  # noqa: BLE001 - try the next array library, report all if none works
                errors.append(f"{name}: {type(e).__name__}: {e}")
                continue
            if not chosen:
                chosen.append(name)
            if out.size != x.shape[0] * d:
                raise ContractError(f"{what}.mean returned {out.size} values for {x.shape[0]} states of shape "
                                    f"{shape}; return one mean per state")
            return out.reshape(x.shape[0], d)
        raise ContractError(f"{what}.mean(x, k) failed with numpy, torch and JAX arrays ({'; '.join(errors)}); "
                            "it must map states (m, *shape) and int steps (m,) to means (m, *shape)")

    return mean


def as_transition(obj, *, source: str = "user target", precision: str = "float64") -> Transition:
    """A user's target (see the module docstring) as a :class:`Transition`; clear errors for what is missing."""
    if isinstance(obj, Transition):
        return obj
    missing = [a for a in ("mean", "sigma", "shape") if not hasattr(obj, a)]
    if missing:
        raise UsageError(f"{source} has no {', '.join(missing)}: a target needs mean(x, k), sigma (T,), n_steps, "
                         "shape, prior_mean and prior_std (see docs/contract-trajectories.md)")
    sigma = _as_numpy(obj.sigma).ravel()
    if sigma.size < 1 or not np.isfinite(sigma).all() or (sigma < 0).any():
        raise UsageError(f"{source}.sigma must be finite and >= 0, one value per step")
    steps = getattr(obj, "n_steps", sigma.size)
    if int(steps) != sigma.size:
        raise UsageError(f"{source}.n_steps = {steps} but sigma has {sigma.size} values")
    shape = tuple(int(s) for s in np.atleast_1d(obj.shape))
    prior_std = float(getattr(obj, "prior_std", 1.0))
    if not prior_std > 0:
        raise UsageError(f"{source}.prior_std must be > 0, got {prior_std}")
    prior_mean = _as_numpy(getattr(obj, "prior_mean", 0.0))
    coefs = getattr(obj, "coefs", None)
    if coefs is not None:
        coefs = tuple(_as_numpy(c).ravel() for c in coefs)
    return Transition(_wrap_mean(obj.mean, shape, source), sigma, shape,
                      prior_mean.ravel() if prior_mean.size > 1 else float(prior_mean), prior_std, source, coefs,
                      precision)
