"""The pytest plugin (``specverify.pytest_plugin``): options, header, marker, fixtures, budget and helpers.

Sessions run in process with ``pytester``. Statistical assertions declare their alpha: inner sessions spend the
budget given by ``--specverify-alpha`` (split over their marked tests), direct calls pass ``alpha=ALPHA``. Seeds
are fixed, so every verdict is reproducible; a correct law passes each one with probability >= 1 - alpha over a
fresh seed, and the shifted and rescaled negative controls are far beyond the tests' power at these n.
Chance-failing assertions: 4 inner passing tests at alpha <= 0.01 and 4 direct ones at ALPHA, so this file's
false-failure budget over fresh seeds is at most 4 * 0.01 + 4 * ALPHA = 4.4%.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys

import jax
import numpy as np
import pytest
import torch

import specverify.harness.stats  # noqa: F401  (loaded before pytester's module snapshots: no re-imports inside)
import specverify.harness.stats.omnibus  # noqa: F401
from specverify.errors import BudgetError, LawInputError, SpecverifyError
from specverify.harness.reference import GaussianLaw
from specverify.harness.stats.omnibus import BatteryTests
from specverify.pytest_plugin import assert_matches_law, assert_same_law

pytest_plugins = ["pytester"]

ALPHA = 1e-3  # false-failure probability of each direct statistical assertion in this file

SAME_LAW = """
import pytest
from specverify.pytest_plugin import assert_same_law

@pytest.mark.specverify
def test_same(specverify_rng):
    assert_same_law(specverify_rng.normal(size=(500, 2)), specverify_rng.normal(size=(500, 2)))

@pytest.mark.specverify
def test_shifted(specverify_rng):
    assert_same_law(specverify_rng.normal(size=(500, 2)), specverify_rng.normal(size=(500, 2)) + 0.5)
"""

MATCHES_LAW = """
import numpy as np
import pytest
from specverify.pytest_plugin import assert_matches_law

LAW = (np.zeros(2), np.array([[1.0, 0.5], [0.5, 2.0]]))

def draw(rng, n=1000):
    return rng.multivariate_normal(*LAW, size=n)

@pytest.mark.specverify
def test_first(specverify_rng):
    print("ALPHA", assert_matches_law(draw(specverify_rng), LAW).alpha)

@pytest.mark.specverify
def test_second(specverify_rng):
    print("ALPHA", assert_matches_law(draw(specverify_rng), LAW).alpha)
