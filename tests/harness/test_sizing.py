"""Sample sizing (DKW, TFP style) and exact binomial intervals: DESIGN.md's figures, round trips, clear errors.

Deterministic: no test here draws random numbers except the last, which checks by simulation that the DKW
two-sample size really delivers its power (declared failure rate ALPHA).
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import scipy.stats

from specverify.harness.stats import (
    PowerError,
    PowerTarget,
    PowerWarning,
    binomial_interval,
    check_power,
    ks_one_sample_n,
    ks_two_sample_n,
    min_detectable_ks_one_sample,
    min_detectable_ks_two_sample,
)

ALPHA = 1e-3  # false-failure rate of the one statistical assertion below


@pytest.mark.parametrize(("eps", "one", "two"), [(0.05, 6100, 26500), (0.02, 38000, 166000)])
def test_design_figures(eps, one, two):
    """DESIGN.md: at alpha = beta = 1e-3, one sample ~6100 / 38000, two samples ~26500 / 166000 per side."""
    assert ks_one_sample_n(1e-3, 1e-3, eps) == pytest.approx(one, rel=0.05)
    assert ks_two_sample_n(1e-3, 1e-3, eps) == pytest.approx(two, rel=0.05)


def test_closed_forms():
    r = math.sqrt(math.log(2 / 1e-3) / 2)
    assert ks_one_sample_n(1e-3, 1e-3, 0.05) == math.ceil((2 * r / 0.05) ** 2)
    r2 = math.sqrt(math.log(4 / 1e-3) / 2)
    assert ks_two_sample_n(1e-3, 1e-3, 0.05) == math.ceil((4 * r2 / 0.05) ** 2)


def test_splitting_alpha_over_fifty_tests_raises_n_by_less_than_half():
    base = ks_two_sample_n(1e-3, 1e-3, 0.05)
    assert base < ks_two_sample_n(1e-3 / 50, 1e-3, 0.05) < 1.5 * base
    assert ks_one_sample_n(1e-3, 1e-3, 0.05) < ks_one_sample_n(1e-3 / 50, 1e-3, 0.05) < 1.5 * base


@pytest.mark.parametrize("eps", [0.2, 0.05, 0.013])
@pytest.mark.parametrize(("alpha", "beta"), [(1e-3, 1e-3), (0.05, 0.2), (1e-6, 0.1)])
def test_inverses_round_trip(eps, alpha, beta):
    n1 = ks_one_sample_n(alpha, beta, eps)
    assert min_detectable_ks_one_sample(n1, alpha, beta) <= eps < min_detectable_ks_one_sample(n1 - 1, alpha, beta)
    n2 = ks_two_sample_n(alpha, beta, eps)
    assert min_detectable_ks_two_sample(n2, n2, alpha, beta) <= eps
    assert min_detectable_ks_two_sample(n2 - 1, n2 - 1, alpha, beta) > eps
    # unequal sizes: more on one side helps, and the formula is symmetric
    assert min_detectable_ks_two_sample(n2, 4 * n2, alpha, beta) < eps
    assert min_detectable_ks_two_sample(n2, 3 * n2, alpha, beta) == min_detectable_ks_two_sample(3 * n2, n2, alpha,
                                                                                                 beta)


def test_check_power_names_the_n_needed():
    need, target = ks_two_sample_n(1e-3, 1e-3, 0.05), PowerTarget(alpha=1e-3, beta=1e-3, epsilon=0.05)
    with pytest.raises(PowerError, match=f"use n >= {need} per side"):
        check_power(1000, target)
    with pytest.warns(PowerWarning, match=f"use n >= {need} per side"):
        check_power(1000, target, strict=False)
    with pytest.raises(PowerError, match=f"use n >= {ks_one_sample_n(1e-3, 1e-3, 0.05)}"):
        check_power(1000, target, two_sample=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_power(need, target) <= 0.05
        assert check_power(need, target, m=2 * need) < 0.05


def test_bad_arguments():
    with pytest.raises(ValueError, match="alpha"):
        ks_two_sample_n(0, 0.1, 0.05)
    with pytest.raises(ValueError, match="beta"):
        ks_one_sample_n(0.1, 1.0, 0.05)
    with pytest.raises(ValueError, match="epsilon"):
        ks_one_sample_n(0.1, 0.1, 0.0)
    with pytest.raises(ValueError, match="m must be a positive int, got 0"):
        min_detectable_ks_two_sample(10, 0, 0.1, 0.1)
    with pytest.raises(ValueError, match="k must be"):
        binomial_interval(11, 10, 0.95)
    with pytest.raises(ValueError, match="confidence"):
        binomial_interval(1, 10, 95)


def test_binomial_interval_is_clopper_pearson():
    lo, hi = binomial_interval(0, 10, 0.95)
    assert lo == 0 and math.isclose(hi, 1 - 0.025 ** (1 / 10), rel_tol=1e-9)
    lo, hi = binomial_interval(10, 10, 0.95)
    assert hi == 1 and math.isclose(lo, 0.025 ** (1 / 10), rel_tol=1e-9)
    k, n, c = 37, 200, 0.99
    lo, hi = binomial_interval(k, n, c)  # the beta-quantile form of Clopper-Pearson
    assert math.isclose(lo, scipy.stats.beta.ppf((1 - c) / 2, k, n - k + 1), rel_tol=1e-7)
    assert math.isclose(hi, scipy.stats.beta.ppf(1 - (1 - c) / 2, k + 1, n - k), rel_tol=1e-7)


def test_dkw_two_sample_size_delivers_its_power():
    """At the DKW size for (alpha = 0.01, beta = 0.2, eps = 0.2), a shift of two normals with KS distance 0.2 is
    rejected by scipy's KS test at 0.01 in at least min-count of 200 replicates: if the power were only the declared
    0.8, fewer would happen with probability <= ALPHA (DKW is conservative, so the real power is higher)."""
    alpha, beta, eps, reps = 0.01, 0.2, 0.2, 200
    n = ks_two_sample_n(alpha, beta, eps)
    shift = 2 * scipy.stats.norm.ppf(0.5 + eps / 2)  # sup |Phi(t) - Phi(t - shift)| = eps
    rng = np.random.default_rng(0)
    hits = sum(scipy.stats.ks_2samp(rng.normal(size=n), rng.normal(size=n) + shift, method="asymp").pvalue <= alpha
               for _ in range(reps))
    floor = int(scipy.stats.binom.ppf(ALPHA, reps, 1 - beta))  # P(Bin(reps, 0.8) < floor) <= ALPHA
    assert hits >= floor, (hits, floor, n)
