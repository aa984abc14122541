"""Two-sample tests between a candidate and a reference sample.

A battery of KS tests (scipy ``ks_2samp(method="asymp")``, pinned: ``"auto"`` switches method at n >= 10000):
every coordinate (up to ``max_coords``; beyond that a seeded random subset), the squared norm, and
``n_projections`` seeded random unit projections. Holm-corrected at family-wise ``alpha``.

``two_sample_battery`` adds the kernel tests of ``kernel.py`` (multi-bandwidth MMD, energy distance; permutation
p-values) to the KS tests under one Holm correction. In a Holm family of k tests a test can be the first one
rejected only if its p-value is <= alpha / k, so each permutation test needs n_perm >= ceil(k / alpha) - 1
(``permutation.min_permutations(alpha / k)``); that is the default, and fewer is refused.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from specverify._validate import in_unit_interval
from specverify.errors import StatsError
from specverify.harness.stats.one_sample import _check
from specverify.harness.stats.results import Battery, TestResult, holm

__all__ = ["ks_battery", "ks_tests", "two_sample_battery"]


def _ks(name, a, b, coord=None):
    r = stats.ks_2samp(a, b, method="asymp")
    return TestResult(name, float(r.statistic), float(r.pvalue), "ks-2samp-asymp", min(len(a), len(b)), coord)


def _pair(x, y):
    x, y = _check(x), _check(y)
    if x.shape[1] != y.shape[1]:
        raise StatsError(f"x has dimension {x.shape[1]} and y {y.shape[1]}: compare samples of one problem")
    return x, y


def ks_tests(x, y, *, n_projections: int = 16, max_coords: int = 64, seed: int = 0) -> list[TestResult]:
    """KS on coordinates, squared norms and random projections of x (n, d) against y (m, d), uncorrected."""
    x, y = _pair(x, y)
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    coords = np.arange(d) if d <= max_coords else np.sort(rng.choice(d, size=max_coords, replace=False))
    tests = [_ks(f"ks[coord {i}]", x[:, i], y[:, i], int(i)) for i in coords]
    tests.append(_ks("ks[|x|^2]", (x**2).sum(1), (y**2).sum(1)))
    if d > 1:
        for j in range(n_projections):
            v = rng.normal(size=d)
            v /= np.linalg.norm(v)
            tests.append(_ks(f"ks[projection {j}]", x @ v, y @ v))
    return tests


def ks_battery(x, y, alpha: float, *, n_projections: int = 16, max_coords: int = 64, seed: int = 0) -> Battery:
    """KS on coordinates, squared norms and random projections of x (n, d) against y (m, d), Holm at ``alpha``."""
    return holm(ks_tests(x, y, n_projections=n_projections, max_coords=max_coords, seed=seed), alpha)


def two_sample_battery(x, y, alpha: float, *, ks: bool = True, kernel: bool = True, n_perm: int | None = None,
                       n_projections: int = 16, max_coords: int = 64, seed: int = 0, device=None,
                       mmd_options: dict | None = None, energy_options: dict | None = None) -> Battery:
    """KS tests (``ks``) plus multi-bandwidth MMD and energy distance (``kernel``), Holm at family-wise ``alpha``.

    ``n_perm`` defaults to the fewest permutations with which a kernel test can be rejected on its own in this
    family, ceil(k / alpha) - 1 for k tests; fewer raises ``PermutationError``. ``mmd_options`` and
    ``energy_options`` are passed to ``kernel.mmd_test`` and ``kernel.energy_test`` (e.g. ``method``).
    """
    if not (ks or kernel):
        raise StatsError("nothing to test: enable ks, kernel or both")
    alpha = in_unit_interval(alpha, "alpha", StatsError)
    x, y = _pair(x, y)
    tests = ks_tests(x, y, n_projections=n_projections, max_coords=max_coords, seed=seed) if ks else []
    if kernel:
        from specverify.harness.stats.kernel import energy_test, mmd_test
        from specverify.harness.stats.permutation import PermutationError, min_permutations

        k = len(tests) + 2
        need = min_permutations(alpha / k)
        if n_perm is None:
            n_perm = need
        elif n_perm < need:
            raise PermutationError(
                f"n_perm={n_perm} is too few for a Holm family of {k} tests at alpha={alpha:g}: a permutation test "
                f"can be rejected first only if p <= alpha/{k} = {alpha / k:.3g}, and its smallest p-value is "
                f"1/(n_perm + 1); use n_perm >= {need} (or leave n_perm=None)")
        common = dict(n_perm=n_perm, seed=seed, alpha=alpha / k, device=device)
        tests.append(mmd_test(x, y, **common, **(mmd_options or {})))
        tests.append(energy_test(x, y, **common, **(energy_options or {})))
    return holm(tests, alpha)
