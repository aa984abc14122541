"""pytest plugin (entry point ``pytest11``): exactness assertions under one session-wide false-failure budget.

Hooks, options and fixtures; the helpers live in :mod:`specverify.testing` (re-exported here):
:func:`assert_same_law` (two samples, the minP battery of ``stats.omnibus``) and
:func:`assert_matches_law` (a sample against an exact Gaussian law). Marker: ``@pytest.mark.specverify``.
Fixtures: ``specverify_seed``, ``specverify_rng``, ``specverify_budget``. Options:

    --specverify-alpha A   family-wise false-failure budget of the session (default 0.01)
    --specverify-seed S    session seed: an int (default 0) or ``random`` (drawn, printed in the report header)

Contract of the budget (Bonferroni, valid whatever the dependence between tests): a correct sampler fails any
of the session's budgeted assertions with probability at most A.

- Split: A is split equally over the exactness assertions declared by the collected tests marked
  ``@pytest.mark.specverify``: one per test, ``@pytest.mark.specverify(assertions=k)`` declares k. Two marked
  tests run at A / 2 each. A marked test that asserts more than it declared gets a :class:`BudgetError`.
- Fallback, when no marked test is collected: assertions spend alpha_i = A 6 / (pi^2 i^2), i = 1, 2, ... in
  the order they run (the sum is <= A). Late assertions get small levels; mark the tests instead.
- When marked tests are collected the budget is fully split, so an unmarked test that asserts without
  ``alpha=`` gets a :class:`BudgetError` (mark it or give its alpha).
- ``alpha=`` given to a helper, or ``@pytest.mark.specverify(alpha=...)``, overrides the budget: such
  assertions run at that level and are reported as outside the budget.

Not covered: pytest-xdist workers each draw their own ``random`` seed and count fallback assertions separately;
pass an integer seed and mark the tests there. Importing this module is cheap: numpy, scipy and torch load when a
helper or fixture is first used.
"""

from __future__ import annotations

import secrets

import pytest

from specverify.errors import BudgetError, LawInputError, UsageError
from specverify.testing import (
    _SESSIONS,
    DEFAULT_ALPHA,
    DEFAULT_SEED,
    Budget,
    _Session,
    _test_seed,
    assert_matches_law,
    assert_same_law,
)

__all__ = ["Budget", "BudgetError", "LawInputError", "OptionError", "assert_matches_law", "assert_same_law"]


class OptionError(UsageError, pytest.UsageError):
    """A bad --specverify-* option or marker argument (pytest reports it as a usage error).

    The one error class outside :mod:`specverify.errors`: it is also a ``pytest.UsageError``, and that module
    does not import pytest."""


_KEY = pytest.StashKey[_Session]()


def _budget_for(session: _Session, item) -> Budget:
    level, allowed = session.plans.get(item.nodeid, (None, 0))
    if level is not None and allowed == 0:  # marked, with its own alpha
        return Budget(session, item.nodeid, level=level, own=True)
    return Budget(session, item.nodeid, level=level, allowed=allowed)


def _marker_plan(item):
    """(own alpha or None, declared assertions) of a marked item; bad marker arguments are usage errors."""
    m = item.get_closest_marker("specverify")
    if m.args or set(m.kwargs) - {"alpha", "assertions"}:
        raise OptionError(f"{item.nodeid}: use @pytest.mark.specverify, @pytest.mark.specverify(assertions=k) "
                                f"or @pytest.mark.specverify(alpha=a); got args {m.args} kwargs {m.kwargs}")
    alpha, k = m.kwargs.get("alpha"), m.kwargs.get("assertions", 1)
    if alpha is not None and not (isinstance(alpha, float | int) and 0 < alpha < 1):
        raise OptionError(f"{item.nodeid}: specverify marker alpha must be in (0, 1), got {alpha!r}")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise OptionError(f"{item.nodeid}: specverify marker assertions must be an int >= 1, got {k!r}")
    return alpha, k


def pytest_addoption(parser):
    group = parser.getgroup("specverify", "specverify exactness assertions")
    group.addoption("--specverify-alpha", type=float, default=DEFAULT_ALPHA, metavar="A",
                    help="family-wise false-failure budget of the session, split over the exactness tests marked "
                         f"@pytest.mark.specverify (default {DEFAULT_ALPHA})")
    group.addoption("--specverify-seed", default=str(DEFAULT_SEED), metavar="S",
                    help=f"session seed: an int (default {DEFAULT_SEED}) reproduces a run; 'random' draws one and "
                         "prints it in the report header")


