"""Frozen result records and the multiple-testing step (Holm, via statsmodels)."""

from __future__ import annotations

import dataclasses

import numpy as np

from specverify.errors import StatsError

__all__ = ["AdjustedTest", "Battery", "TestResult", "bonferroni_blocks", "holm", "holm_arrays"]


@dataclasses.dataclass(frozen=True)
class TestResult:
    """One test: its statistic, its p-value, the method used (pinned) and the sample size(s); ``coord``: the
    coordinate a per-coordinate test looks at (None for the others, and where the battery does not say)."""

    __test__ = False  # not a pytest class

    name: str
    statistic: float
    pvalue: float
    method: str
    n: int
    coord: int | None = None


@dataclasses.dataclass(frozen=True, kw_only=True)
class AdjustedTest:
    """One test of a verdict's family: a :class:`TestResult` with its family-wise adjusted p-value and decision at
    the verdict's alpha; ``family`` (its Bonferroni block) and ``bh_qvalue`` (Benjamini-Hochberg over all tests,
    exploratory) where the verdict has them. ``to_dict()`` leaves out ``coord`` and the fields that are None."""

    __test__ = False  # not a pytest class

    name: str
    family: str | None = None
    statistic: float
    pvalue: float
    adjusted_pvalue: float
    rejected: bool
    bh_qvalue: float | None = None
    method: str
    n: int
    coord: int | None = None

    @classmethod
    def of(cls, test: TestResult, adjusted: float, rejected: bool, **where) -> AdjustedTest:
        """``test`` adjusted; ``where``: ``family`` and ``bh_qvalue``, where the verdict has them."""
        return cls(name=test.name, statistic=test.statistic, pvalue=test.pvalue, adjusted_pvalue=adjusted,
                   rejected=rejected, method=test.method, n=test.n, coord=test.coord, **where)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name != "coord" and not (f.default is None and getattr(self, f.name) is None)}


@dataclasses.dataclass(frozen=True)
class Battery:
    """Several tests of one hypothesis, adjusted at family-wise level ``alpha`` (``correction``: holm, minP, ...);
    ``permutations``: the permutations a permutation-calibrated battery drew (None: none)."""

    tests: tuple[TestResult, ...]
    adjusted: tuple[float, ...]
    rejected: tuple[bool, ...]
    alpha: float
    correction: str = "holm"
    permutations: int | None = None

    @property
    def reject(self) -> bool:
        """True when any test is rejected after Holm's correction (family-wise error <= alpha)."""
        return any(self.rejected)

    @property
    def min_adjusted(self) -> float:
        return min(self.adjusted)

    def worst(self, k: int = 3) -> list[TestResult]:
        order = np.argsort(self.adjusted)[:k]
        return [self.tests[i] for i in order]

    def adjusted_tests(self) -> tuple[AdjustedTest, ...]:
        return tuple(AdjustedTest.of(t, a, r) for t, a, r in zip(self.tests, self.adjusted, self.rejected, strict=True))

    def summary(self) -> str:
        verdict = "REJECT" if self.reject else "pass"
        worst = ", ".join(f"{t.name} p={t.pvalue:.3g}" for t in self.worst())
        return (f"{verdict} at alpha={self.alpha} over {len(self.tests)} tests ({self.correction}) "
                f"(min adjusted p={self.min_adjusted:.3g}; {worst})")

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "reject": self.reject,
                "tests": [dataclasses.asdict(t) | {"adjusted_pvalue": a, "rejected": r}
                          for t, a, r in zip(self.tests, self.adjusted, self.rejected, strict=True)]}


def holm_arrays(p, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Holm's step-down adjusted p-values and rejections, statsmodels' ``multipletests(method="holm")`` formula
    line for line (``tests/harness/test_stats.py`` checks they agree); written out because statsmodels runs
    ``gc.collect()`` on every Holm call, 0.3 s in a process that holds JAX and torch."""
    p = np.asarray(p, dtype=np.float64)
    order = np.argsort(p)
    ps = p[order]
    steps = np.arange(p.size, 0, -1)
    notreject = ps > alpha / steps
    first = np.flatnonzero(notreject)
    notreject[(first[0] if first.size else p.size):] = True
    adjusted, reject = np.empty_like(p), np.empty(p.size, dtype=bool)
    adjusted[order] = np.minimum(np.maximum.accumulate(ps * steps), 1.0)
    reject[order] = ~notreject
    return adjusted, reject


def holm(tests, alpha: float) -> Battery:
    """Holm's step-down correction (statsmodels' formula: :func:`holm_arrays`)."""
    tests = tuple(tests)
    if not 0 < alpha < 1:
        raise StatsError(f"alpha must be in (0, 1), got {alpha}")
    if not tests:
        raise StatsError("no tests to correct")
    adj, rej = holm_arrays([t.pvalue for t in tests], alpha)
    return Battery(tests, tuple(float(a) for a in adj), tuple(bool(r) for r in rej), float(alpha))


def bonferroni_blocks(blocks, alpha: float) -> Battery:
    """Join batteries that are each corrected within (Holm, minP, a single test) into one family at ``alpha``.

    Each block gets alpha / (number of blocks): a test's adjusted p-value is its within-block adjusted p-value
    times the number of blocks (capped at 1). The family-wise error is at most the sum of the blocks' levels,
    alpha, and nearly alpha when the blocks are nearly independent (distribution tests and the acceptance test).
    """
    blocks = [b for b in blocks if b is not None]
    if not blocks:
        raise StatsError("no blocks to join")
    k = len(blocks)
    tests = tuple(t for b in blocks for t in b.tests)
    adjusted = tuple(min(1.0, k * a) for b in blocks for a in b.adjusted)
    correction = " + ".join(f"{b.correction}[{len(b.tests)}]" for b in blocks)
    drawn = [b.permutations for b in blocks if b.permutations is not None]
    return Battery(tests, adjusted, tuple(a <= alpha for a in adjusted), float(alpha),
                   correction if k == 1 else f"bonferroni over blocks: {correction}", sum(drawn) if drawn else None)
