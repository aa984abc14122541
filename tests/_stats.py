"""Goodness-of-fit checks used by the coupling tests; each returns a frozen result record.

Every check takes its alpha as an argument (the caller declares it) and decides with it; nothing here is
tuned to observed values. One-sample KS p-values use ``method="exact"`` (Kolmogorov's exact distribution,
pinned so a SciPy default change cannot move them).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats
from statsmodels.stats.multitest import multipletests

__all__ = ["KS_METHOD", "BinomialResult", "NormalityResult", "acceptance_binomtest", "standard_normal_battery"]

KS_METHOD = "exact"


@dataclasses.dataclass(frozen=True)
class NormalityResult:
    """A Holm-corrected family of tests of H0: the rows of w are iid N(0, I_d)."""

    names: tuple[str, ...]
    pvalues: tuple[float, ...]
    adjusted: tuple[float, ...]
    alpha: float
    n: int

    @property
    def rejected(self) -> bool:
        """True when the family rejects H0 at family-wise level alpha (Holm)."""
        return min(self.adjusted) <= self.alpha

    def summary(self) -> str:
        i = int(np.argmin(self.adjusted))
        return (f"n={self.n}, {len(self.names)} tests, smallest Holm-adjusted p = {self.adjusted[i]:.3g} "
                f"({self.names[i]}, raw p = {self.pvalues[i]:.3g}), family alpha = {self.alpha}")


def standard_normal_battery(w, alpha: float, *, e: np.ndarray | None = None,
                            method: str = KS_METHOD) -> NormalityResult:
    """Test that the rows of ``w`` (shape ``(n, d)``) are iid N(0, I_d), with Holm at family level ``alpha``.

    The one whitened one-sample battery of the tests: a one-sample KS test against N(0, 1) for every coordinate,
    one for the coordinate along the unit vector ``e`` when given (where a wrong reflection shows first), and one
    for |w|^2 against chi^2(d). ``w`` may be a list of such blocks (e.g. several steps of the same trajectories),
    each tested on its own, all in one Holm family (Holm is valid under any dependence between the blocks).
    ``method``: scipy's KS p-value, pinned by the caller ("exact" or "asymp").
    """
    blocks = w if isinstance(w, list) else [w]
    names, pvalues = [], []

    def ks(name, v, cdf):
        names.append(name)
        pvalues.append(stats.kstest(v, cdf, method=method).pvalue)

    for b, block in enumerate(blocks):
        tag = f"block {b} " if len(blocks) > 1 else ""
        d = block.shape[1]
        for j in range(d):
            ks(f"{tag}KS coordinate {j} vs N(0,1)", block[:, j], stats.norm.cdf)
        if e is not None:
            ks(f"{tag}KS coordinate along e vs N(0,1)", block @ e, stats.norm.cdf)
        ks(f"{tag}KS |w|^2 vs chi2({d})", (block**2).sum(axis=1), stats.chi2(d).cdf)
    _, adjusted, _, _ = multipletests(pvalues, alpha=alpha, method="holm")
    return NormalityResult(tuple(names), tuple(float(p) for p in pvalues), tuple(float(p) for p in adjusted),
                           alpha, blocks[0].shape[0])


@dataclasses.dataclass(frozen=True)
class BinomialResult:
    """Exact two-sided binomial test of H0: k ~ Binomial(n, p), with the exact (Clopper-Pearson) interval."""

    k: int
    n: int
    p: float
    pvalue: float
    ci_low: float
    ci_high: float
    alpha: float

    @property
    def rejected(self) -> bool:
        return self.pvalue <= self.alpha

    @property
    def p_in_interval(self) -> bool:
        return self.ci_low <= self.p <= self.ci_high

    def summary(self) -> str:
        return (f"{self.k}/{self.n} = {self.k / self.n:.4f} accepted, predicted p = {self.p:.4f}, "
                f"exact p-value = {self.pvalue:.3g}, {1 - self.alpha:.3%} CI = [{self.ci_low:.4f}, {self.ci_high:.4f}]")


def acceptance_binomtest(k: int, n: int, p: float, alpha: float) -> BinomialResult:
    """Exact two-sided binomial test of k successes in n trials against success probability p."""
    res = stats.binomtest(int(k), int(n), float(p), alternative="two-sided")
    ci = res.proportion_ci(confidence_level=1 - alpha, method="exact")
    return BinomialResult(int(k), int(n), float(p), float(res.pvalue), float(ci.low), float(ci.high), alpha)
