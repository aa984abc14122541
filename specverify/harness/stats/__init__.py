"""Statistical tests of the harness (numpy, scipy, statsmodels, torch for the kernel tests; never the sampler).

``import specverify.harness.stats`` does not import torch: the permutation engine and the kernel tests load on
first use.
"""

from __future__ import annotations

import importlib

from specverify.errors import PermutationError, PowerError
from specverify.harness.stats.one_sample import MIN_SAMPLES, gaussian_one_sample, whiten, whitened_normal_battery
from specverify.harness.stats.results import Battery, TestResult, holm
from specverify.harness.stats.sizing import (
    PowerTarget,
    PowerWarning,
    binomial_interval,
    check_power,
    ks_one_sample_n,
    ks_two_sample_n,
    min_detectable_ks_one_sample,
    min_detectable_ks_two_sample,
)
from specverify.harness.stats.two_sample import ks_battery, ks_tests

_LAZY = {
    "PermutationResult": "specverify.harness.stats.permutation",
    "Permutations": "specverify.harness.stats.permutation",
    "min_permutations": "specverify.harness.stats.permutation",
    "permutation_pvalue": "specverify.harness.stats.permutation",
    "permutation_test": "specverify.harness.stats.permutation",
    "GaussianKernels": "specverify.harness.stats.mmd",
    "KernelPath": "specverify.harness.stats.mmd",
    "energy_statistic": "specverify.harness.stats.mmd",
    "energy_test": "specverify.harness.stats.mmd",
    "median_heuristic": "specverify.harness.stats.mmd",
    "mmd2_unbiased": "specverify.harness.stats.mmd",
    "mmd_test": "specverify.harness.stats.mmd",
}

__all__ = ["MIN_SAMPLES", "Battery", "GaussianKernels", "KernelPath", "PermutationError", "PermutationResult",
           "Permutations", "PowerError", "PowerTarget", "PowerWarning", "TestResult", "binomial_interval",
           "check_power", "energy_statistic", "energy_test", "gaussian_one_sample", "holm", "ks_battery",
           "ks_one_sample_n", "ks_tests", "ks_two_sample_n", "median_heuristic", "min_detectable_ks_one_sample",
           "min_detectable_ks_two_sample", "min_permutations", "mmd2_unbiased", "mmd_test", "permutation_pvalue",
           "permutation_test", "whiten", "whitened_normal_battery"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'specverify.harness.stats' has no attribute {name!r}")
