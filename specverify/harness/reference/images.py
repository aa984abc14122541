"""The `images` problem, reference side: the smoothed empirical law of N image crops in JAX and numpyro (float64).

The plain data is a ``GMMSpec`` with N equal weights and one shared variance v = std^2 (the crops flattened to
(N, d)). For such a law the posterior mean simplifies (a = sqrt(abar_t), s_t^2 = a^2 v + 1 - a^2):

    E[x0 | x_t = x] = ((1 - a^2) sum_i r_i x_i + a v x) / s_t^2,
    r = softmax_i((a <x, x_i> - a^2 |x_i|^2 / 2) / s_t^2),

which :func:`images_x0` evaluates with two (n, d) x (d, N) products; :func:`specverify.harness.reference.gmm_x0`
(the general mixture formula) must give the same numbers, and the tests check that it does.

Deliberate twin: :class:`specverify.sampler.problems.images.ImagesDenoiser` (torch) writes the same formula.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from specverify._validate import positive_int
from specverify.errors import ChainError
from specverify.harness.reference.denoisers import _abar_at, _eps_from_x0
from specverify.harness.reference.models import gmm_data_law
from specverify.harness.reference.samplers import sample_diffusion
from specverify.harness.reference.schedules import DiffusionTransition
from specverify.specs import GMMSpec

__all__ = ["REFERENCE_BATCH", "images_data_law", "images_eps", "images_moments", "images_sampler", "images_x0"]

REFERENCE_BATCH = 1024  # samples per call of the JAX chain: one compiled shape, O(batch d) memory


def _check_empirical(spec) -> GMMSpec:
    if not isinstance(spec, GMMSpec):
        raise ChainError(f"expected a specverify.specs.GMMSpec, got {type(spec).__name__}")
    if np.ptp(spec.weights) > 1e-12 or np.ptp(spec.variances) > 0:
        raise ChainError("the images law needs equal weights and one shared variance (a smoothed empirical law)")
    return spec


def images_x0(spec: GMMSpec, betas):
    """E[x0 | x_t = x] for x0 ~ (1 / N) sum_i N(x_i, v I) (see the module docstring); x (n, d), t (n,) or scalar.

    Contract: float64; memory O(n (d + N)); the |x|^2 term, common to all components, is left out of the logits.
    """
    spec = _check_empirical(spec)
    abar_at = _abar_at(betas)
    mu = jnp.asarray(spec.means)  # (N, d)
    half_sq = 0.5 * jnp.sum(mu**2, axis=1)
    v = float(spec.variances[0])

    @jax.jit
    def x0(x, t):
        a2 = abar_at(x, t)  # (n, 1)
        a = jnp.sqrt(a2)
        s2 = a2 * v + (1.0 - a2)
        r = jax.nn.softmax((a * (x @ mu.T) - a2 * half_sq) / s2, axis=1)  # (n, N)
        return ((1.0 - a2) * (r @ mu) + a * v * x) / s2

    return x0


def images_eps(spec: GMMSpec, betas):
    """E[eps | x_t = x]: (x - sqrt(abar) x0_hat) / sqrt(1 - abar) with x0_hat from :func:`images_x0`."""
    return _eps_from_x0(images_x0(spec, betas), betas)


def images_data_law(spec: GMMSpec):
    """The data law as numpyro's MixtureSameFamily(Categorical(1 / N), Independent(Normal(x_i, std), 1))."""
    return gmm_data_law(_check_empirical(spec))


def images_moments(spec: GMMSpec) -> tuple[np.ndarray, np.ndarray]:
    """Mean (d,) and covariance (d, d) of the data law from the component positions: the crops' mean, and
    v I plus their covariance (divided by N: the components are the population)."""
    mu = _check_empirical(spec).means
    centred = mu - mu.mean(0)
    return mu.mean(0), spec.variances[0] * np.eye(spec.dim) + centred.T @ centred / mu.shape[0]


def images_sampler(spec: GMMSpec, betas, transition: DiffusionTransition, *, batch: int = REFERENCE_BATCH):
    """fn(n, seed) -> (n, d) float64 draws of the chain ``transition`` driven by :func:`images_eps` on ``betas``.

    Runs :func:`specverify.harness.reference.sample_diffusion` on blocks of ``batch`` samples, block j with key
    ``fold_in(PRNGKey(seed), j)`` (the last block is drawn whole and cut; n < ``batch`` is one block of n), so
    memory stays O(batch d) and one compiled shape serves every n >= ``batch``.
    """
    eps, dim = images_eps(spec, betas), spec.dim
    batch = positive_int(batch, "batch")

    def sample(n, seed):
        n = positive_int(n, "n")
        b, key = min(batch, n), jax.random.PRNGKey(seed)
        blocks = [np.asarray(sample_diffusion(jax.random.fold_in(key, j), eps, transition, (b, dim)))
                  for j in range(-(-n // b))]
        return np.concatenate(blocks)[:n]

    return sample
