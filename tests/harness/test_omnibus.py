"""The minP two-sample battery, the acceptance test and the joining of blocks.

Exact checks first (observed statistics equal scipy's and the mmd module's; the minP arithmetic on small
matrices), then statistical ones at declared ALPHA with fixed seeds.
"""

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from specverify.harness.stats import mmd
from specverify.harness.stats.acceptance import PerPosition, acceptance_summary, acceptance_test
from specverify.harness.stats.omnibus import BatteryTests, Permutations, minp_adjust, two_sample_minp
from specverify.harness.stats.results import Battery, TestResult, bonferroni_blocks

ALPHA = 1e-3


def _by_name(b):
    return {t.name: t for t in b.tests}


@pytest.mark.parametrize("n,d", [(300, 1), (300, 3), (2100, 2)])  # the last pools > MAX_EXACT: rff and slices
def test_observed_statistics_are_the_textbook_ones(n, d):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(n, d)), rng.normal(0.1, 1.2, size=(n + 7, d))
    b = _by_name(two_sample_minp(x, y, 0.01, Permutations(99, seed=3)))
    for i in range(d):
        assert b[f"ks[coord {i}]"].statistic == pytest.approx(scipy.stats.ks_2samp(x[:, i], y[:, i]).statistic,
                                                              abs=1e-6)
    nx, ny = (x**2).sum(1), (y**2).sum(1)
    assert b["ks[|x|^2]"].statistic == pytest.approx(scipy.stats.ks_2samp(nx, ny).statistic, abs=1e-6)
    if len(x) + len(y) <= mmd.MAX_EXACT:
        assert b["energy"].statistic == pytest.approx(mmd.energy_statistic(x, y), rel=1e-4)
    elif d == 1:
        assert b["energy"].statistic == pytest.approx(mmd.energy_statistic(x, y), rel=1e-4)


def test_ks_with_ties_matches_scipy():
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 5, size=(400, 1)).astype(float), rng.integers(0, 6, size=(400, 1)).astype(float)
    b = _by_name(two_sample_minp(x, y, 0.01, Permutations(99), tests=BatteryTests(kernel_tests=False)))
    assert b["ks[coord 0]"].statistic == pytest.approx(scipy.stats.ks_2samp(x[:, 0], y[:, 0]).statistic, abs=1e-6)


def test_sliced_energy_in_one_dimension_is_the_exact_energy():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(2500, 1)), rng.normal(0.2, 1, size=(2500, 1))
    b = _by_name(two_sample_minp(x, y, 0.05, Permutations(19)))
    assert "sliced" in b["energy"].method
    assert b["energy"].statistic == pytest.approx(mmd.energy_statistic(x, y), rel=1e-4)


def test_minp_arithmetic_on_a_small_matrix():
    # rows: observed, then 3 permutations; counts c_bj = #{i: T_ij >= T_bj}
    raw = np.array([[3.0, 0.0], [1.0, 2.0], [2.0, 1.0], [0.0, 3.0]])
    marginal, adjusted = minp_adjust(raw, 0.0)
    np.testing.assert_allclose(marginal, [1 / 4, 4 / 4])
    # permuted rows' min counts: row1 min(3, 2) = 2, row2 min(2, 3) = 2, row3 min(4, 1) = 1
    np.testing.assert_allclose(adjusted, [(1 + 1) / 4, (1 + 3) / 4])


@settings(max_examples=50, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(2, 30), st.integers(1, 5)),
              elements=st.floats(-10, 10, allow_nan=False)))
def test_minp_adjusted_pvalues_are_valid_numbers(raw):
    marginal, adjusted = minp_adjust(raw, 1e-9)
    rows = raw.shape[0]
    assert ((adjusted >= marginal - 1e-12) & (adjusted <= 1) & (marginal >= 1 / rows)).all()
    np.testing.assert_allclose(adjusted * rows, np.round(adjusted * rows))  # on the 1/(B+1) grid
    if raw.shape[1] == 1:
        np.testing.assert_allclose(adjusted, marginal)


def test_minp_detects_a_shift_and_names_the_coordinate():
    rng = np.random.default_rng(4)
    x, y = rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4))
    y[:, 2] += 0.3
    b = two_sample_minp(x, y, ALPHA, Permutations(1999))
    assert b.reject and b.correction == "minP"
    assert _by_name(b)["ks[coord 2]"].pvalue <= 1 / 2000 + 1e-12
    assert not any(r for t, r in zip(b.tests, b.rejected, strict=True) if t.name in {"ks[coord 0]", "ks[coord 1]"})


def test_minp_passes_equal_laws_at_declared_alpha():
    rng = np.random.default_rng(5)
    x, y = rng.normal(size=(800, 3)), rng.normal(size=(800, 3))
    assert not two_sample_minp(x, y, ALPHA, Permutations(1999)).reject


def test_too_few_permutations_for_alpha_is_refused():
    rng = np.random.default_rng(6)
    with pytest.raises(ValueError, match="cannot reject"):
        two_sample_minp(rng.normal(size=(200, 2)), rng.normal(size=(200, 2)), 0.001, Permutations(99))


def _trajectories(p_step, n, steps, rng, accept_p=None):
    acc = rng.random((n, steps)) < (p_step if accept_p is None else accept_p)
    return acc.sum(1), np.full(n, p_step * steps)


