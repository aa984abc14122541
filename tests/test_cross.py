"""The torch side (problems, plain and speculative samplers) against the independent JAX/numpyro reference.

Exact comparisons first (denoisers, scores and transition coefficients to 1e-10 in float64), then one-sample
tests against exact laws (gaussian, langevin-gaussian) and two-sample tests against the JAX reference sampler
(gmm). Every battery is Holm-corrected at ALPHA; seeds are fixed.
"""

import jax
import numpy as np
import pytest
import torch

from specverify.harness import reference as ref
from specverify.harness.stats import gaussian_one_sample, ks_battery
from specverify.sampler.drafters import make_drafter
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import make_problem
from specverify.sampler.speculative import plain_sample, speculative_sample
from specverify.specs import beta_schedule

ALPHA = 1e-3  # family-wise false-failure rate of each battery in this file
N = 20000
F64 = torch.float64
DRAFTERS = ["frozen-drift", "frozen-denoiser", "independent", "oracle"]


def _points(n, d, seed=0, scale=1.5):
    rng = np.random.default_rng(seed)
    return scale * rng.normal(size=(n, d)), rng.integers(0, 40, size=n)


def _close(a, b):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-10, atol=1e-10)


# --- exact agreement: both halves built from the same plain data -------------------------------------------

@pytest.mark.parametrize("name,ref_eps", [("gaussian", ref.gaussian_eps), ("gmm", ref.gmm_eps)])
@pytest.mark.parametrize("dim", [1, 2, 64, 3072])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_denoisers_agree(name, ref_eps, dim, schedule):
    p = make_problem(name, dim=dim)
    betas = beta_schedule(schedule, 40)
    x, t = _points(16, dim)
    got = p.model(betas, "eps").to(F64)(torch.tensor(x), torch.tensor(t))
    _close(got.numpy(), ref_eps(p.spec, betas)(x, t))


@pytest.mark.parametrize("dim", [1, 16, 3072])
def test_langevin_gaussian_scores_agree(dim):
    p = make_problem("langevin-gaussian", dim=dim)
    x, _ = _points(8, dim, seed=1)
    chain = p.chain(5).to(dtype=F64)
    _close(chain.model(torch.tensor(x), torch.zeros(8, dtype=torch.long)).numpy(), ref.gaussian_score(p.spec)(x))


@pytest.mark.parametrize("dim", [1, 5, 31])
def test_langevin_model_scores_agree(dim):
    p = make_problem("langevin-model", dim=dim)
    theta, _ = _points(8, dim, seed=2, scale=0.3)
    chain = p.chain(5).to(dtype=F64)
    got = chain.model(torch.tensor(theta), torch.zeros(8, dtype=torch.long)).numpy()
    _close(got, ref.logistic_score(p.spec)(theta))


@pytest.mark.parametrize("sampler,eta", [("ddpm", 1.0), ("ddim", 0.4), ("ddim", 1.0)])
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_transition_coefficients_agree(sampler, eta, schedule):
    p = make_problem("gaussian", dim=2)
    chain = p.chain(50, sampler=sampler, eta=eta, schedule=schedule)
    tr = ref.diffusion_transition(beta_schedule(schedule, 50), sampler, eta=eta)
    _close(chain.a, tr.c_x)
    _close(chain.b, tr.c_eps)
    _close(chain.sigma, tr.sigma)


# --- one-sample tests against the exact laws -----------------------------------------------------------------

def _gaussian_law(p, steps, sampler="ddpm", eta=1.0):
    tr = ref.diffusion_transition(beta_schedule("linear", steps), sampler, eta=eta)
    return ref.gaussian_chain_law(p.spec, tr).final


def _assert_matches(x, law, what):
    b = gaussian_one_sample(np.asarray(x, dtype=np.float64), np.asarray(law.mean), np.asarray(law.eigvals),
                            np.asarray(law.eigvecs), ALPHA)
    assert not b.reject, f"{what}: {b.summary()}"


# d = 256 costs half a minute on 2 cores: the slow lane (the default lane keeps d = 1, 2, 16)
@pytest.mark.parametrize("dim", [1, 2, 16, pytest.param(256, marks=pytest.mark.slow)])
def test_plain_sampler_has_the_exact_chain_law(dim):
    p = make_problem("gaussian", dim=dim)
    x = plain_sample(p.chain(40), N, seed=dim, options=SampleOptions(dtype=F64))
    _assert_matches(x.numpy(), _gaussian_law(p, 40), f"gaussian d={dim}")


def test_plain_ddim_has_the_exact_chain_law():
    p = make_problem("gaussian", dim=16)
    x = plain_sample(p.chain(40, sampler="ddim", eta=0.5), N, seed=3, options=SampleOptions(dtype=F64))
    _assert_matches(x.numpy(), _gaussian_law(p, 40, "ddim", 0.5), "gaussian ddim")


@pytest.mark.parametrize("dim", [1, 2, 16, pytest.param(256, marks=pytest.mark.slow)])
def test_plain_langevin_has_the_exact_finite_step_law(dim):
    p = make_problem("langevin-gaussian", dim=dim)
    x = plain_sample(p.chain(60), N, seed=dim, options=SampleOptions(dtype=F64))
    law = ref.langevin_gaussian_law(p.spec, p.step_size, 60).final
    _assert_matches(x.numpy(), law, f"langevin-gaussian d={dim}")


