"""Calibration of the whole suite under the null (slow lane): two correct samplers, 1000 replicates each.

The 99% Clopper-Pearson interval of the suite's rejection rate at alpha = 0.05 must hold 0.05 (the rate of
a correct suite), and each test's p-values must pass a KS test of uniformity (Holm over the
tests at 0.01). The same run (``specverify.calibration.run_config``) writes theory/calibration.md
(`python paper_repro/calibrate.py --replicates 1000`).
"""

import pytest

from specverify.bridge import Plan
from specverify.calibration import run_config

ALPHA = 0.05


@pytest.mark.slow(seconds=1500)  # 1000 replicates: 10 min on 2 quiet cores, 23 min on 2 busy ones
@pytest.mark.parametrize("config", ["exact-law", "two-sample"])
def test_the_suite_rejects_a_correct_sampler_at_rate_alpha(config):
    r = run_config(config, 1000, Plan(ALPHA, n=500, n_perm=199))
    assert r["alpha_inside_ci"], (r["rejections"], r["ci99_low"], r["ci99_high"])
    bad = [(t["name"], t["ks_uniform_pvalue"]) for t in r["tests"] if t["uniformity_rejected"]]
    assert not bad, bad


def test_a_replicate_at_the_checks_own_sizing_and_the_sequential_engine():
    """n=None sizes n as `check` does (3 blocks at alpha / 3, k = d + 1 one-sample tests on gaussian d=2);
    n_perm=None runs the sequential engine and records the permutations it drew."""
    from specverify.harness.stats.sizing import ks_one_sample_n

    law = run_config("exact-law", 2, Plan(ALPHA), steps=10)
    assert law["sized"] and law["steps"] == 10 and law["n"] == ks_one_sample_n(ALPHA / 3 / 3, 0.05, 0.05)
    assert law["permutations_median"] is None and law["n_perm"] is None
    two = run_config("two-sample", 2, Plan(ALPHA, n=300), steps=10)
    assert not two["sized"] and two["n"] == 300 and two["n_perm"] == "sequential"
    assert 0 < two["permutations_median"] <= two["permutations_max"]


def test_workers_run_the_same_seeds_to_the_same_record():
    """workers=2 (spawned single-thread processes) gives the record of workers=1: same seeds, same verdicts,
    same permutations, same p-value histograms, in seed order."""
    one = run_config("two-sample", 3, Plan(ALPHA, n=200), steps=5, workers=1)
    two = run_config("two-sample", 3, Plan(ALPHA, n=200), steps=5, workers=2)
    assert (one["workers"], two["workers"]) == (1, 2)
    for key in ("rejections", "n", "permutations_median", "permutations_max"):
        assert one[key] == two[key], key

    def summary(r):  # repr: the independence tests' KS p-value is nan, and nan != nan
        return [(t["name"], t["deciles"], t["rate_below_alpha"], repr(t["ks_uniform_pvalue"])) for t in r["tests"]]

    assert summary(one) == summary(two)
