"""Exactness assertions for test suites, under one session-wide false-failure budget.

:func:`assert_same_law` (two samples, the minP battery of ``harness.stats.omnibus``) and :func:`assert_matches_law`
(a sample against an exact Gaussian law). Each spends its alpha from the current test's :class:`Budget`, which
the pytest plugin (:mod:`specverify.pytest_plugin`: hooks, options and fixtures) sets up; outside pytest pass
``alpha=``. The budget's contract is stated in the plugin's docstring. Importing this module does not import
pytest; numpy, scipy and torch load when a helper is first used.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import TYPE_CHECKING

from specverify.errors import BudgetError, LawInputError

if TYPE_CHECKING:
    from specverify.harness.stats.omnibus import BatteryTests

__all__ = ["Budget", "assert_matches_law", "assert_same_law"]


DEFAULT_ALPHA = 0.01


DEFAULT_SEED = 0


@dataclasses.dataclass(eq=False)  # identity: the stack below removes this very session
class _Session:
    alpha: float
    seed: int
    random_seed: bool
    units: int = 0  # declared assertions of the marked tests: the split
    marked: int = 0
    own_alpha: int = 0  # marked tests with their own alpha
    plans: dict = dataclasses.field(default_factory=dict)  # nodeid -> (per-assertion alpha or None, allowed)
    fallback_count: int = 0
    assertions: int = 0
    rejected: int = 0
    spent: float = 0.0
    outside: int = 0
    current: Budget | None = None


_SESSIONS: list[_Session] = []  # a stack: pytester runs sessions inside sessions


def _test_seed(seed: int, nodeid: str) -> int:
    """The session seed offset by a stable hash of the node id: each test gets its own stream."""
    return (seed + zlib.crc32(nodeid.encode())) % 2**32


class Budget:
    """The false-failure budget of one test. :meth:`alpha_for_next` returns (and books) the level of the test's
    next exactness assertion; the helpers call it when no ``alpha=`` is given."""

    def __init__(self, session: _Session | None, nodeid: str, *, level: float | None = None, allowed: int = 0,
                 own: bool = False):
        self._session, self.nodeid, self.level, self.allowed, self.own = session, nodeid, level, allowed, own
        self.used = 0
        if session is None:
            self.seed = DEFAULT_SEED
        else:  # the test's seed; the session's outside a test
            self.seed = _test_seed(session.seed, nodeid) if nodeid else session.seed

    @property
    def marked(self) -> bool:
        return self.level is not None

    def describe(self) -> str:
        """Where the next assertion's alpha comes from, for the report."""
        s = self._session
        if self.own:
            return "the test's own alpha (marker), outside the session budget"
        if self.marked:
            return f"1 of {s.units} equal shares of the session budget {s.alpha:g}"
        return f"alpha-spending fallback, assertion {s.fallback_count} of the session: {s.alpha:g} * 6 / (pi^2 i^2)"

    def alpha_for_next(self) -> float:
        s = self._session
        if s is None:
            raise BudgetError("no pytest session budget here: pass alpha= explicitly (the declared false-failure "
                              "probability of this assertion)")
        if self.own:
            s.outside += 1
            return self.level
        if self.marked:
            if self.used >= self.allowed:
                raise BudgetError(f"{self.nodeid} declared {self.allowed} exactness assertion(s) and makes another: "
                                  f"declare them with @pytest.mark.specverify(assertions={self.used + 1}) so the "
                                  "session budget is split over all of them, or pass alpha= explicitly")
            self.used += 1
            s.spent += self.level
            return self.level
        if s.units:
            raise BudgetError(f"{self.nodeid or 'this assertion'} is not marked @pytest.mark.specverify, and the "
                              f"session budget {s.alpha:g} is already split over the {s.units} declared assertions "
                              "of the marked tests: mark the test, or pass alpha= explicitly")
        s.fallback_count += 1
        level = s.alpha * 6 / (math.pi**2 * s.fallback_count**2)
        s.spent += level
        return level


