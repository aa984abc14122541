"""The sequential permutation engine (stats.sequential): martingale, validity under stopping, cost and power."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from specverify.errors import PermutationError
from specverify.harness.stats.omnibus import two_sample_minp
from specverify.harness.stats.permutation import Permutations, min_permutations
from specverify.harness.stats.sequential import (
    N_PILOT,
    PilotScore,
    futility_limits,
    log_wealth,
    max_permutations,
    sequential_minp_counts,
)

ALPHA = 0.01  # level of the statistical checks of these tests


def _binomial_upper_ok(hits: int, n: int, rate: float) -> bool:
    """Not more hits than a Binomial(n, rate) gives with probability >= 1 - ALPHA (one-sided test)."""
    return stats.binomtest(hits, n, rate, alternative="greater").pvalue > ALPHA


def test_wealth_is_a_martingale_under_the_exact_null_law():
    # given k extreme in t, the next is extreme with probability (k + 1) / (t + 2) (uniform mixture of Bernoulli)
    alpha = 1e-3
    for t in (0, 1, 7, 100, 5000):
        for k in sorted({0, t // 3, t}):
            up = (k + 1) / (t + 2)
            nxt = up * np.exp(log_wealth(k + 1, t + 1, alpha)) + (1 - up) * np.exp(log_wealth(k, t + 1, alpha))
            assert nxt == pytest.approx(np.exp(log_wealth(k, t, alpha)), rel=1e-9)
    assert float(log_wealth(0, 0, alpha)) == pytest.approx(0.0, abs=1e-12)  # W_0 = 1


def _mean_difference(values: torch.Tensor, n_first: int):
    def statistic(perms):
        return values[perms[:, :n_first]].mean(1) - values[perms[:, n_first:]].mean(1)

    return statistic


def _run(values, alpha, seed, n_pilot=N_PILOT, batch_size=None):
    score = PilotScore(lambda pilot: (lambda raw: stats.norm.sf(raw / pilot.std())), n_pilot)
    return sequential_minp_counts(_mean_difference(values, len(values) // 2), len(values),
                                  Permutations(seed=seed, alpha=alpha, batch_size=batch_size), score, rtol=1e-9)


def test_pvalue_is_valid_under_h0_whatever_the_stopping():
    # exchangeable items: P(p <= u) <= u for every u, and the test rejects at most at rate alpha
    rng = np.random.default_rng(0)
    reps, alpha = 300, 0.05
    res = [_run(torch.as_tensor(rng.normal(size=16)), alpha, seed=s, n_pilot=8) for s in range(reps)]
    p = np.array([r.pvalue for r in res])
    assert _binomial_upper_ok(sum(r.reject for r in res), reps, alpha)
    for u in (0.1, 0.25, 0.5):
        assert _binomial_upper_ok(int((p <= u).sum()), reps, u)
    assert all(r.reject == (r.pvalue <= alpha) for r in res)
    assert all(r.n_perm <= max_permutations(alpha) for r in res)


def test_same_seed_same_result_whatever_the_batch_size():
    values = torch.as_tensor(np.random.default_rng(1).normal(size=40)) - torch.arange(40) * 0.02
    a, b = _run(values, 0.01, 3, batch_size=7), _run(values, 0.01, 3, batch_size=300)
    assert (a.pvalue, a.n_perm, a.n_extreme, a.stop) == (b.pvalue, b.n_perm, b.n_extreme, b.stop)


def test_clear_pass_is_cheap_and_clear_rejection_beats_every_permutation():
    alpha = 0.01
    flat = _run(torch.zeros(30).normal_(generator=torch.Generator().manual_seed(5)), alpha, 0)
    assert flat.stop == "accept" and not flat.reject and flat.n_perm < 100
    shifted = torch.cat([torch.full((30,), 10.0), torch.zeros(30)]) + torch.rand(60) * 0.1  # first group larger
    r = _run(shifted, alpha, 0)
    assert r.reject and r.stop == "reject" and r.n_extreme == 0 and r.pvalue <= alpha
    assert min_permutations(alpha) <= r.n_perm <= 1.7 / alpha  # any valid test needs >= 1/alpha - 1


def test_bad_alpha_is_an_error():
    with pytest.raises(PermutationError, match="alpha"):
        _run(torch.zeros(10), 1.5, 0)


def _stop(p_star: float, alpha: float, limits, rng) -> tuple[bool, int]:
    """The engine's stopping rule on an i.i.d. Bernoulli(p_star) stream of 'as extreme' flags."""
    cap = max_permutations(alpha)
    t = np.arange(1, cap + 1)
    k = np.cumsum(rng.random(cap) < p_star)
    hit = log_wealth(k, t, alpha) >= math.log(1 / alpha)
    settled = hit | (t > limits[np.minimum(k, len(limits) - 1)])
    i = int(np.argmax(settled)) if settled.any() else cap - 1
    return bool(hit[i]), i + 1


