"""Plain reference samplers in JAX: ``jax.lax.scan`` over the chain steps, randomness from explicit keys.

Each step draws its own noise from ``jax.random.split(key, n_steps + 1)`` (key 0 draws the initial state), so
a sampler is a pure function of its key. Memory is O(n d) unless ``return_all=True`` asks for every step.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from specverify._validate import positive_int, step_sizes
from specverify.errors import SamplerError
from specverify.harness.reference.schedules import DiffusionTransition

__all__ = ["InitialLaw", "sample_diffusion", "sample_langevin"]


@dataclasses.dataclass(frozen=True)
class InitialLaw:
    """The chain's initial law N(``mean``, ``var`` I): ``mean`` a float or one value per coordinate, ``var`` a
    float >= 0 (checked by the sampler)."""

    mean: float | np.ndarray = 0.0
    var: float = 1.0


@functools.partial(jax.jit, static_argnames=("eps_fn", "shape", "return_all"))
def _diffusion(key, eps_fn, coefficients, init, shape, return_all):
    t, c_x, c_eps, sigma = coefficients
    init_mean, init_var = init
    keys = jax.random.split(key, t.shape[0] + 1)
    x = init_mean + jnp.sqrt(init_var) * jax.random.normal(keys[0], shape, dtype=jnp.float64)

    def step(x, inputs):
        k_key, tk, cx, ce, s = inputs
        z = jax.random.normal(k_key, shape, dtype=jnp.float64)
        x = cx * x + ce * eps_fn(x, jnp.full((shape[0],), tk)) + s * z
        return x, (x if return_all else None)

    x_last, xs = jax.lax.scan(step, x, (keys[1:], t, c_x, c_eps, sigma))
    return jnp.concatenate([x[None], xs]) if return_all else x_last


def sample_diffusion(key, eps_fn, transition: DiffusionTransition, shape, *, init: InitialLaw = InitialLaw(),
                     return_all: bool = False) -> jax.Array:
    """Run a DDPM / DDIM chain: x_0 ~ N(init.mean, init.var I), x_{k+1} = c_x[k] x_k + c_eps[k] eps_fn(x_k, t_k)
    + sigma[k] z_k with the coefficients of ``transition`` (:func:`specverify.harness.reference.diffusion_transition`),
    ``shape = (n, dim)`` states at a time (as ``jax.random.normal(key, shape)``).

    Contract: ``eps_fn(x, t)`` maps states (n, dim) and int times (n,) to eps predictions (n, dim) and is
    traceable by JAX (a jitted function is compiled once per (eps_fn, n, dim)); returns x_K (n, dim), or all
    states (K + 1, n, dim) with ``return_all=True``; float64.
    """
    if not isinstance(transition, DiffusionTransition):
        raise SamplerError("transition must come from specverify.harness.reference.diffusion_transition(...)")
    if not callable(eps_fn):
        raise SamplerError("eps_fn must be callable as eps_fn(x, t)")
    if not isinstance(init, InitialLaw):
        raise SamplerError("init must be a specverify.harness.reference.InitialLaw(mean, var)")
    try:
        n, dim = shape
    except (TypeError, ValueError):
        raise SamplerError(f"shape must be a pair (n, dim), got {shape!r}") from None
    n, dim = positive_int(n, "n"), positive_int(dim, "dim")
    init_mean = np.asarray(init.mean, dtype=np.float64)
    if init_mean.shape not in ((), (dim,)):
        raise SamplerError(f"init_mean must be a float or an array of shape ({dim},), got shape {init_mean.shape}")
    if np.ndim(init.var) != 0 or not float(init.var) >= 0:
        raise SamplerError("init_var must be a float >= 0")
    coefficients = tuple(jnp.asarray(a) for a in (transition.t, transition.c_x, transition.c_eps, transition.sigma))
    return _diffusion(key, eps_fn, coefficients, (jnp.asarray(init_mean), jnp.asarray(float(init.var))), (n, dim),
                      bool(return_all))


@functools.partial(jax.jit, static_argnames=("score_fn", "return_all"))
def _langevin(key, score_fn, h, x0, return_all):
    keys = jax.random.split(key, h.shape[0])

    def step(x, inputs):
        k_key, hk = inputs
        z = jax.random.normal(k_key, x.shape, dtype=jnp.float64)
        x = x + hk * score_fn(x) + jnp.sqrt(2.0 * hk) * z
        return x, (x if return_all else None)

    x_last, xs = jax.lax.scan(step, x0, (keys, h))
    return jnp.concatenate([x0[None], xs]) if return_all else x_last


def sample_langevin(key, score_fn, step_size, n_steps: int, x0, *, return_all: bool = False) -> jax.Array:
    """Unadjusted Langevin (Euler-Maruyama): x_{k+1} = x_k + h_k score_fn(x_k) + sqrt(2 h_k) z_k from states
    ``x0`` (n, d); ``step_size`` is a float or one value per step.

    Contract: ``score_fn(x)`` maps (n, d) to (n, d) and is traceable by JAX; returns x_K (n, d) or, with
    ``return_all=True``, all states (K + 1, n, d); float64.
    """
    if not callable(score_fn):
        raise SamplerError("score_fn must be callable as score_fn(x)")
    h = step_sizes(step_size, n_steps)
    x0 = jnp.asarray(x0, dtype=jnp.float64)
    if x0.ndim != 2:
        raise SamplerError(f"x0 must have shape (n, d), got {x0.shape}")
    return _langevin(key, score_fn, jnp.asarray(h), x0, bool(return_all))