"""


def run(pytester, *args):
    """An in-process pytest session; the plugin comes from its entry point (or -p when autoload is off)."""
    extra = ["-p", "specverify.pytest_plugin"] if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD") else []
    return pytester.runpytest(*extra, *args)


def printed(result, tag: str) -> list[str]:
    """The values printed after ``tag`` by an inner session run with -s (a print may follow the file name)."""
    return [m.group(1) for line in result.outlines for m in re.finditer(rf"\b{tag} (\S+)", line)]


# ---------------------------------------------------------------------------------------------------------------
# Registration, options and the report header.


def test_entry_point_and_options_are_registered(pytester):
    from importlib.metadata import entry_points

    assert [e.value for e in entry_points(group="pytest11") if e.name == "specverify"] == ["specverify.pytest_plugin"]
    result = run(pytester, "--help")
    result.stdout.fnmatch_lines(["*--specverify-alpha=A*", "*--specverify-seed=S*"])
    run(pytester, "--markers").stdout.fnmatch_lines(["@pytest.mark.specverify(assertions=1, alpha=None):*"])


def test_header_shows_seed_and_budget(pytester):
    pytester.makepyfile(MATCHES_LAW)
    result = run(pytester, "--specverify-alpha", "0.02", "--specverify-seed", "12345")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines([
        "specverify: seed=12345 alpha=0.02 (family-wise, split over the exactness tests marked *)",
        "specverify: seed=12345 alpha=0.02 (family-wise, split over 2 exactness assertion(s) of 2 marked test(s): "
        "0.01 each)",
        "*- specverify -*",
        "2 exactness assertion(s), 0 rejected; spent 0.02 of the family-wise budget 0.02",
    ])


def test_plugin_is_quiet_without_marked_tests(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["specverify: seed=0 alpha=0.01 *"])
    result.stdout.no_fnmatch_line("*split over 0*")
    result.stdout.no_fnmatch_line("*- specverify -*")


@pytest.mark.parametrize("args, message", [
    (("--specverify-alpha", "1.5"), "--specverify-alpha must be in (0, 1)*"),
    (("--specverify-seed", "abc"), "--specverify-seed must be an int or 'random'*"),
    (("--specverify-seed", "-1"), "--specverify-seed must be in*"),
])
def test_bad_options_are_usage_errors(pytester, args, message):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = run(pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}"])


def test_bad_marker_arguments_are_usage_errors(pytester):
    from specverify.pytest_plugin import _SESSIONS

    before = list(_SESSIONS)
    pytester.makepyfile("import pytest\n\n@pytest.mark.specverify(assertions=0)\ndef test_x():\n    pass\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*specverify marker assertions must be an int >= 1*"])
    assert [id(x) for x in _SESSIONS] == [id(x) for x in before]  # the inner session is gone from the stack


# ---------------------------------------------------------------------------------------------------------------
# Passing and failing exactness tests.


def test_same_law_passes_and_shifted_sample_fails_with_the_battery(pytester):
    pytester.makepyfile(SAME_LAW)
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "*split over 2 exactness assertion(s) of 2 marked test(s): 0.005 each*",
        "*test_shifted*",
        "E*AssertionError: x (n=500) and y (m=500, d=2) do not have the same law",
        "E*rejected at alpha=0.005 (1 of 2 equal shares of the session budget 0.01); * tests, minP-adjusted; n=500",
        "E*worst tests (adjusted p <= alpha rejects):",
        "E*ks[[]*statistic=*p=*adjusted p=*",
        "E*session seed=0, test seed=*: rerun with --specverify-seed 0 to reproduce",
        "E*hint: a correct sampler fails this check with probability at most 0.005*",
        "*2 exactness assertion(s), 1 rejected; spent 0.01 of the family-wise budget 0.01",
    ])
    result.stdout.no_fnmatch_line("*test_same - *")


def test_matches_law_fails_on_a_wrong_variance(pytester):
    pytester.makepyfile("""
        import numpy as np
        import pytest
        from specverify.pytest_plugin import assert_matches_law

        @pytest.mark.specverify
        def test_scaled(specverify_rng):
            assert_matches_law(1.3 * specverify_rng.normal(size=(1000, 3)), (np.zeros(3), np.eye(3)))
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E*AssertionError: x (n=1000, d=3) does not match the exact law",
                                 "E*rejected at alpha=0.01 (1 of 1 equal shares of the session budget 0.01)*holm*",
                                 "E*ks[[]|w|^2 vs chi2(3)]*"])


