"""The suite: a candidate against a reference (an exact Gaussian law or a reference sampler).

Sizes come from (alpha, beta, epsilon) by the DKW bounds, at the Holm threshold alpha / k of a k-test battery,
so that a KS distance epsilon in any one statistic is detected with probability at least 1 - beta. Every
verdict is Holm-corrected at family-wise ``alpha``.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np

from specverify.harness.contracts import check_seeded, draw
from specverify.stats import gaussian_one_sample, ks_battery
from specverify.stats.sizing import (
    ks_one_sample_n,
    ks_two_sample_n,
    min_detectable_ks_one_sample,
    min_detectable_ks_two_sample,
)

__all__ = ["Report", "check_against_law", "check_against_sampler"]

N_PROJECTIONS, MAX_COORDS = 16, 64
REFERENCE_SEED_OFFSET = 1_000_003  # the reference draws from another stream than the candidate


@dataclasses.dataclass(frozen=True)
class Report:
    verdict: str
    alpha: float
    beta: float
    epsilon: float
    n: int
    min_detectable_ks: float
    reference: str
    seed: int
    tests: list
    seconds: float
    warnings: list

    @property
    def exit_code(self) -> int:
        return 0 if self.verdict == "pass" else 1

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _power_warnings(n, needed, mdk, beta, epsilon):
    if n >= needed:
        return []
    return [f"n={n} detects KS distances >= {mdk:.4f} with power {1 - beta}, not {epsilon}: "
            f"use n >= {needed} (or leave --n out)"]


def _report(battery, *, kind, alpha, beta, epsilon, n, mdk, seed, t0, warnings):
    tests = [{"name": t.name, "statistic": t.statistic, "pvalue": t.pvalue, "adjusted_pvalue": a, "rejected": r,
              "method": t.method, "n": t.n}
             for t, a, r in zip(battery.tests, battery.adjusted, battery.rejected, strict=True)]
    return Report("fail" if battery.reject else "pass", alpha, beta, epsilon, n, mdk, kind, seed, tests,
                  time.perf_counter() - t0, warnings)


def check_against_law(candidate, mean, eigvals, eigvecs, *, alpha=0.01, beta=0.05, epsilon=0.05, n=None,
                      seed=0) -> Report:
    """One-sample battery of ``candidate(n, seed)`` against N(mean, Q diag(eigvals) Q^T)."""
    t0 = time.perf_counter()
    d = len(mean)
    k = d + 1  # coordinates and the squared norm
    needed = ks_one_sample_n(alpha / k, beta, epsilon)
    n = needed if n is None else int(n)
    check_seeded(candidate, seed)
    x = draw(candidate, n, seed, dim=d)
    battery = gaussian_one_sample(x, np.asarray(mean), np.asarray(eigvals), np.asarray(eigvecs), alpha)
    mdk = min_detectable_ks_one_sample(n, alpha / k, beta)
    return _report(battery, kind="exact", alpha=alpha, beta=beta, epsilon=epsilon, n=n, mdk=mdk, seed=seed, t0=t0,
                   warnings=_power_warnings(n, needed, mdk, beta, epsilon))


def check_against_sampler(candidate, reference, dim: int, *, alpha=0.01, beta=0.05, epsilon=0.05, n=None,
                          seed=0) -> Report:
    """Two-sample KS battery (coordinates, squared norm, random projections) against ``reference(n, seed)``."""
    t0 = time.perf_counter()
    k = min(dim, MAX_COORDS) + 1 + (N_PROJECTIONS if dim > 1 else 0)
    needed = ks_two_sample_n(alpha / k, beta, epsilon)
    n = needed if n is None else int(n)
    check_seeded(candidate, seed)
    x = draw(candidate, n, seed, dim=dim)
    y = draw(reference, n, seed + REFERENCE_SEED_OFFSET, dim=dim, what="reference")
    battery = ks_battery(x, y, alpha, n_projections=N_PROJECTIONS, max_coords=MAX_COORDS, seed=seed)
    mdk = min_detectable_ks_two_sample(n, n, alpha / k, beta)
    return _report(battery, kind="sampler", alpha=alpha, beta=beta, epsilon=epsilon, n=n, mdk=mdk, seed=seed,
                   t0=t0, warnings=_power_warnings(n, needed, mdk, beta, epsilon))
