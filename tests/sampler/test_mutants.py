"""Known-broken samplers: the harness's one-sample battery catches every mutant under the stress drafter,
while the correct sampler passes the same battery (declared alpha, fixed seeds)."""

import math

import numpy as np
import pytest
import torch
from scipy import stats

from specverify.harness import reference as ref
from specverify.harness.stats import gaussian_one_sample
from specverify.sampler.drafters import make_drafter
from specverify.sampler.mutants import MUTANTS, mutant_options
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import make_problem
from specverify.sampler.speculative import speculative_sample
from specverify.specs import beta_schedule

ALPHA = 1e-3  # family-wise false-failure rate of each battery
N, STEPS = 20000, 40


@pytest.fixture(scope="module")
def setup():
    p = make_problem("gaussian", dim=2)
    law = ref.gaussian_chain_law(p.spec, ref.diffusion_transition(beta_schedule("linear", STEPS), "ddpm")).final
    return p.chain(STEPS), law


def _battery(x, law):
    return gaussian_one_sample(x.numpy(), law.mean, law.eigvals, law.eigvecs, ALPHA)


def test_catalogue():
    assert len(MUTANTS) >= 8
    for name, m in MUTANTS.items():
        assert m.name == name and m.description and m.level in ("coupling", "sampler")


def test_stress_drafter_accepts_at_its_designed_rate(setup):
    """Each verified step is accepted with probability p = 2 Phi(-delta/2); the accepted count minus p times
    the verified count is a martingale with variance p (1 - p) E[verified]: a z-test at ALPHA."""
    chain, _ = setup
    d = make_drafter("stress", delta=1.2)
    _, st = speculative_sample(chain, d, 5000, window=4, seed=3, options=SampleOptions(dtype=torch.float64))
    p = d.acceptance
    a, v = st.accepted_per_position.sum(), st.verified_per_position.sum()
    z = (a - p * v) / math.sqrt(p * (1 - p) * v)
    assert abs(z) < stats.norm.isf(ALPHA / 2), (a, v, p)
    np.testing.assert_allclose(st.predicted_acceptance_rate, p, rtol=1e-6)


def test_correct_sampler_passes_under_stress(setup):
    chain, law = setup
    x, st = speculative_sample(chain, make_drafter("stress", delta=1.2), N, window=4, seed=1,
                               options=SampleOptions(dtype=torch.float64))
    assert 0.4 < st.acceptance_rate < 0.7
    b = _battery(x, law)
    assert not b.reject, b.summary()


# The rank mutants' stress runs take ~17 s each (a rank node is CPU-heavy at low acceptance); the default lane
# catches them with tests/sampler/test_rank.py's exact-law battery, so here they run in the slow lane.
_SLOW = {"rank-unsorted", "rank-realised"}


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow(seconds=60)) if n in _SLOW else n
                                  for n in MUTANTS])
def test_every_mutant_is_caught_under_stress(setup, name):
    chain, law = setup
    x, _ = speculative_sample(chain, make_drafter("stress", delta=1.2), N, window=4, seed=1,
                              options=mutant_options(name, SampleOptions(dtype=torch.float64)))
    assert _battery(x, law).reject, f"{name} ({MUTANTS[name].description}) was not detected"


def test_unknown_mutant(setup):
    with pytest.raises(ValueError, match="unknown mutant"):
        speculative_sample(setup[0], make_drafter("oracle"), 10, window=2, options=mutant_options("nope"))