def _current() -> Budget:
    if not _SESSIONS:
        return Budget(None, "")
    s = _SESSIONS[-1]
    return s.current if s.current is not None else Budget(s, "")


def _samples(a, name: str):
    """A float64 (n, d) array from numpy, torch or JAX; 1-D input is one coordinate per sample."""
    import numpy as np

    from specverify.harness.contracts import _to_numpy
    from specverify.harness.stats import MIN_SAMPLES

    try:
        a = _to_numpy(a)
    except (TypeError, ValueError) as e:
        raise LawInputError(f"{name} is not an array of numbers: {e}") from None
    if a.ndim == 1:
        a = a[:, None]
    if a.ndim != 2:
        raise LawInputError(f"{name} has shape {a.shape}; give samples as (n, d): flatten each sample, "
                            f"{name}.reshape(n, -1)")
    if a.shape[0] < MIN_SAMPLES:
        raise LawInputError(f"{name} has {a.shape[0]} samples; the tests need n >= {MIN_SAMPLES} (size n from the "
                            "effect to detect: specverify.harness.stats.ks_two_sample_n)")
    bad = int((~np.isfinite(a)).any(1).sum())
    if bad:
        raise LawInputError(f"{name} has NaN or Inf in {bad} of {a.shape[0]} samples; the sampler produced "
                            "invalid output")
    return a


def _gaussian(law, d: int):
    """(mean, eigvals, eigvecs) from a law with those fields or a (mean, cov) pair."""
    import numpy as np

    if all(hasattr(law, f) for f in ("mean", "eigvals", "eigvecs")):
        mean, lam, q = (np.asarray(getattr(law, f), dtype=np.float64) for f in ("mean", "eigvals", "eigvecs"))
    elif isinstance(law, tuple | list) and len(law) == 2:
        mean, cov = (np.asarray(v, dtype=np.float64) for v in law)
        cov = np.atleast_2d(cov)
        if cov.shape != (d, d) or not np.isfinite(cov).all() or not np.allclose(cov, cov.T, rtol=1e-10, atol=0):
            raise LawInputError(f"cov must be a finite symmetric ({d}, {d}) matrix, got shape {cov.shape}")
        lam, q = np.linalg.eigh(cov)
    else:
        raise LawInputError("law must have mean, eigvals and eigvecs (e.g. specverify.harness.reference.GaussianLaw) "
                            f"or be a (mean, cov) pair; got {type(law).__name__}")
    mean = np.atleast_1d(mean)
    if mean.shape != (d,) or lam.shape != (d,) or q.shape != (d, d):
        raise LawInputError(f"the samples have d={d} but the law has mean {mean.shape}, eigvals {lam.shape}, "
                            f"eigvecs {q.shape}")
    if not (np.isfinite(mean).all() and np.isfinite(lam).all() and (lam > 0).all()):
        raise LawInputError("the law needs a finite mean and a positive definite covariance (eigvals > 0); a "
                            "degenerate law cannot whiten the samples: test the non-degenerate coordinates")
    return mean, lam, q


def _level(alpha) -> tuple[float, str]:
    if alpha is None:
        budget = _current()
        level = budget.alpha_for_next()
        return level, budget.describe()
    if not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise LawInputError(f"alpha must be in (0, 1), got {alpha!r}")
    if _SESSIONS:
        _SESSIONS[-1].outside += 1
    return float(alpha), "explicit alpha=, outside the session budget"


def _record(battery) -> None:
    if _SESSIONS:
        s = _SESSIONS[-1]
        s.assertions += 1
        s.rejected += int(battery.reject)


