"""Closed-form denoisers and scores in JAX (float64), built from the plain data in :mod:`specverify.specs`.

A denoiser is a function ``f(x, t)`` of states ``x`` (n, d) and integer diffusion times ``t`` (n,) (or a
scalar) in [0, T) (a time outside gives NaN) that returns the posterior mean E[eps | x_t = x] (``*_eps``) or
E[x0 | x_t = x] (``*_x0``) under the forward process x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,
abar_t = prod_{s <= t} (1 - beta_s). These are the exact (Bayes-optimal) denoisers, so a chain driven by them
has a law that depends on the data law only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from specverify.errors import ChainError
from specverify.harness.reference.schedules import _schedule, x0_to_eps
from specverify.specs import GaussianSpec, GMMSpec, LogisticSpec

__all__ = ["gaussian_eps", "gaussian_score", "gaussian_x0", "gmm_eps", "gmm_x0", "logistic_score"]


def _abar_at(betas):
    """t -> abar_t as an (n, 1) column; a time outside [0, T) gives NaN (JAX would clamp the index silently)."""
    abar = jnp.asarray(np.cumprod(1.0 - _schedule(betas)))
    T = abar.shape[0]

    def at(x, t):
        t = jnp.broadcast_to(jnp.asarray(t), x.shape[:1])
        a = jnp.where((t >= 0) & (t < T), abar[jnp.clip(t, 0, T - 1)], jnp.nan)
        return a[:, None]

    return at


def _check_spec(spec, cls):
    if not isinstance(spec, cls):
        raise ChainError(f"expected a specverify.specs.{cls.__name__}, got {type(spec).__name__}")


def gmm_x0(spec: GMMSpec, betas):
    """E[x0 | x_t = x] for x0 ~ sum_j w_j N(mu_j, v_j I): Bayes' rule over the components, then per component
    the linear Gaussian posterior mean mu_j + sqrt(abar) v_j / s_j^2 (x - sqrt(abar) mu_j), where
    s_j^2 = abar v_j + 1 - abar is the component's variance at time t.

    Contract: responsibilities are computed with logsumexp and |x - sqrt(abar) mu_j|^2 is expanded so memory
    stays O(n (d + K)); float64 throughout.
    """
    _check_spec(spec, GMMSpec)
    abar_at = _abar_at(betas)
    logw = jnp.log(jnp.asarray(spec.weights))
    mu = jnp.asarray(spec.means)  # (K, d)
    var = jnp.asarray(spec.variances)  # (K,)
    mu_sq = jnp.sum(mu**2, axis=1)
    d = spec.dim

    @jax.jit
    def x0(x, t):
        a2 = abar_at(x, t)  # (n, 1)
        a = jnp.sqrt(a2)
        s2 = a2 * var + (1.0 - a2)  # (n, K)
        sq = jnp.sum(x**2, axis=1, keepdims=True) - 2.0 * a * (x @ mu.T) + a2 * mu_sq  # |x - a mu_j|^2
        logits = logw - 0.5 * d * jnp.log(s2) - 0.5 * sq / s2
        r = jnp.exp(logits - jax.scipy.special.logsumexp(logits, axis=1, keepdims=True))  # (n, K)
        gain = r * a * var / s2  # weight of (x - a mu_j) in the posterior mean
        return r @ mu + jnp.sum(gain, axis=1, keepdims=True) * x - (gain * a) @ mu

    return x0


def _eps_from_x0(x0, betas):
    abar_at = _abar_at(betas)

    @jax.jit
    def eps(x, t):
        return x0_to_eps(x0(x, t), x, abar_at(x, t))

    return eps


def gmm_eps(spec: GMMSpec, betas):
    """E[eps | x_t = x] under the GMM: (x - sqrt(abar) x0_hat) / sqrt(1 - abar) with x0_hat from :func:`gmm_x0`."""
    return _eps_from_x0(gmm_x0(spec, betas), betas)


def gaussian_x0(spec: GaussianSpec, betas):
    """E[x0 | x_t = x] for x0 ~ N(mu, Sigma), Sigma = Q diag(lam) Q^T:
    mu + sqrt(abar) Sigma (abar Sigma + (1 - abar) I)^{-1} (x - sqrt(abar) mu), evaluated in the eigenbasis
    (per direction the gain is sqrt(abar) lam / (abar lam + 1 - abar))."""
    _check_spec(spec, GaussianSpec)
    abar_at = _abar_at(betas)
    mu, lam, q = (jnp.asarray(a) for a in (spec.mean, spec.eigvals, spec.eigvecs))

    @jax.jit
    def x0(x, t):
        a2 = abar_at(x, t)
        a = jnp.sqrt(a2)
        u = (x - a * mu) @ q
        return mu + (u * (a * lam / (a2 * lam + 1.0 - a2))) @ q.T

    return x0


def gaussian_eps(spec: GaussianSpec, betas):
    """E[eps | x_t = x] for x0 ~ N(mu, Sigma): (x - sqrt(abar) x0_hat) / sqrt(1 - abar), x0_hat from
    :func:`gaussian_x0`. Linear in x."""
    return _eps_from_x0(gaussian_x0(spec, betas), betas)


def gaussian_score(spec: GaussianSpec):
    """grad log N(x; mu, Sigma) = -Sigma^{-1} (x - mu), in the eigenbasis; x of shape (n, d) or (d,)."""
    _check_spec(spec, GaussianSpec)
    mu, lam, q = (jnp.asarray(a) for a in (spec.mean, spec.eigvals, spec.eigvecs))

    @jax.jit
    def score(x):
        return -(((x - mu) @ q) / lam) @ q.T

    return score


def logistic_score(spec: LogisticSpec):
    """grad log p(theta | X, y) for Bayesian logistic regression: ``jax.grad`` of minus numpyro's potential
    energy of :func:`specverify.harness.reference.models.logistic_model`; theta of shape (n, p) or (p,)."""
    _check_spec(spec, LogisticSpec)
    from specverify.harness.reference.models import logistic_potential

    potential = logistic_potential(spec)
    grad = jax.grad(lambda th: -potential(th))
    batched = jax.vmap(grad)

    @jax.jit
    def score(theta):
        return grad(theta) if theta.ndim == 1 else batched(theta)

    return score