def test_acceptance_test_holds_its_level_and_detects_a_biased_rule():
    rng = np.random.default_rng(7)
    a, p = _trajectories(0.9, 2000, 20, rng)
    assert acceptance_test(a, p).pvalue > ALPHA
    a, p = _trajectories(0.9, 2000, 20, rng, accept_p=0.92)
    assert acceptance_test(a, p).pvalue < ALPHA


def test_acceptance_test_edge_cases():
    n = 200
    assert acceptance_test(np.full(n, 5), np.full(n, 5.0)).pvalue == 1.0  # the oracle: no spread, no error
    assert acceptance_test(np.full(n, 5), np.full(n, 4.0)).pvalue == 0.0
    with pytest.raises(ValueError, match="too few"):
        acceptance_test(np.ones(10), np.ones(10))
    with pytest.raises(ValueError, match="one value per trajectory"):
        acceptance_test(np.ones(200), np.ones(201))
    with pytest.raises(ValueError, match="NaN"):
        acceptance_test(np.full(200, np.nan), np.ones(200))


def test_rare_acceptance_is_not_a_rejection():
    # the regression: gmm d = 192, 20 steps, a frozen drafter accepts 0 of 9000 steps with p ~ 1e-7 per step;
    # the differences -P_i have no spread, and the bare t-test gave p = 1e-154 for an exact sampler
    rng = np.random.default_rng(1)
    n, steps = 500, 18
    p_step = 10 ** rng.uniform(-9, -6, size=(n, steps))
    a, p, v = np.zeros(n), p_step.sum(1), np.full(n, steps)
    assert acceptance_test(a, p, v, (p_step * (1 - p_step)).sum(1)).pvalue > 0.5
    assert acceptance_test(a, p, v).pvalue > 0.5  # the Jensen floor from the verified counts
    p_step = np.full((n, steps), 1e-3)  # rare, and a rule that accepts ten times too often is still caught
    a = (rng.random((n, steps)) < 1e-2).sum(1)
    assert acceptance_test(a, p_step.sum(1), v, (p_step * (1 - p_step)).sum(1)).pvalue < ALPHA


@pytest.mark.parametrize("p_lo,p_hi,n", [(1e-4, 1e-2, 100), (0.99, 0.9999, 100), (0.0, 1.0, 100), (1e-3, 0.5, 1000)])
def test_acceptance_test_level_when_acceptance_is_rare_or_certain(p_lo, p_hi, n):
    # 2000 null replicates: per-trajectory counts of Bernoulli(p) steps with p spread over [p_lo, p_hi];
    # the false-alarm rate at 0.05 must not exceed 0.05 beyond a one-sided binomial test at ALPHA
    rng = np.random.default_rng(11)
    reps, steps, level = 2000, 20, 0.05
    p_step = rng.uniform(p_lo, p_hi, size=(reps, n, steps))
    acc = (rng.random(p_step.shape) < p_step).sum(2)
    pred, var = p_step.sum(2), (p_step * (1 - p_step)).sum(2)
    ver = np.full(n, steps)
    for with_var in (True, False):  # the reported variance, then the Jensen floor from the verified counts
        rejected = sum(acceptance_test(acc[r], pred[r], ver, var[r] if with_var else None).pvalue <= level
                       for r in range(reps))
        assert scipy.stats.binomtest(rejected, reps, level, alternative="greater").pvalue > ALPHA, rejected


def test_acceptance_summary_has_exact_intervals():
    s = acceptance_summary([3, 4], [3.5, 3.5], [4, 5], per_position=PerPosition([2, 5], [2, 7], [1.8, 5.2]))
    assert s["acceptance_rate"] == 7 / 9 and s["predicted_acceptance_rate"] == pytest.approx(7 / 9)
    lo, hi = scipy.stats.binomtest(7, 9).proportion_ci(0.99, method="exact")
    assert (s["ci_low"], s["ci_high"]) == pytest.approx((lo, hi))
    assert s["per_position"][1]["rate"] == 5 / 7 and s["per_position"][1]["predicted"] == pytest.approx(5.2 / 7)


def test_bonferroni_blocks():
    t = TestResult("t", 0.0, 0.01, "m", 10)
    a = Battery((t, t), (0.02, 0.3), (False, False), 0.05, "holm")
    b = Battery((t,), (0.03,), (True,), 0.05, "single")
    j = bonferroni_blocks([a, None, b], 0.05)
    assert j.adjusted == (0.04, 0.6, 0.06) and j.rejected == (True, False, False)
    assert j.correction == "bonferroni over blocks: holm[2] + single[1]"
    assert bonferroni_blocks([a], 0.05).adjusted == a.adjusted


def test_randomised_marginal_pvalues_break_ties_uniformly():
    raw = np.zeros((100, 1))  # every permuted value ties with the observed one
    ps = [minp_adjust(raw, 0.0, rng=np.random.default_rng(s))[0][0] for s in range(2000)]
    assert scipy.stats.kstest(ps, "uniform").pvalue > ALPHA
    raw = np.array([[2.0], [3.0], [2.0], [1.0]])  # G = 1 above, E = 1 tied: p = (1 + 2U) / 4
    p = minp_adjust(raw, 0.0, rng=np.random.default_rng(0))[0][0]
    assert 0.25 <= p <= 0.75 and minp_adjust(raw, 0.0)[0][0] == 0.75