def _failure(title: str, battery, source: str, seed: int | None, hint: str) -> AssertionError:
    import numpy as np

    rows = [f"{title}", f"  rejected at alpha={battery.alpha:.4g} ({source}); {len(battery.tests)} tests, "
            f"{battery.correction}-adjusted; n={battery.tests[0].n}"]
    rows.append("  worst tests (adjusted p <= alpha rejects):")
    for i in np.argsort(battery.adjusted, kind="stable")[:5]:
        t = battery.tests[i]
        rows.append(f"    {t.name:<26} statistic={t.statistic:.4g}  p={t.pvalue:.3g}  "
                    f"adjusted p={battery.adjusted[i]:.3g}")
    s = _SESSIONS[-1] if _SESSIONS else None
    if s is not None:
        rows.append(f"  session seed={s.seed}" + (f", test seed={seed}" if seed is not None else "")
                    + f": rerun with --specverify-seed {s.seed} to reproduce")
    rows.append(f"  hint: a correct sampler fails this check with probability at most {battery.alpha:.3g}; {hint}")
    return AssertionError("\n".join(rows))


def assert_same_law(x, y, *, alpha: float | None = None, n_perm: int | None = None, seed: int | None = None,
                    tests: BatteryTests | None = None):
    """Assert that samples x (n, d) and y (m, d) come from one law (numpy, torch or JAX arrays).

    Two-sample KS (coordinates, |x|^2, random projections), MMD and energy tests on shared permutations,
    minP-adjusted (``stats.omnibus.two_sample_minp``): a family-wise level of at most alpha, the permutations
    stopping once the decision is settled (``n_perm``: a fixed number instead, level alpha up to 1/(n_perm + 1)).
    ``alpha`` defaults to this test's share of the session budget; ``seed`` (the permutations and projections)
    to the test's seed; ``tests`` (``stats.omnibus.BatteryTests``: projections, coordinates, kernel tests) to
    the battery's defaults.
    Returns the :class:`~specverify.harness.stats.Battery`; raises AssertionError with its worst tests on rejection.
    """
    __tracebackhide__ = True  # pytest shows the caller's line, not this helper's
    from specverify.harness.stats.omnibus import BatteryTests, Permutations, two_sample_minp

    x, y = _samples(x, "x"), _samples(y, "y")
    if x.shape[1] != y.shape[1]:
        raise LawInputError(f"x has dimension {x.shape[1]} and y {y.shape[1]}: compare samples of one problem")
    level, source = _level(alpha)
    seed = _current().seed if seed is None else int(seed)
    battery = two_sample_minp(x, y, level, Permutations(n_perm, seed=seed), tests=tests or BatteryTests())
    _record(battery)
    if battery.reject:
        raise _failure(f"x (n={len(x)}) and y (m={len(y)}, d={x.shape[1]}) do not have the same law", battery,
                       source, seed, "coordinates point at a mean or scale error, |x|^2 at a variance error, "
                       "projections, MMD and energy at correlations or shape")
    return battery


def assert_matches_law(x, law, *, alpha: float | None = None):
    """Assert that samples x (n, d) are draws from the exact Gaussian ``law`` (numpy, torch or JAX arrays).

    ``law`` has ``mean``, ``eigvals``, ``eigvecs`` (``specverify.harness.reference.GaussianLaw``) or is a (mean, cov)
    pair. Whitened KS per coordinate and of |w|^2 against chi^2(d), Holm at family-wise ``alpha``
    (``stats.gaussian_one_sample``). ``alpha`` defaults to this test's share of the session budget.
    Returns the :class:`~specverify.harness.stats.Battery`; raises AssertionError with its worst tests on rejection.
    """
    __tracebackhide__ = True
    from specverify.harness.stats import gaussian_one_sample

    x = _samples(x, "x")
    mean, lam, q = _gaussian(law, x.shape[1])
    level, source = _level(alpha)
    battery = gaussian_one_sample(x, mean, lam, q, level)
    _record(battery)
    if battery.reject:
        raise _failure(f"x (n={len(x)}, d={x.shape[1]}) does not match the exact law", battery, source, None,
                       "whitened coordinates point at a mean or variance error along one eigen-direction, "
                       "|w|^2 at an overall scale error")
    return battery
