"""One-sample tests against an exact Gaussian law.

Whiten with the exact mean and covariance (w = Q^T (x - m) / sqrt(lambda)), then test w ~ N(0, I): KS of every
coordinate against N(0, 1) and KS of |w|^2 (the squared Mahalanobis norm) against chi^2(d), Holm-corrected.
KS p-values use scipy's asymptotic Kolmogorov distribution (``method="asymp"``, pinned), which is accurate for
n >= 100; fewer samples are refused.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from specverify._validate import in_unit_interval
from specverify.errors import SampleSizeError, StatsError
from specverify.harness.stats.results import Battery, TestResult, holm

__all__ = ["MIN_SAMPLES", "gaussian_one_sample", "whiten", "whitened_normal_battery"]

MIN_SAMPLES = 100


def _check(x: np.ndarray) -> np.ndarray:
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise StatsError(f"samples must be an array of numbers (n, d): {e}") from None
    if x.ndim != 2:
        raise StatsError(f"samples must be a 2-D array (n, d), got shape {x.shape}; flatten images first")
    if x.shape[0] < MIN_SAMPLES:
        raise SampleSizeError(f"{x.shape[0]} samples are too few for the asymptotic KS p-values; "
                              f"use n >= {MIN_SAMPLES}")
    if not np.isfinite(x).all():
        raise StatsError("samples contain NaN or Inf; the sampler produced invalid output")
    return x


def whiten(x, mean, eigvals, eigvecs) -> np.ndarray:
    """(x - mean) Q / sqrt(lambda): standard normal coordinates under N(mean, Q diag(lambda) Q^T)."""
    return ((_check(x) - mean) @ eigvecs) / np.sqrt(eigvals)


def whitened_normal_battery(w, alpha: float, *, prefix: str = "") -> Battery:
    """Test w ~ N(0, I): per-coordinate KS and a KS of |w|^2 against chi^2(d), Holm at ``alpha``."""
    w, alpha = _check(w), in_unit_interval(alpha, "alpha", StatsError)
    n, d = w.shape
    def ks(name, v, cdf, coord=None):
        r = stats.kstest(v, cdf, method="asymp")
        return TestResult(f"{prefix}{name}", float(r.statistic), float(r.pvalue), "ks-1samp-asymp", n, coord)

    tests = [ks(f"ks[coord {i}]", w[:, i], stats.norm.cdf, i) for i in range(d)]
    tests.append(ks(f"ks[|w|^2 vs chi2({d})]", (w**2).sum(1), stats.chi2(d).cdf))
    return holm(tests, alpha)


def gaussian_one_sample(x, mean, eigvals, eigvecs, alpha: float, *, prefix: str = "") -> Battery:
    """One-sample battery of ``x`` (n, d) against N(mean, Q diag(eigvals) Q^T)."""
    return whitened_normal_battery(whiten(x, mean, eigvals, eigvecs), alpha, prefix=prefix)
