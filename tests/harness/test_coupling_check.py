"""The kernel-level check's result: a frozen record whose to_dict() is the JSON of `specverify check` on a coupling."""

import dataclasses
import json

import numpy as np
import pytest

from specverify.harness.coupling_check import CASES, CouplingResult, check_coupling, markdown_kernel, reference_coupling

ALPHA, N = 0.01, 2000  # the check's family-wise false-alarm rate; seed fixed below
RESULT_KEYS = ["verdict", "form", "alpha", "n", "seed", "exact", "exact_ok", "tests", "seconds"]
EXACT_KEYS = ["dim", "distance", "flag_mismatches", "output_mismatches"]
TEST_KEYS = ["name", "statistic", "pvalue", "adjusted_pvalue", "rejected", "method", "n"]


def _no_reflection(mean_p, mean_q, sigma, z, u):
    """Keeps the draft on rejection: the flags are right, the rejected outputs are not."""
    _, accepted = reference_coupling(mean_p, mean_q, sigma, z, u)
    return mean_q + np.asarray(sigma)[:, None] * z, accepted


def _seeded(mean_p, mean_q, sigma, seed):
    rng = np.random.default_rng(seed)
    return reference_coupling(mean_p, mean_q, sigma, rng.normal(size=mean_p.shape), rng.uniform(size=len(sigma)))


@pytest.fixture(scope="module")
def ok():
    return check_coupling(reference_coupling, n=N, alpha=ALPHA, seed=0)


def test_the_formula_passes_with_the_old_keys(ok):
    assert isinstance(ok, CouplingResult) and ok.verdict == "pass" and ok.exit_code == 0 and ok.exact_ok is True
    d = ok.to_dict()
    assert list(d) == RESULT_KEYS and json.loads(json.dumps(d)) == d
    assert [list(e) for e in d["exact"]] == [EXACT_KEYS] * len(CASES)
    assert all(list(t) == TEST_KEYS for t in d["tests"]) and len(d["tests"]) == len(ok.tests)
    assert [(e["dim"], e["distance"]) for e in d["exact"]] == list(CASES)
    assert d["tests"][0] == ok.tests[0].to_dict()


def test_the_result_is_frozen(ok):
    for record, field in [(ok, "verdict"), (ok.exact[0], "flag_mismatches"), (ok.tests[0], "rejected")]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, None)
    assert isinstance(ok.exact, tuple) and isinstance(ok.tests, tuple)


def test_a_coupling_without_reflection_fails_the_exact_comparison():
    bad = check_coupling(_no_reflection, n=N, alpha=ALPHA, seed=0)
    assert bad.verdict == "fail" and bad.exit_code == 1 and bad.exact_ok is False
    assert all(e.flag_mismatches == 0 for e in bad.exact) and all(e.output_mismatches > 0 for e in bad.exact)


def test_the_seeded_form_has_no_exact_comparison():
    r = check_coupling(_seeded, n=N, alpha=ALPHA, seed=1)
    assert r.form == "seeded" and r.exact == () and r.exact_ok is None and r.verdict == "pass"
    assert r.to_dict()["exact"] == [] and r.to_dict()["exact_ok"] is None


def test_markdown_kernel_reads_the_record(ok):
    page = markdown_kernel(ok, "k")
    assert page.startswith("# k: PASS") and f"Holm over {len(ok.tests)} tests" in page
    assert "| 64 | 0.3 | 0 | 0 |" in page
    worst = min(ok.tests, key=lambda t: t.adjusted_pvalue)
    assert page.split("|---|---|---|---|---|\n")[1].startswith(f"| {worst.name} |")