@pytest.mark.slow
def test_design_cost_and_power_at_alpha_1e3():
    """The rule's design targets at alpha = 1e-3: a bug at p* = alpha / 2 is caught with probability >= 0.8 (a
    fixed B = 999 catches it only when it beats all 999: probability (1 - alpha / 2)^999 = 0.61), a clear pass
    (p* = 0.5) stops within a median of 50 permutations, p* = 0 rejects within 1.7 / alpha."""
    alpha, rng = 1e-3, np.random.default_rng(2)
    limits = futility_limits(alpha, max_permutations(alpha))
    power = np.mean([_stop(alpha / 2, alpha, limits, rng)[0] for _ in range(200)])
    assert stats.binomtest(int(power * 200), 200, 0.8, alternative="less").pvalue > ALPHA
    passes = [_stop(0.5, alpha, limits, rng) for _ in range(200)]
    assert not any(r for r, _ in passes) and np.median([n for _, n in passes]) <= 50
    reject, n = _stop(0.0, alpha, limits, rng)
    assert reject and n <= 1.7 / alpha


def test_battery_passes_equal_laws_cheaply_and_rejects_a_shift():
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    b = two_sample_minp(x, y, ALPHA, Permutations(seed=1))
    assert not b.reject and b.permutations < 300 and b.correction == "minP"
    assert "sequential minP" in b.tests[0].method
    s = two_sample_minp(x + [0.6, 0.0], y, ALPHA, Permutations(seed=1))
    assert s.reject and s.min_adjusted <= ALPHA and s.permutations >= min_permutations(ALPHA)
    assert "ks[coord 0]" in {t.name for t, r in zip(s.tests, s.rejected, strict=True) if r}
    assert all(a >= s.min_adjusted for a in s.adjusted)
    fixed = two_sample_minp(x, y, ALPHA, Permutations(99, seed=1))
    assert fixed.permutations == 99 and "B=99" in fixed.tests[0].method


def test_the_exact_ks_screen_rejects_a_gross_bug_without_the_permutation_cost():
    # a permutation p-value is >= 1 / (B + 1): without the screen this rejection would cost >= 1 / alpha draws
    from specverify.harness.stats.omnibus import SCREEN_SHARE, SETTLED_PERMUTATIONS

    alpha, rng = 1e-4, np.random.default_rng(5)
    x, y = rng.normal(size=(2000, 2)), rng.normal(size=(2000, 2))
    b = two_sample_minp(x + [0.5, 0.0], y, alpha, Permutations(seed=2))
    assert b.reject and b.permutations <= 32 + SETTLED_PERMUTATIONS < min_permutations(alpha)
    coord0 = {t.name: (t, a) for t, a in zip(b.tests, b.adjusted, strict=True)}["ks[coord 0]"]
    n_ks = sum(t.name.startswith("ks[") for t in b.tests)
    exact = stats.ks_2samp(x[:, 0] + 0.5, y[:, 0], method="exact").pvalue
    assert coord0[1] == pytest.approx(min(1.0, n_ks * exact / SCREEN_SHARE)) and coord0[1] <= alpha
    assert "exact KS p" in coord0[0].method and "already rejected" in coord0[0].method


def test_a_family_settled_elsewhere_stops_the_permutations_and_changes_no_pass():
    from specverify.harness.stats.omnibus import SETTLED_PERMUTATIONS

    rng = np.random.default_rng(6)
    x, y = rng.normal(size=(500, 2)), rng.normal(size=(500, 2))
    free, settled = (two_sample_minp(x, y, 1e-3, Permutations(seed=3), settled=s) for s in (False, True))
    assert not free.reject and not settled.reject
    assert settled.permutations == 32 + SETTLED_PERMUTATIONS  # no futility stop: the descriptive budget is drawn
    assert all(a > 1e-3 for a in settled.adjusted)
