"""Errors are errors: any bad argument, broken candidate or unexpected exception exits 2 with one line and no
traceback (unless --debug), never 1 (exactness rejected), and --json still gets a report with verdict "error".
The Python API raises SpecverifyError subclasses for the same inputs."""

import contextlib
import io
import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from specverify import bridge
from specverify.cli import main
from specverify.errors import CandidateError, ContractError, SampleSizeError, SpecverifyError, StatsError, UsageError
from specverify.harness import Plan, check_against_law, check_against_sampler, draw
from specverify.harness.contracts import time_limit

TINY = ["--problem", "gaussian", "--dim", "2", "--steps", "5"]
CASES = itertools.count()  # examples run, for the report

CANDIDATES = '''
import time
import numpy as np

def ok(n, seed):
    return np.random.default_rng(seed).normal(size=(n, 2))

def raises(n, seed):
    raise RuntimeError("the GPU caught fire")

def hangs(n, seed):
    time.sleep(60)

def as_list(n, seed):
    return ok(n, seed).tolist()

def as_string(n, seed):
    return "samples"

def as_int(n, seed):
    return 3

def as_float16(n, seed):
    return ok(n, seed).astype(np.float16)

def as_nan(n, seed):
    return np.full((n, 2), np.nan)

def wrong_shape(n, seed):
    return np.zeros((n, 2, 1))

def wrong_count(n, seed):
    return np.zeros((n + 1, 2))

def wrong_dim(n, seed):
    return np.zeros((n, 3))

def unexpected(n, seed):  # acceptance counts that are not numbers
    return {"samples": ok(n, seed), "accepted": np.zeros(n), "predicted": object()}
'''
BAD_CANDIDATES = {"raises": "raised RuntimeError", "hangs": "time limit", "as_list": "not an array",
                  "as_string": "not an array", "as_int": "not an array", "as_float16": "float16",
                  "as_nan": "NaN or Inf", "wrong_shape": "shape", "wrong_count": "samples for n=",
                  "wrong_dim": "dimension 3", "unexpected": "predicted"}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("errors")
    (d / "cands.py").write_text(CANDIDATES)
    (d / "a_file").write_text("")
    return d