def pytest_configure(config):
    config.addinivalue_line("markers", "specverify(assertions=1, alpha=None): an exactness test; it gets an equal "
                                       "share of the --specverify-alpha budget per declared assertion (alpha= "
                                       "gives its own level, outside the budget)")
    alpha = config.getoption("specverify_alpha")
    if not 0 < alpha < 1:
        raise OptionError(f"--specverify-alpha must be in (0, 1), got {alpha}")
    raw = config.getoption("specverify_seed")
    if raw == "random":
        seed = secrets.randbelow(2**32)
    else:
        try:
            seed = int(raw)
        except ValueError:
            raise OptionError(f"--specverify-seed must be an int or 'random', got {raw!r}") from None
        if not 0 <= seed < 2**32:
            raise OptionError(f"--specverify-seed must be in [0, 2**32), got {seed}")
    session = _Session(alpha=alpha, seed=seed, random_seed=raw == "random")
    config.stash[_KEY] = session
    _SESSIONS.append(session)


def pytest_unconfigure(config):
    session = config.stash.get(_KEY, None)
    if session is not None and session in _SESSIONS:
        _SESSIONS.remove(session)


def pytest_report_header(config):
    s = config.stash[_KEY]
    seed = f"seed={s.seed}" + (f" (random; rerun with --specverify-seed {s.seed})" if s.random_seed else "")
    return [f"specverify: {seed} alpha={s.alpha:g} (family-wise, split over the exactness tests marked "
            "@pytest.mark.specverify)"]


@pytest.hookimpl(trylast=True)  # after -m / -k deselection
def pytest_collection_modifyitems(session, config, items):
    s = config.stash[_KEY]
    s.units = s.marked = s.own_alpha = 0
    plans = {}
    for item in items:
        if item.get_closest_marker("specverify") is None:
            continue
        alpha, k = _marker_plan(item)
        s.marked += 1
        if alpha is None:
            s.units += k
            plans[item.nodeid] = (None, k)
        else:
            s.own_alpha += 1
            plans[item.nodeid] = (float(alpha), 0)
    share = s.alpha / s.units if s.units else None
    s.plans = {nid: (level if level is not None else share, k) for nid, (level, k) in plans.items()}


def pytest_report_collectionfinish(config, items):
    s = config.stash[_KEY]
    if not s.marked:
        return []
    line = (f"specverify: seed={s.seed} alpha={s.alpha:g} (family-wise, split over {s.units} exactness "
            f"assertion(s) of {s.marked - s.own_alpha} marked test(s): {s.alpha / s.units:.4g} each)"
            if s.units else f"specverify: seed={s.seed}; every marked test has its own alpha")
    if s.own_alpha:
        line += f"; {s.own_alpha} marked test(s) with their own alpha, outside the budget"
    return [line]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    s = item.config.stash.get(_KEY, None)
    if s is None:
        return (yield)
    s.current = _budget_for(s, item)
    try:
        return (yield)
    finally:
        s.current = None


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    s = config.stash.get(_KEY, None)
    if s is None or not s.assertions:
        return
    tr = terminalreporter
    tr.write_sep("-", "specverify")
    tr.write_line(f"{s.assertions} exactness assertion(s), {s.rejected} rejected; spent {s.spent:.4g} of the "
                  f"family-wise budget {s.alpha:g}" + (f"; {s.outside} at their own alpha, outside the budget"
                                                       if s.outside else ""))
    tr.write_line(f"seed={s.seed}: rerun with --specverify-seed {s.seed} to reproduce")


@pytest.fixture
def specverify_seed(request) -> int:
    """This test's seed: the session seed offset by a stable hash of the test's node id."""
    return _test_seed(request.config.stash[_KEY].seed, request.node.nodeid)


@pytest.fixture
def specverify_rng(specverify_seed):
    """A numpy Generator seeded with ``specverify_seed``."""
    import numpy as np

    return np.random.default_rng(specverify_seed)


@pytest.fixture
def specverify_budget(request) -> Budget:
    """This test's :class:`Budget` (the one the helpers spend from)."""
    s = request.config.stash[_KEY]
    return s.current if s.current is not None else _budget_for(s, request.node)