def test_one_sample_tests_see_the_discretisation():
    """Negative control: the chain's output is not the data law at 40 steps, and the battery says so."""
    p = make_problem("gaussian", dim=16)
    x = plain_sample(p.chain(40), N, seed=5, options=SampleOptions(dtype=F64)).numpy()
    data = ref.data_law(p.spec)
    b = gaussian_one_sample(x, np.asarray(data.mean), np.asarray(data.eigvals), np.asarray(data.eigvecs), ALPHA)
    assert b.reject


def _drafter(name, p, steps):
    return make_drafter(name, draft_chain=p.draft_chain(steps) if name == "independent" else None)


# d = 256 at n = 20000 moves (n, window + 1, d) blocks of 700 MB per round: minutes per case on 2 cores, so it
# runs in the slow lane, in float32 (which it then also covers), after the other slow tests.
@pytest.mark.parametrize("dim,dtype", [(2, F64), pytest.param(256, torch.float32, marks=pytest.mark.slow(last=True))])
@pytest.mark.parametrize("window", [1, 4, 16])
@pytest.mark.parametrize("drafter", DRAFTERS)
def test_speculative_sampler_has_the_exact_chain_law(dim, dtype, window, drafter):
    steps = 40
    p = make_problem("gaussian", dim=dim)
    x, st = speculative_sample(p.chain(steps), _drafter(drafter, p, steps), N, window=window, seed=100 + window,
                               options=SampleOptions(dtype=dtype))
    _assert_matches(x.numpy(), _gaussian_law(p, steps), f"{drafter} L={window} d={dim} (acc {st.acceptance_rate:.2f})")


# --- two-sample tests against the JAX reference sampler (gmm) -----------------------------------------------

def _gmm_reference(p, steps, seed):
    betas = beta_schedule("linear", steps)
    tr = ref.diffusion_transition(betas, "ddpm")
    out = ref.sample_diffusion(jax.random.PRNGKey(seed), ref.gmm_eps(p.spec, betas), tr, (N, p.dim))
    return np.asarray(out)


@pytest.mark.parametrize("dim", [2, 64])
def test_plain_sampler_matches_the_jax_reference_on_gmm(dim):
    p = make_problem("gmm", dim=dim)
    x = plain_sample(p.chain(40), N, seed=7, options=SampleOptions(dtype=F64)).numpy()
    b = ks_battery(x, _gmm_reference(p, 40, seed=dim), ALPHA)
    assert not b.reject, b.summary()


@pytest.mark.parametrize("window", [1, 4, 16])
@pytest.mark.parametrize("drafter", DRAFTERS)
def test_speculative_sampler_matches_the_jax_reference_on_gmm(window, drafter):
    p = make_problem("gmm", dim=2)
    x, _ = speculative_sample(p.chain(40), _drafter(drafter, p, 40), N, window=window, seed=200 + window,
                              options=SampleOptions(dtype=F64))
    b = ks_battery(x.numpy(), _gmm_reference(p, 40, seed=300 + window), ALPHA)
    assert not b.reject, b.summary()


def test_ks_battery_sees_a_wrong_schedule_on_gmm():
    """Negative control: the same battery tells 40 steps from 30 steps of the same model."""
    p = make_problem("gmm", dim=2)
    x = plain_sample(p.chain(30), N, seed=8, options=SampleOptions(dtype=F64)).numpy()
    assert ks_battery(x, _gmm_reference(p, 40, seed=9), ALPHA).reject


@pytest.mark.parametrize("steps", [10, 1000])
def test_plain_sampler_exact_law_at_the_extreme_step_counts(steps):
    p = make_problem("gaussian", dim=2)
    x = plain_sample(p.chain(steps), N, seed=steps, options=SampleOptions(dtype=F64))
    _assert_matches(x.numpy(), _gaussian_law(p, steps), f"gaussian steps={steps}")


# --- langevin-model: torch Langevin (plain and speculative) against JAX Langevin on numpyro's potential -------
# Each score call touches all 569 data points, so these use n = 5000 per side.
N_LM = 5000


def _logistic_reference(p, steps, seed):
    key_init, key_run = jax.random.split(jax.random.PRNGKey(seed))
    x0 = p.prior_std * jax.random.normal(key_init, (N_LM, p.dim))
    return np.asarray(ref.sample_langevin(key_run, ref.logistic_score(p.spec), p.step_size, steps, x0))


@pytest.mark.parametrize("sampler,drafter,window", [("plain", None, None), ("speculative", "frozen-drift", 8),
                                                    ("speculative", "independent", 4)])
def test_langevin_model_matches_the_jax_reference(sampler, drafter, window):
    p = make_problem("langevin-model", dim=5)
    steps = 60
    if sampler == "plain":
        x = plain_sample(p.chain(steps), N_LM, seed=11, options=SampleOptions(dtype=F64))
    else:
        x, _ = speculative_sample(p.chain(steps), _drafter(drafter, p, steps), N_LM, window=window, seed=12,
                                  options=SampleOptions(dtype=F64))
    b = ks_battery(x.numpy(), _logistic_reference(p, steps, seed=13), ALPHA)
    assert not b.reject, b.summary()
