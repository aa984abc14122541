"""Statistical tests of the harness (numpy, scipy, statsmodels; never the sampler)."""

from specverify.stats.one_sample import MIN_SAMPLES, gaussian_one_sample, whiten, whitened_normal_battery
from specverify.stats.results import Battery, TestResult, holm
from specverify.stats.two_sample import ks_battery

__all__ = ["MIN_SAMPLES", "Battery", "TestResult", "gaussian_one_sample", "holm", "ks_battery", "whiten",
           "whitened_normal_battery"]
