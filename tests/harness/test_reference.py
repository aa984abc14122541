"""The independent reference side (:mod:`specverify.harness.reference`): schedules, closed-form denoisers, exact laws,
JAX samplers and numpyro models.

Exact tests first (float64 identities checked against formulas written out again in this file), then
one-sample statistical tests of the reference's own samplers against its exact laws, and negative controls
that prove the battery has power.

Statistical tests: the battery whitens n draws with the exact law and runs a one-sample KS test per coordinate
against N(0, 1) and one of the squared norm against chi2(d) (``method="asymp"``, pinned), Holm-corrected at
ALPHA family-wise (statsmodels ``multipletests(method="holm")``). A correct sampler fails one battery, over a
fresh seed, with probability at most ALPHA; the seeds are fixed, so verdicts are reproducible; thresholds come
from the declared alphas only. Eleven batteries here assert acceptance and one test compares NUTS with ULA at
ALPHA_NUTS, so the file's false-failure budget over fresh seeds is at most 11 * ALPHA + ALPHA_NUTS, about 1.1%.
The negative controls assert rejection; their docstrings size the effect against the battery's threshold.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from numpyro import distributions as dist
from numpyro.diagnostics import effective_sample_size
from scipy import integrate, special, stats

import specverify.harness.reference as R
from specverify.errors import ChainError, SamplerError
from specverify.specs import GaussianSpec, GMMSpec, LogisticSpec, beta_schedule
from tests._stats import standard_normal_battery

ALPHA = 1e-3  # false-failure probability of each one-sample battery (family-wise, Holm)
ALPHA_NUTS = 1e-5  # false-failure probability of the NUTS-vs-ULA posterior-mean check (Bonferroni over p)
N_MC = 20000  # draws per battery: a one-sample KS test at this n detects a KS distance of about 0.02
RTOL = 1e-10  # float64 identities
ATOL = 1e-12
KS_METHOD = "asymp"


def _key(seed: int):
    return jax.random.PRNGKey(seed)


def _battery(w, alpha: float) -> tuple[bool, str]:
    """The shared whitened battery (tests/_stats.py) on w or a list of blocks: (rejected at alpha, summary)."""
    r = standard_normal_battery(w, alpha, method=KS_METHOD)
    return r.rejected, r.summary()


# --- schedules ---------------------------------------------------------------------------------------------------

def _ddpm_posterior_form(betas):
    """Ho et al. eq. 7 written in the test: mean = c0 x0 + ct x_t, x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar),
    per diffusion time t = T-1 .. 0; returns (c_x, c_eps, sigma) in chain-step order."""
    T = betas.size
    c_x, c_eps, sigma = [], [], []
    for t in range(T - 1, -1, -1):
        abar = np.prod(1 - betas[: t + 1])
        abar_prev = np.prod(1 - betas[:t])  # empty product = 1 at t = 0
        c0 = np.sqrt(abar_prev) * betas[t] / (1 - abar)
        ct = np.sqrt(1 - betas[t]) * (1 - abar_prev) / (1 - abar)
        c_x.append(ct + c0 / np.sqrt(abar))
        c_eps.append(-c0 * np.sqrt(1 - abar) / np.sqrt(abar))
        sigma.append(np.sqrt(betas[t] * (1 - abar_prev) / (1 - abar)))
    return np.array(c_x), np.array(c_eps), np.array(sigma)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ddpm_coefficients_match_the_posterior_form(schedule):
    betas = beta_schedule(schedule, 200)
    tr = R.diffusion_transition(betas)
    c_x, c_eps, sigma = _ddpm_posterior_form(betas)
    np.testing.assert_array_equal(tr.t, np.arange(199, -1, -1))
    np.testing.assert_allclose(tr.c_x, c_x, rtol=RTOL)
    np.testing.assert_allclose(tr.c_eps, c_eps, rtol=RTOL)
    np.testing.assert_allclose(tr.sigma, sigma, rtol=RTOL, atol=ATOL)
    assert tr.sigma[-1] == 0.0 and tr.abar_prev[-1] == 1.0
    np.testing.assert_array_equal(tr.abar, np.cumprod(1 - betas)[::-1])
    np.testing.assert_allclose(tr.abar_prev[:-1], tr.abar[1:], rtol=0)
    beta_var = R.diffusion_transition(betas, variance="beta")
    np.testing.assert_allclose(beta_var.sigma**2, betas[::-1], rtol=RTOL)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ddim_eta_one_on_the_full_schedule_is_ddpm_posterior(schedule):
    betas = beta_schedule(schedule, 300)
    ddpm, ddim = R.diffusion_transition(betas), R.diffusion_transition(betas, "ddim", eta=1.0)
    for field in ("t", "abar", "abar_prev"):
        np.testing.assert_array_equal(getattr(ddim, field), getattr(ddpm, field))
    for field in ("c_x", "c_eps", "sigma"):
        np.testing.assert_allclose(getattr(ddim, field), getattr(ddpm, field), rtol=RTOL, atol=ATOL)


def test_ddim_on_a_subsequence():
    betas = beta_schedule("linear", 1000)
    ts = np.arange(999, -1, -37)
    tr = R.diffusion_transition(betas, "ddim", eta=0.0, timesteps=ts)
    abar = np.cumprod(1 - betas)
    np.testing.assert_array_equal(tr.abar, abar[ts])
    np.testing.assert_array_equal(tr.abar_prev, np.append(abar[ts[1:]], 1.0))
    assert np.all(tr.sigma == 0.0)
    # eta = 0: x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev) eps
    a, ap = tr.abar, tr.abar_prev
    np.testing.assert_allclose(tr.c_x, np.sqrt(ap / a), rtol=RTOL)
    np.testing.assert_allclose(tr.c_eps, np.sqrt(1 - ap) - np.sqrt(ap * (1 - a) / a), rtol=RTOL, atol=ATOL)
    half = R.diffusion_transition(betas, "ddim", eta=0.5, timesteps=ts)
    assert half.sigma[-1] == 0.0 and np.all(half.sigma[:-1] > 0)
    np.testing.assert_allclose(half.sigma**2 + (half.c_eps + np.sqrt(ap * (1 - a) / a)) ** 2, 1 - ap,
                               rtol=RTOL, atol=ATOL)  # the total variance budget of eq. 12


@pytest.mark.parametrize("kwargs,match", [
    (dict(betas="linear"), "beta_schedule"),
    (dict(sampler="ddpx"), "sampler"),
    (dict(sampler="ddim", eta=1.5), "eta"),
    (dict(sampler="ddpm", timesteps=np.arange(9, -1, -2)), "DDPM"),
    (dict(sampler="ddpm", variance="small"), "variance"),
    (dict(sampler="ddim", timesteps=np.array([3, 5, 1])), "strictly decreasing"),
    (dict(sampler="ddim", timesteps=np.array([12, 5, 1])), "strictly decreasing"),
])
def test_transition_rejects_bad_arguments(kwargs, match):
    kwargs = {"betas": beta_schedule("linear", 10), **kwargs}
    with pytest.raises(ChainError, match=match):
        R.diffusion_transition(kwargs.pop("betas"), **kwargs)


def test_x0_to_eps_inverts_the_forward_process():
    rng = np.random.default_rng(0)
    x0, eps, abar = rng.normal(size=(5, 3)), rng.normal(size=(5, 3)), rng.uniform(0.01, 0.99, size=(5, 1))
    x = np.sqrt(abar) * x0 + np.sqrt(1 - abar) * eps
    np.testing.assert_allclose(R.x0_to_eps(x0, x, abar), eps, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(R.x0_to_eps(jnp.asarray(x0), jnp.asarray(x), jnp.asarray(abar)), eps, rtol=RTOL,
                               atol=ATOL)


# --- denoisers and scores ----------------------------------------------------------------------------------------

def _rotation(d, seed):
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
    return q


def test_one_component_gmm_equals_the_isotropic_gaussian():
    d, v = 7, 0.37
    mu = np.random.default_rng(1).normal(size=d)
    betas = beta_schedule("cosine", 100)
    gmm = GMMSpec(np.ones(1), mu[None], np.array([v]))
    gauss = GaussianSpec(mu, np.full(d, v), _rotation(d, 2))
    x = jnp.asarray(2 * np.random.default_rng(3).normal(size=(64, d)))
    t = jnp.asarray(np.random.default_rng(4).integers(0, 100, size=64))
    np.testing.assert_allclose(R.gmm_eps(gmm, betas)(x, t), R.gaussian_eps(gauss, betas)(x, t), rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(R.gmm_x0(gmm, betas)(x, t), R.gaussian_x0(gauss, betas)(x, t), rtol=RTOL, atol=ATOL)


def test_denoisers_give_nan_outside_the_schedule():
    spec = GaussianSpec.default(2)
    betas = beta_schedule("linear", 10)
    x = jnp.ones((3, 2))
    for fn in (R.gaussian_eps(spec, betas), R.gmm_eps(GMMSpec.default(2), betas)):
        out = np.asarray(fn(x, jnp.array([0, 10, -1])))
        assert np.isfinite(out[0]).all() and np.isnan(out[1:]).all()


def test_gmm_x0_is_bayes_rule_by_quadrature():
    spec = GMMSpec(np.array([0.2, 0.5, 0.3]), np.array([[-1.5], [0.3], [2.0]]), np.array([0.1, 0.5, 0.05]))
    betas = beta_schedule("linear", 100)
    abar = np.cumprod(1 - betas)
    x0_fn = R.gmm_x0(spec, betas)

    def prior(u):
        return sum(w * stats.norm.pdf(u, m[0], np.sqrt(v)) for w, m, v in zip(spec.weights, spec.means,
                                                                              spec.variances, strict=True))

    for x, t in [(-2.0, 10), (0.5, 40), (1.7, 70), (3.0, 99)]:
        a = abar[t]

        def lik(u, x=x, a=a):
            return stats.norm.pdf(x, np.sqrt(a) * u, np.sqrt(1 - a))

        num = integrate.quad(lambda u, lik=lik: u * prior(u) * lik(u), -8, 8, limit=200, epsabs=1e-13)[0]
        den = integrate.quad(lambda u, lik=lik: prior(u) * lik(u), -8, 8, limit=200, epsabs=1e-13)[0]
        got = float(x0_fn(jnp.array([[x]]), jnp.array([t]))[0, 0])
        assert got == pytest.approx(num / den, rel=1e-7, abs=1e-9)


def test_gaussian_x0_matches_a_dense_solve():
    spec = GaussianSpec.default(6, seed=3)
    betas = beta_schedule("linear", 50)
    abar = np.cumprod(1 - betas)
    rng = np.random.default_rng(5)
    x, t = rng.normal(size=(10, 6)), rng.integers(0, 50, size=10)
    got = np.asarray(R.gaussian_x0(spec, betas)(jnp.asarray(x), jnp.asarray(t)))
    got_eps = np.asarray(R.gaussian_eps(spec, betas)(jnp.asarray(x), jnp.asarray(t)))
    for i in range(10):
        a = abar[t[i]]
        B = a * spec.cov + (1 - a) * np.eye(6)
        want = spec.mean + np.sqrt(a) * spec.cov @ np.linalg.solve(B, x[i] - np.sqrt(a) * spec.mean)
        np.testing.assert_allclose(got[i], want, rtol=RTOL, atol=ATOL)
        want_eps = np.sqrt(1 - a) * np.linalg.solve(B, x[i] - np.sqrt(a) * spec.mean)  # E[eps | x] directly
        np.testing.assert_allclose(got_eps[i], want_eps, rtol=RTOL, atol=ATOL)


def test_gaussian_score_is_the_gradient_of_the_numpyro_log_density():
    spec = GaussianSpec.default(5, seed=1)
    mvn = dist.MultivariateNormal(jnp.asarray(spec.mean), covariance_matrix=jnp.asarray(spec.cov))
    x = jnp.asarray(np.random.default_rng(0).normal(size=(8, 5)))
    want = jax.vmap(jax.grad(mvn.log_prob))(x)
    np.testing.assert_allclose(R.gaussian_score(spec)(x), want, rtol=RTOL, atol=ATOL)


def test_logistic_score_matches_a_hand_written_gradient():
    spec = LogisticSpec.breast_cancer(dim=31, prior_scale=2.0)
    theta = np.random.default_rng(0).normal(scale=0.3, size=(4, 31))
    X, y, s = spec.X, spec.y, spec.prior_scale
    want = (y - special.expit(theta @ X.T)) @ X - theta / s**2
    got = np.asarray(R.logistic_score(spec)(jnp.asarray(theta)))
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())
    np.testing.assert_allclose(np.asarray(R.logistic_score(spec)(jnp.asarray(theta[0]))), want[0], rtol=1e-10,
                               atol=1e-10 * np.abs(want).max())
    # the potential is -log prior - log likelihood, constants included
    pot = float(R.logistic_potential(spec)(jnp.asarray(theta[0])))
    logits = X @ theta[0]
    want_pot = -(y @ logits - np.logaddexp(0, logits).sum()) - stats.norm.logpdf(theta[0], 0, s).sum()
    assert pot == pytest.approx(want_pot, rel=1e-12)


def test_gmm_data_law_is_the_mixture_density():
    spec = GMMSpec.default(3, n_components=4)
    x = np.random.default_rng(0).normal(size=(6, 3))
    want = np.log(sum(w * stats.multivariate_normal.pdf(x, m, v * np.eye(3))
                      for w, m, v in zip(spec.weights, spec.means, spec.variances, strict=True)))
    np.testing.assert_allclose(R.gmm_data_law(spec).log_prob(jnp.asarray(x)), want, rtol=1e-10)


# --- exact laws: deterministic identities ------------------------------------------------------------------------

def _assert_same_law(fast, dense):
    np.testing.assert_allclose(fast.means, dense.means, rtol=RTOL, atol=ATOL)
    covs = np.array([fast.at(k).cov for k in range(fast.n_steps + 1)])
    np.testing.assert_allclose(covs, dense.covs, rtol=RTOL, atol=ATOL * np.abs(dense.covs).max())


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_eigenbasis_law_equals_dense_law(sampler):
    spec = GaussianSpec.default(16, seed=4)
    if sampler == "ddpm":
        tr = R.diffusion_transition(beta_schedule("linear", 50))
    else:
        tr = R.diffusion_transition(beta_schedule("linear", 1000), "ddim", eta=0.5, timesteps=np.arange(999, -1, -20))
    init_mean = np.linspace(-1, 1, 16)
    _assert_same_law(R.gaussian_chain_law(spec, tr, init_mean=init_mean, init_var=1.7),
                     R.gaussian_chain_law_dense(spec, tr, init_mean=init_mean, init_var=1.7))


def test_ddpm_output_law_approaches_the_data_law():
    """Exactness is relative to the discretised chain: the DDPM output law is not the data law, but it gets
    closer as the schedule is refined (the reference measures by how much)."""
    spec = GaussianSpec.default(16)
    kl = {T: R.gaussian_kl(R.gaussian_chain_law(spec, R.diffusion_transition(beta_schedule("linear", T))).final,
                           R.data_law(spec)) for T in (50, 200, 1000)}
    assert kl[50] > kl[200] > kl[1000] > 0


def test_gaussian_kl_matches_the_dense_formula():
    rng = np.random.default_rng(0)
    p = R.GaussianLaw(rng.normal(size=5), rng.uniform(0.5, 2, 5), _rotation(5, 1))
    q = R.GaussianLaw(rng.normal(size=5), rng.uniform(0.5, 2, 5), _rotation(5, 2))
    Sp, Sq = p.cov, q.cov
    dm = q.mean - p.mean
    want = 0.5 * (np.trace(np.linalg.solve(Sq, Sp)) - 5 + dm @ np.linalg.solve(Sq, dm)
                  + np.linalg.slogdet(Sq)[1] - np.linalg.slogdet(Sp)[1])
    assert R.gaussian_kl(p, q) == pytest.approx(want, rel=1e-10)
    shared = R.GaussianLaw(q.mean, rng.uniform(0.5, 2, 5), q.eigvecs)
    Ss = shared.cov
    want_shared = 0.5 * (np.trace(np.linalg.solve(Sq, Ss)) - 5 + np.linalg.slogdet(Sq)[1] - np.linalg.slogdet(Ss)[1])
    assert R.gaussian_kl(shared, q) == pytest.approx(want_shared, rel=1e-10)
    assert R.gaussian_kl(q, q) == 0.0


def test_ula_law_converges_to_its_stationary_law():
    spec = GaussianSpec.default(8)
    h = 0.05
    law = R.langevin_gaussian_law(spec, h, 2000, init_mean=3.0, init_var=0.2)
    stationary = R.ula_stationary_law(spec, h)
    np.testing.assert_allclose(law.final.mean, stationary.mean, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(law.final.eigvals, stationary.eigvals, rtol=1e-10)
    assert R.gaussian_kl(stationary, R.data_law(spec)) > 0
    with pytest.raises(ChainError, match="stable"):
        R.ula_stationary_law(spec, 2.5 * spec.eigvals.min())


def test_samplers_are_pure_functions_of_their_key():
    spec = GaussianSpec.default(3)
    tr = R.diffusion_transition(beta_schedule("linear", 20))
    eps = R.gaussian_eps(spec, tr.betas)
    a = R.sample_diffusion(_key(0), eps, tr, (50, 3))
    b = R.sample_diffusion(_key(0), eps, tr, (50, 3))
    c = R.sample_diffusion(_key(1), eps, tr, (50, 3))
    assert a.dtype == jnp.float64 and a.shape == (50, 3)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    every = R.sample_diffusion(_key(0), eps, tr, (50, 3), return_all=True)
    assert every.shape == (21, 50, 3)
    np.testing.assert_array_equal(every[-1], a)
    x0 = jnp.zeros((50, 3))
    lg = R.sample_langevin(_key(2), R.gaussian_score(spec), 0.1, 10, x0, return_all=True)
    assert lg.shape == (11, 50, 3)
    np.testing.assert_array_equal(lg[-1], R.sample_langevin(_key(2), R.gaussian_score(spec), 0.1, 10, x0))
    with pytest.raises(SamplerError, match="init_mean"):
        R.sample_diffusion(_key(0), eps, tr, (50, 3), init=R.InitialLaw(mean=np.zeros(4)))
    with pytest.raises(SamplerError, match="x0"):
        R.sample_langevin(_key(0), R.gaussian_score(spec), 0.1, 10, jnp.zeros(3))


# --- exact laws vs the reference's own samplers (statistical) -----------------------------------------------------

@pytest.mark.parametrize("d", [1, 2, 16, 256])
def test_ddpm_sampler_has_the_exact_chain_law(d):
    spec = GaussianSpec.default(d, seed=d)
    tr = R.diffusion_transition(beta_schedule("linear", 50))
    x = R.sample_diffusion(_key(d), R.gaussian_eps(spec, tr.betas), tr, (N_MC, d))
    rejected, summary = _battery(R.gaussian_chain_law(spec, tr).final.whiten(x), ALPHA)
    assert not rejected, summary


def test_ddim_sampler_has_the_exact_per_step_law():
    """DDIM eta = 0.5 on a subsequence, a non-zero initial mean; intermediate steps checked too (one family)."""
    spec = GaussianSpec.default(16, seed=7)
    tr = R.diffusion_transition(beta_schedule("cosine", 1000), "ddim", eta=0.5, timesteps=np.arange(999, -1, -25))
    xs = R.sample_diffusion(_key(7), R.gaussian_eps(spec, tr.betas), tr, (N_MC, 16), init=R.InitialLaw(0.5, 0.8),
                            return_all=True)
    law = R.gaussian_chain_law(spec, tr, init_mean=0.5, init_var=0.8)
    ks = (0, 10, 25, tr.n_steps)
    rejected, summary = _battery([law.at(k).whiten(xs[k]) for k in ks], ALPHA)
    assert not rejected, summary


@pytest.mark.parametrize("d", [1, 2, 16, 256])
def test_langevin_sampler_has_the_exact_finite_step_law(d):
    spec = GaussianSpec.default(d, seed=d + 100)
    h, n_steps = 0.05, 50
    x0 = jax.random.normal(_key(1000 + d), (N_MC, d), dtype=jnp.float64)
    x = R.sample_langevin(_key(d), R.gaussian_score(spec), h, n_steps, x0)
    rejected, summary = _battery(R.langevin_gaussian_law(spec, h, n_steps).final.whiten(x), ALPHA)
    assert not rejected, summary


def test_battery_rejects_a_slightly_wrong_law():
    """Negative control: the exact DDPM law with its eigenvalues scaled by 1.05 (d = 16). Under that law
    |w|^2 has mean 16 / 1.05 instead of 16, a shift of 0.13 sd of chi2(16): a KS distance near 0.05, well
    above the about 0.016 the battery needs at n = 20000 and alpha = 1e-3 / 17."""
    spec = GaussianSpec.default(16, seed=16)
    tr = R.diffusion_transition(beta_schedule("linear", 50))
    x = R.sample_diffusion(_key(16), R.gaussian_eps(spec, tr.betas), tr, (N_MC, 16))
    exact = R.gaussian_chain_law(spec, tr).final
    wrong = R.GaussianLaw(exact.mean, 1.05 * exact.eigvals, exact.eigvecs)
    assert not _battery(exact.whiten(x), ALPHA)[0]
    rejected, summary = _battery(wrong.whiten(x), ALPHA)
    assert rejected, summary


def test_battery_sees_the_ula_bias():
    """Negative control: ULA at h = 0.05 run to stationarity (400 steps, about 12 relaxation times of the
    slowest direction) has the law of :func:`ula_stationary_law`, not the target N(mu, Sigma) (KL about 0.09
    here): the battery accepts the first and rejects the second."""
    spec = GaussianSpec.default(16)
    h, n_steps = 0.05, 400
    x0 = jax.random.normal(_key(5), (N_MC, 16), dtype=jnp.float64)
    x = R.sample_langevin(_key(6), R.gaussian_score(spec), h, n_steps, x0)
    rejected, summary = _battery(R.langevin_gaussian_law(spec, h, n_steps).final.whiten(x), ALPHA)
    assert not rejected, summary
    rejected, summary = _battery(R.data_law(spec).whiten(x), ALPHA)
    assert rejected, summary


# --- numpyro: NUTS as a sanity reference for the Langevin target ------------------------------------------------

def _logistic_map(spec: LogisticSpec, iters: int = 50) -> np.ndarray:
    """MAP of the logistic posterior by Newton's method (numpy, hand-written gradient and Hessian)."""
    X, y, s = spec.X, spec.y, spec.prior_scale
    theta = np.zeros(spec.dim)
    for _ in range(iters):
        p = special.expit(X @ theta)
        g = X.T @ (y - p) - theta / s**2
        H = (X * (p * (1 - p))[:, None]).T @ X + np.eye(spec.dim) / s**2
        theta = theta + np.linalg.solve(H, g)
    return theta