def run_cli(argv):
    """main(argv) in-process: (exit code, stdout + stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    next(CASES)
    return rc, out.getvalue() + err.getvalue()


def assert_error(argv, work: Path, *, report: bool = True):
    js = work / f"r{next(CASES)}.json"
    command = next(a for a in argv if not a.startswith("-"))
    rc, text = run_cli([*argv, "--json", str(js)] if report else argv)
    assert rc == 2, (argv, rc, text)
    assert "Traceback (most recent call last)" not in text, text
    assert f"specverify {command}: error: " in text, text
    if report and command in ("check", "mutants", "accept"):
        r = json.loads(js.read_text())
        assert r["verdict"] == "error" and r["error"], r
    return text


def _floats_outside_unit():
    return st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0), st.sampled_from([math.nan, math.inf]))


def _not_positive():
    return st.one_of(st.floats(max_value=0.0), st.sampled_from([math.nan, math.inf, -math.inf]))


NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=1, max_size=12)


@st.composite
def bad_cli_args(draw_):
    """(command, extra args): one bad argument for a command that takes it."""
    kind = draw_(st.sampled_from(["n", "rate", "window", "steps", "dim", "eta", "step-size", "timeout", "problem",
                                  "drafter", "mutant", "components", "seed"]))
    if kind == "n":
        command = draw_(st.sampled_from(["check", "mutants", "accept", "sample"]))
        low = {"check": 2, "mutants": 2, "accept": 2, "sample": 1}[command]  # trajectories: 2 (--terminal: 100)
        return command, ["--n", str(draw_(st.integers(max_value=low - 1)))]
    if kind == "rate":
        command, flag = draw_(st.sampled_from(["check", "mutants"])), draw_(st.sampled_from(["alpha", "beta",
                                                                                           "epsilon"]))
        return command, [f"--{flag}", repr(draw_(_floats_outside_unit()))]
    if kind in ("window", "steps", "dim", "components"):
        commands = ["check", "mutants", "sample"] + (["accept"] if kind != "window" else [])
        return draw_(st.sampled_from(commands)), [f"--{kind}", str(draw_(st.integers(max_value=0)))]
    if kind == "seed":
        return draw_(st.sampled_from(["check", "sample", "accept"])), ["--seed", str(draw_(st.integers(max_value=-1)))]
    if kind == "eta":
        return draw_(st.sampled_from(["check", "sample"])), ["--chain", "ddim", "--eta", repr(draw_(_not_positive()))]
    if kind == "step-size":
        return "check", ["--problem", "langevin-gaussian", "--step-size", repr(draw_(_not_positive()))]
    if kind == "timeout":
        return "check", ["--timeout", repr(draw_(_not_positive()))]
    if kind == "problem":
        name = draw_(NAMES.filter(lambda s: s not in bridge.REGISTRY))
        return draw_(st.sampled_from(["check", "sample", "accept", "mutants"])), ["--problem", name]
    name = draw_(NAMES.filter(lambda s: s not in ("stress", "oracle", "medusa", "independent")))
    return "check", [f"--{kind}", name]


@settings(max_examples=60, deadline=None)
@given(bad_cli_args())
def test_any_bad_argument_exits_2_with_one_line_and_a_report(work, case):
    command, extra = case
    argv = [command, *TINY, *extra]
    if command == "accept":
        argv += ["--windows", "1", "--drafters", "frozen-drift"]
    assert_error(argv, work)


@settings(max_examples=20, deadline=None)
@given(st.sampled_from(["check", "mutants", "accept", "sample"]), st.sampled_from(["proc", "dir", "under-file"]),
       st.sampled_from(["--json", "--markdown", "--plots", "--out"]))
def test_unwritable_paths_exit_2_before_the_run(work, command, where, flag):
    if flag == "--out" and command != "sample" or flag == "--plots" and command not in ("check", "accept") \
            or flag == "--markdown" and command == "sample":
        flag = "--json"
    path = {"proc": "/proc/nope/r.json", "dir": str(work),
            "under-file": str(work / "a_file" / "r.json")}[where]
    if flag == "--plots" and where == "dir":
        path = str(work / "a_file")  # a file where a folder is wanted
    text = assert_error([command, *TINY, "--n", "100", flag, path], work, report=False)
    assert "--" in text.split("error: ", 1)[1]  # names the flag


@settings(max_examples=25, deadline=None)
@given(st.sampled_from(sorted(BAD_CANDIDATES)), st.sampled_from(["candidate", "reference"]))
def test_broken_candidates_and_references_exit_2(work, name, role):
    target = f"{work / 'cands.py'}:{name}"
    pair = ["--candidate", target] if role == "candidate" else ["--candidate", f"{work / 'cands.py'}:ok",
                                                                  "--reference", target]
    if role == "reference" and name == "unexpected":
        name = "as_list"  # a reference's acceptance counts are not read
        pair[-1] = f"{work / 'cands.py'}:{name}"
    text = assert_error(["check", *TINY, "--n", "100", "--timeout", "0.3", *pair], work)
    assert BAD_CANDIDATES[name] in text, text


def test_an_unexpected_exception_is_exit_2_with_both_reports(work, monkeypatch):
    def broken(*a, **kw):
        raise ZeroDivisionError("a bug in the harness")

    monkeypatch.setattr(bridge, "check", broken)
    js, md = work / "bug.json", work / "bug.md"
    rc, text = run_cli(["check", *TINY, "--n", "100", "--json", str(js), "--markdown", str(md)])
    assert rc == 2 and "Traceback" not in text
    assert text.strip() == ("specverify check: error: unexpected ZeroDivisionError: a bug in the harness; rerun with "
                            "--debug for the traceback (and report it if the arguments are valid)")
    assert json.loads(js.read_text())["verdict"] == "error" and "a bug in the harness" in md.read_text()


def test_debug_shows_the_traceback(work):
    argv = ["check", *TINY, "--n", "100", "--candidate", f"{work / 'cands.py'}:raises"]
    rc, text = run_cli(["--debug", *argv])
    assert rc == 2 and "Traceback (most recent call last)" in text and "the GPU caught fire" in text
    rc, text = run_cli([*argv, "--debug"])
    assert rc == 2 and "Traceback (most recent call last)" in text
    rc, text = run_cli(argv)
    assert rc == 2 and "Traceback" not in text and text.strip().count("\n") == 0


@pytest.mark.parametrize("argv,words", [
    (["check", "--problem", "gaussian", "--n", "50", "--terminal"], ["--n 50 is too few", "n >= 100"]),
    (["check", "--problem", "gaussian", "--n", "1"], ["--n 1 is too few", "n >= 2"]),
    (["check", "--delta", "0"], ["--delta", "(0, 1)"]),
    (["check", "--lags", "0"], ["--lags must be >= 1"]),
    (["check", "--alpha", "0"], ["--alpha", "(0, 1)"]),
    (["check", "--alpha", "nan"], ["--alpha", "finite"]),
    (["check", "--alpha", "1.5"], ["--alpha", "(0, 1)"]),
    (["check", "--beta", "1"], ["--beta", "(0, 1)"]),
    (["check", "--epsilon", "-0.1"], ["--epsilon", "(0, 1)"]),
    (["check", "--json", "/proc/nope/r.json"], ["--json", "cannot be written"]),
    (["sample", "--window", "0"], ["--window must be >= 1"]),
    (["sample", "--problem", "nope"], ["unknown problem 'nope'", "gaussian"]),
    (["check", "--drafter", "nope"], ["unknown drafter 'nope'", "frozen-drift"]),
    (["mutants", "--steps", "0"], ["--steps must be >= 1"]),
    (["accept", "--problem", "langevin-gaussian", "--step-size", "inf"], ["--step-size", "finite"]),
    (["check", "--mutant", "nope"], ["unknown mutant 'nope'"]),
    (["check", "--chain", "ddim", "--eta", "0"], ["--eta", "> 0"]),
    (["check", "--alpha", "-1e-3"], ["--alpha", "expected one argument"]),
])
def test_table_of_cli_errors(argv, words, work):
    text = assert_error(argv, work, report="--json" not in argv)
    line = text.strip().splitlines()[-1]
    for w in words:
        assert w in line, line


# ----------------------------------------------------------------------------------------------- the Python API

LAW = (np.zeros(2), np.ones(2), np.eye(2))


def _gauss(n, seed):
    return np.random.default_rng(seed).normal(size=(n, 2))


def _bad_kwargs():
    return st.one_of(
        st.tuples(st.sampled_from(["alpha", "beta"]), _floats_outside_unit()),
        st.tuples(st.just("epsilon"), st.one_of(st.floats(max_value=0.0), st.floats(min_value=1.0, exclude_min=True),
                                                 st.just(math.nan))),
        st.tuples(st.just("n"), st.integers(max_value=99)))


@settings(max_examples=40, deadline=None)
@given(_bad_kwargs(), st.sampled_from(["law", "sampler"]))
def test_the_suite_raises_specverify_errors_for_bad_arguments(kw, against):
    key, value = kw
    next(CASES)
    with pytest.raises(SpecverifyError) as e:
        if against == "law":
            check_against_law(_gauss, *LAW, Plan(**{key: value}))
        else:
            check_against_sampler(_gauss, _gauss, 2, Plan(n_perm=99, **{key: value}))
    assert isinstance(e.value, ValueError)  # callers that catch ValueError still work
    if key == "n" and value >= 1:
        assert isinstance(e.value, SampleSizeError)


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(["steps", "dim", "components", "eta", "step_size", "problem"]), st.data())
def test_make_setup_raises_specverify_errors(field, data):
    next(CASES)
    kw = {"steps": 5, "dim": 2}
    if field in ("steps", "dim"):
        kw[field] = data.draw(st.integers(max_value=0))
    elif field == "components":
        kw.update(problem="gmm", components=0)  # negative counts: see test_known_gaps
    elif field == "eta":  # eta = inf: see test_known_gaps
        kw.update(sampler="ddim", eta=data.draw(st.one_of(st.floats(max_value=0.0), st.just(math.nan))))
    elif field == "step_size":
        kw.update(problem="langevin-gaussian", step_size=data.draw(_not_positive()))
    else:
        kw["problem"] = data.draw(NAMES.filter(lambda s: s not in bridge.REGISTRY))
    with pytest.raises(SpecverifyError):  # make_setup's keywords and ChainOptions's fields, flat
        bridge.setup_of(kw.pop("problem", "gmm"), kw).chain()


BAD_OUTPUTS = {
    "list": (lambda n, s: _gauss(n, s).tolist(), ContractError, "not an array"),
    "string": (lambda n, s: "samples", ContractError, "not an array"),
    "int": (lambda n, s: 3, ContractError, "not an array"),
    "float16": (lambda n, s: _gauss(n, s).astype(np.float16), ContractError, "float16"),
    "int64": (lambda n, s: np.zeros((n, 2), dtype=np.int64), ContractError, "int64"),
    "nan": (lambda n, s: np.full((n, 2), np.nan), ContractError, "NaN or Inf"),
    "shape": (lambda n, s: np.zeros((n, 2, 1)), ContractError, "shape"),
    "count": (lambda n, s: np.zeros((n - 1, 2)), ContractError, "samples for n="),
    "raises": (lambda n, s: 1 / 0, CandidateError, "raised ZeroDivisionError"),
}


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(sorted(BAD_OUTPUTS)), st.sampled_from(["draw", "law", "sampler", "reference"]))
def test_broken_candidates_raise_contract_errors(name, where):
    fn, error, match = BAD_OUTPUTS[name]
    next(CASES)
    with pytest.raises(error, match=match):
        if where == "draw":
            draw(fn, 10, 0, dim=2)
        elif where == "law":
            check_against_law(fn, *LAW, Plan(n=100))
        elif where == "sampler":
            check_against_sampler(fn, _gauss, 2, Plan(n=100, n_perm=99))
        else:
            check_against_sampler(_gauss, fn, 2, Plan(n=100, n_perm=99))


def _counting(n, seed):
    return {"samples": _gauss(n, seed), "accepted": np.ones(n), "predicted": np.ones(n)}


@pytest.mark.parametrize("call", ["alpha-two-blocks", "negative-components", "infinite-eta"])
def test_bad_levels_sizes_and_chain_options_are_specverify_errors(call):
    try:
        if call == "alpha-two-blocks":
            check_against_law(_counting, *LAW, Plan(1.5, n=200))
        elif call == "negative-components":
            bridge.make_setup("gmm", components=-1, steps=5)
        else:
            bridge.make_setup("gaussian", chain=bridge.ProblemChain("ddim", eta=math.inf), steps=5).chain()
    except SpecverifyError:
        return
    except Exception as e:  # noqa: BLE001
        raise AssertionError(f"{call}: {type(e).__name__}: {e}") from e
    raise AssertionError(f"{call}: accepted")


def test_a_candidate_past_its_time_limit_is_a_candidate_error():
    import time

    def slow(n, seed):
        time.sleep(30)

    t0 = time.perf_counter()
    with pytest.raises(CandidateError, match="time limit of 0.2 s"), time_limit(0.2):
        check_against_law(slow, *LAW, Plan(n=100))
    assert time.perf_counter() - t0 < 5
    with pytest.raises(UsageError, match="time limit"), time_limit(-1):
        pass


def test_stats_functions_raise_stats_errors():
    from specverify.harness.stats import gaussian_one_sample
    from specverify.harness.stats.acceptance import acceptance_test
    from specverify.harness.stats.omnibus import two_sample_minp
    from specverify.harness.stats.permutation import min_permutations
    from specverify.harness.stats.sizing import binomial_interval, ks_one_sample_n

    x = _gauss(200, 0)
    with pytest.raises(SampleSizeError, match="n >= 100"):
        gaussian_one_sample(x[:50], *LAW, 0.01)
    with pytest.raises(StatsError, match="alpha"):
        gaussian_one_sample(x, *LAW, 1.5)
    with pytest.raises(SampleSizeError):
        acceptance_test(np.ones(5), np.ones(5))
    with pytest.raises(StatsError, match="alpha"):
        two_sample_minp(x, x, math.nan)
    with pytest.raises(StatsError, match="alpha"):
        min_permutations(0)
    with pytest.raises(StatsError, match="k must be"):
        binomial_interval(5, 3, 0.9)
    with pytest.raises(StatsError, match="beta"):
        ks_one_sample_n(0.01, math.inf, 0.05)
