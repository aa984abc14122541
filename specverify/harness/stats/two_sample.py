"""Two-sample tests between a candidate and a reference sample.

A battery of KS tests (scipy ``ks_2samp(method="asymp")``, pinned: ``"auto"`` switches method at n >= 10000):
every coordinate (up to ``max_coords``; beyond that a seeded random subset), the squared norm, and
``n_projections`` seeded random unit projections. Holm-corrected at family-wise ``alpha``.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from specverify.errors import StatsError
from specverify.harness.stats.one_sample import _check
from specverify.harness.stats.results import Battery, TestResult, holm

__all__ = ["ks_battery", "ks_tests"]


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

