"""Calibration of the whole suite under the null (slow lane): two correct samplers, 1000 replicates each.

The 99% Clopper-Pearson interval of the suite's rejection rate at alpha = 0.05 must hold 0.05 (the rate of
a correct suite), and each test's p-values must pass a KS test of uniformity (Holm over the
tests at 0.01). The same run (``specverify.calibration.run_config``) writes theory/calibration.md
(`python paper_repro/calibrate.py --replicates 1000`).
"""

import pytest

from specverify.calibration import run_config

ALPHA = 0.05


@pytest.mark.slow(seconds=1200)  # 1000 replicates: about 10 min on 2 quiet cores
@pytest.mark.parametrize("config", ["exact-law", "two-sample"])
def test_the_suite_rejects_a_correct_sampler_at_rate_alpha(config):
    r = run_config(config, 1000, n=500, alpha=ALPHA, n_perm=199)
    assert r["alpha_inside_ci"], (r["rejections"], r["ci99_low"], r["ci99_high"])
    bad = [(t["name"], t["ks_uniform_pvalue"]) for t in r["tests"] if t["uniformity_rejected"]]
    assert not bad, bad
