"""The `images` reference (:mod:`specverify.harness.reference.images`): the empirical-mixture denoiser, its numpyro
data law and its blocked JAX sampler, on synthetic component positions (no torch, no sampler side).

Exact tests (float64, 1e-10) except one: the moments of draws from the numpyro law against the moments computed
from the component positions, a two-sided z-test per statistic (CLT; the variance of each statistic estimated
from the same draws) with Bonferroni over the statistics at family level ALPHA: a correct law fails it over
fresh seeds with probability about ALPHA.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import specverify.harness.reference as R
from specverify.errors import ChainError
from specverify.specs import GMMSpec, beta_schedule

ALPHA = 1e-3
RTOL, ATOL = 1e-10, 1e-10


def _spec(n=5, d=12, std=0.3, seed=0):
    mu = np.random.default_rng(seed).uniform(-1, 1, size=(n, d))
    return GMMSpec(np.full(n, 1.0 / n), mu, np.full(n, std**2))


def _points(n, d, seed=1):
    rng = np.random.default_rng(seed)
    return 1.5 * rng.normal(size=(n, d)), rng.integers(0, 40, size=n)


@pytest.mark.parametrize("d", [1, 12, 300])
def test_images_x0_equals_the_general_mixture_formula(d):
    spec, betas = _spec(d=d), beta_schedule("cosine", 40)
    x, t = _points(9, d)
    np.testing.assert_allclose(R.images_x0(spec, betas)(x, t), R.gmm_x0(spec, betas)(x, t), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(R.images_eps(spec, betas)(x, t), R.gmm_eps(spec, betas)(x, t), rtol=RTOL, atol=ATOL)


def test_images_x0_is_bayes_rule():
    """Written out again: responsibilities from the Gaussian densities N(x; a x_i, s_t^2 I), then per component the
    posterior mean x_i + a v / s_t^2 (x - a x_i)."""
    spec, betas = _spec(n=3, d=4), beta_schedule("linear", 40)
    x, t = _points(6, 4, seed=2)
    abar = np.cumprod(1 - betas)[t][:, None]
    a, v = np.sqrt(abar), spec.variances[0]
    s2 = abar * v + 1 - abar
    logp = np.stack([-0.5 * ((x - a * m) ** 2).sum(1) / s2[:, 0] for m in spec.means], 1)
    r = np.exp(logp - special.logsumexp(logp, axis=1, keepdims=True))
    want = sum(r[:, [i]] * (m + a * v / s2 * (x - a * m)) for i, m in enumerate(spec.means))
    np.testing.assert_allclose(R.images_x0(spec, betas)(x, t), want, rtol=RTOL, atol=ATOL)


def test_data_law_moments_are_those_of_the_component_positions():
    spec = _spec()
    law = R.images_data_law(spec)
    mean, cov = R.images_moments(spec)
    np.testing.assert_allclose(mean, spec.means.mean(0), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(cov, 0.09 * np.eye(12) + np.cov(spec.means.T, bias=True), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(law.mean), mean, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(law.variance), np.diag(cov), rtol=RTOL, atol=ATOL)
    x = spec.means[1] + 0.1
    want = special.logsumexp(stats.norm.logpdf(x, spec.means, 0.3).sum(1)) - np.log(5)
    np.testing.assert_allclose(float(law.log_prob(jnp.asarray(x))), want, rtol=RTOL)


def test_draws_from_the_data_law_have_the_moments_of_the_positions():
    """z-tests (see the module docstring) of the mean and of the second moments along 4 fixed directions and
    their pairwise products (off-diagonal covariance), Bonferroni over all of them at ALPHA."""
    spec, m = _spec(), 40000
    mean, cov = R.images_moments(spec)
    x = np.asarray(R.images_data_law(spec).sample(jax.random.PRNGKey(0), (m,)))
    u = np.linalg.qr(np.random.default_rng(3).normal(size=(12, 4)))[0]  # 4 orthonormal directions
    p = (x - mean) @ u  # (m, 4), mean 0, covariance u^T cov u
    pairs = [(i, j) for i in range(4) for j in range(i, 4)]
    stat = np.column_stack([p] + [p[:, i] * p[:, j] for i, j in pairs])
    want = np.concatenate([np.zeros(4), [u[:, i] @ cov @ u[:, j] for i, j in pairs]])
    z = (stat.mean(0) - want) / (stat.std(0, ddof=1) / np.sqrt(m))
    assert np.abs(z).max() <= stats.norm.isf(ALPHA / (2 * z.size)), z


def test_the_empirical_form_is_required():
    spec = GMMSpec(np.array([0.3, 0.7]), np.zeros((2, 3)), np.array([0.1, 0.1]))
    for fn in (R.images_data_law, R.images_moments, lambda s: R.images_x0(s, beta_schedule("linear", 5))):
        with pytest.raises(ChainError, match="equal weights"):
            fn(spec)


def test_the_sampler_runs_in_blocks_with_keys_folded_in():
    spec, betas = _spec(d=6), beta_schedule("linear", 8)
    tr = R.diffusion_transition(betas, "ddim", eta=0.7)
    fn = R.images_sampler(spec, betas, tr, batch=4)
    x = fn(10, 5)
    eps = R.images_eps(spec, betas)
    key = jax.random.PRNGKey(5)
    blocks = [np.asarray(R.sample_diffusion(jax.random.fold_in(key, j), eps, tr, (4, 6))) for j in range(3)]
    assert x.shape == (10, 6) and np.isfinite(x).all()
    np.testing.assert_array_equal(x, np.concatenate(blocks)[:10])
    np.testing.assert_array_equal(fn(10, 5), x)
    assert fn(3, 5).shape == (3, 6)  # fewer than a block: one block of 3