def test_bad_input_is_an_error_not_a_pass(pytester):
    pytester.makepyfile("""
        import numpy as np
        import pytest
        from specverify.pytest_plugin import assert_same_law

        @pytest.mark.specverify
        def test_nan(specverify_rng):
            x = specverify_rng.normal(size=(500, 2))
            x[7, 1] = np.nan
            assert_same_law(x, specverify_rng.normal(size=(500, 2)))
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E*LawInputError: x has NaN or Inf in 1 of 500 samples*"])
    result.stdout.no_fnmatch_line("*- specverify -*")  # nothing was tested, nothing spent


# ---------------------------------------------------------------------------------------------------------------
# The budget.


def test_two_marked_tests_each_get_half_the_budget(pytester):
    pytester.makepyfile(MATCHES_LAW)
    result = run(pytester, "-s", "--specverify-alpha", "0.02")
    result.assert_outcomes(passed=2)
    assert [float(a) for a in printed(result, "ALPHA")] == [0.01, 0.01]


def test_budget_split_over_declared_assertions(pytester):
    pytester.makepyfile("""
        import pytest
        from specverify.pytest_plugin import BudgetError

        @pytest.mark.specverify
        def test_one(specverify_budget):
            assert specverify_budget.alpha_for_next() == pytest.approx(0.04 / 4)
            with pytest.raises(BudgetError, match=r"declared 1 exactness assertion.*assertions=2"):
                specverify_budget.alpha_for_next()

        @pytest.mark.specverify(assertions=3)
        def test_three(specverify_budget):
            assert [specverify_budget.alpha_for_next() for _ in range(3)] == pytest.approx([0.01] * 3)

        @pytest.mark.specverify(alpha=0.001)
        def test_own_alpha(specverify_budget):
            assert specverify_budget.alpha_for_next() == 0.001
            assert specverify_budget.alpha_for_next() == 0.001

        def test_unmarked(specverify_budget):
            with pytest.raises(BudgetError, match="not marked"):
                specverify_budget.alpha_for_next()

        @pytest.mark.specverify
        def test_deselected(specverify_budget):
            pass
    """)
    result = run(pytester, "--specverify-alpha", "0.04", "-k", "not deselected")
    result.assert_outcomes(passed=4, deselected=1)
    result.stdout.fnmatch_lines(["*split over 4 exactness assertion(s) of 2 marked test(s): 0.01 each); 1 marked "
                                 "test(s) with their own alpha, outside the budget"])


def test_explicit_alpha_is_outside_the_budget(pytester):
    pytester.makepyfile("""
        import numpy as np
        import pytest
        from specverify.pytest_plugin import assert_matches_law

        @pytest.mark.specverify
        def test_explicit(specverify_rng):
            b = assert_matches_law(specverify_rng.normal(size=(500, 2)), (np.zeros(2), np.eye(2)), alpha=0.001)
            assert b.alpha == 0.001
    """)
    result = run(pytester)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["1 exactness assertion(s), 0 rejected; spent 0 of the family-wise budget 0.01; "
                                 "1 at their own alpha, outside the budget"])


def test_fallback_spending_sequence_without_marked_tests(pytester):
    pytester.makepyfile("""
        import numpy as np
        from specverify.pytest_plugin import assert_matches_law

        def test_spends(specverify_rng):
            for _ in range(2):
                law = (np.zeros(1), np.eye(1))
                print("ALPHA", assert_matches_law(specverify_rng.normal(size=(300, 1)), law).alpha)
    """)
    result = run(pytester, "-s")
    result.assert_outcomes(passed=1)
    a = 0.01 * 6 / math.pi**2
    assert [float(v) for v in printed(result, "ALPHA")] == pytest.approx([a, a / 4], rel=1e-12)


def test_marked_test_cannot_overspend_through_the_helpers(pytester):
    pytester.makepyfile("""
        import numpy as np
        import pytest
        from specverify.pytest_plugin import assert_matches_law

        @pytest.mark.specverify
        def test_twice(specverify_rng):
            law = (np.zeros(1), np.eye(1))
            assert_matches_law(specverify_rng.normal(size=(300, 1)), law)
            assert_matches_law(specverify_rng.normal(size=(300, 1)), law)
    """)
    result = run(pytester)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["E*BudgetError: *test_twice declared 1 exactness assertion(s)*"])


# ---------------------------------------------------------------------------------------------------------------
# Seeds.

SEEDS = """
import numpy as np

def test_a(specverify_seed, specverify_rng):
    print("SEED", specverify_seed, "DRAW", specverify_rng.integers(2**32))

def test_b(specverify_seed):
    print("SEED", specverify_seed)
"""


def test_seed_option_reproduces(pytester):
    pytester.makepyfile(SEEDS)
    first = run(pytester, "-s", "--specverify-seed", "123")
    first.stdout.fnmatch_lines(["specverify: seed=123 alpha=0.01 *"])
    again = run(pytester, "-s", "--specverify-seed", "123")
    other = run(pytester, "-s", "--specverify-seed", "124")
    seeds = printed(first, "SEED")
    assert len(seeds) == 2 and seeds[0] != seeds[1]  # each test its own stream
    assert printed(again, "SEED") == seeds
    assert set(printed(other, "SEED")).isdisjoint(seeds)
    draws = [line for line in first.outlines if "DRAW" in line]
    assert draws == [line for line in again.outlines if "DRAW" in line]


def test_random_seed_is_printed_and_reproduces(pytester):
    pytester.makepyfile(SEEDS)
    first = run(pytester, "-s", "--specverify-seed", "random")
    header = [line for line in first.outlines if line.startswith("specverify: seed=")][0]
    m = re.match(r"specverify: seed=(\d+) \(random; rerun with --specverify-seed (\d+)\)", header)
    assert m and m.group(1) == m.group(2)
    again = run(pytester, "-s", "--specverify-seed", m.group(1))
    assert printed(again, "SEED") == printed(first, "SEED")


# ---------------------------------------------------------------------------------------------------------------
# The helpers called directly (explicit alpha, so they stay outside this session's budget).


def _law(d=3, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return GaussianLaw(rng.normal(size=d), rng.uniform(0.5, 2.0, size=d), q)


def test_helpers_accept_numpy_torch_and_jax():
    law = _law()
    x = law.sample(jax.random.key(1), 800)  # JAX
    b = assert_matches_law(x, law, alpha=ALPHA)
    assert b.alpha == ALPHA and not b.reject
    assert_matches_law(torch.tensor(np.asarray(x), dtype=torch.float32), (law.mean, law.cov), alpha=ALPHA)
    y = np.asarray(law.sample(jax.random.key(2), 800))
    b = assert_same_law(torch.tensor(np.asarray(x)), y, alpha=ALPHA, seed=3)
    assert b.correction == "minP" and not b.reject


def test_direct_helpers_fail_with_the_battery():
    law = _law()
    rng = np.random.default_rng(4)
    x = np.asarray(law.sample(jax.random.key(5), 800))
    with pytest.raises(AssertionError, match=r"(?s)does not match the exact law.*explicit alpha=, outside"):
        assert_matches_law(x + 0.3, law, alpha=ALPHA)
    with pytest.raises(AssertionError, match=r"(?s)do not have the same law.*adjusted p="):
        assert_same_law(x, 1.5 * rng.normal(size=(800, 3)), alpha=ALPHA, tests=BatteryTests(kernel_tests=False))


@pytest.mark.parametrize("bad, match", [
    (lambda x: x[:50], "50 samples; the tests need n >= 100"),
    (lambda x: np.where(np.arange(300)[:, None] == 9, np.inf, x), "NaN or Inf in 1 of 300"),
    (lambda x: x.reshape(300, 1, 2), r"shape \(300, 1, 2\).*flatten"),
    (lambda x: x[:, :1], "dimension 1 and y 2"),
    (lambda x: np.array(["a"] * 300), "not an array of numbers"),
])
def test_same_law_bad_input(bad, match):
    x = np.random.default_rng(6).normal(size=(300, 2))
    with pytest.raises(LawInputError, match=match):
        assert_same_law(bad(x), x, alpha=ALPHA)


@pytest.mark.parametrize("law, match", [
    ((np.zeros(3), np.eye(3)), r"symmetric \(2, 2\) matrix, got shape \(3, 3\)"),
    (GaussianLaw(np.zeros(3), np.ones(3), np.eye(3)), r"d=2 but the law has mean \(3,\)"),
    ((np.zeros(2), np.array([[1.0, 0.2], [0.3, 1.0]])), "symmetric"),
    ((np.zeros(2), np.diag([1.0, 0.0])), "positive definite"),
    ("normal", "mean, eigvals and eigvecs"),
])
def test_matches_law_bad_law(law, match):
    x = np.random.default_rng(7).normal(size=(300, 2))
    with pytest.raises(LawInputError, match=match):
        assert_matches_law(x, law, alpha=ALPHA)


def test_bad_alpha_and_errors_are_specverify_errors():
    x = np.random.default_rng(8).normal(size=(300, 1))
    with pytest.raises(LawInputError, match=r"alpha must be in \(0, 1\)"):
        assert_matches_law(x, (np.zeros(1), np.eye(1)), alpha=1.0)
    assert issubclass(LawInputError, SpecverifyError) and issubclass(LawInputError, ValueError)
    assert issubclass(BudgetError, SpecverifyError)


def test_import_is_light_and_helpers_need_alpha_outside_pytest():
    code = ("import sys\n"
            "import specverify.pytest_plugin as p\n"
            "print(sorted(m for m in ('torch', 'scipy', 'jax', 'numpy') if m in sys.modules))\n"
            "import numpy as np\n"
            "try:\n"
            "    p.assert_matches_law(np.zeros((200, 1)), (np.zeros(1), np.eye(1)))\n"
            "except p.BudgetError as e:\n"
            "    print('BudgetError', e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines()[0] == "[]"
    assert "BudgetError no pytest session budget here: pass alpha= explicitly" in out