def test_nuts_posterior_mean_matches_a_long_ula_run():
    """NUTS (numpyro) and long ULA runs agree on the posterior mean of logistic regression on breast_cancer(dim=5)
    within z standard errors, z from ALPHA_NUTS (two-sided, Bonferroni over the 5 coordinates).

    ULA: 1000 independent chains at h = 1e-3 (4000 steps) and 1000 at 2h (2000 steps), started at the MAP;
    4000 steps are about 5 relaxation times of the flattest direction (Hessian eigenvalue >= 1 / prior_scale^2).
    ULA's mean is biased by O(h) (about 0.01 in the intercept at h = 2e-3, one standard error here), so the
    comparison uses the Richardson extrapolation 2 m(h) - m(2h), whose bias is O(h^2). The standard error
    combines NUTS's (numpyro's effective sample size) and the ULA chains' (independent final states)."""
    spec = LogisticSpec.breast_cancer(dim=5)
    draws = R.run_nuts(spec, _key(0), 500, 2000)
    ess = np.asarray(effective_sample_size(draws[None]))
    x0 = jnp.broadcast_to(jnp.asarray(_logistic_map(spec)), (1000, spec.dim))
    score, h = R.logistic_score(spec), 1e-3
    fine = np.asarray(R.sample_langevin(_key(1), score, h, 4000, x0))
    coarse = np.asarray(R.sample_langevin(_key(2), score, 2 * h, 2000, x0))
    ula_mean = 2 * fine.mean(0) - coarse.mean(0)
    se = np.sqrt(draws.var(0, ddof=1) / ess + 4 * fine.var(0, ddof=1) / len(fine)
                 + coarse.var(0, ddof=1) / len(coarse))
    z = stats.norm.isf(ALPHA_NUTS / (2 * spec.dim))
    assert np.all(np.abs(draws.mean(0) - ula_mean) <= z * se), (draws.mean(0), ula_mean, se)
