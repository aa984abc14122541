"""The report type: frozen records, the JSON of `specverify check` (today's keys), Markdown and the figures."""

import dataclasses
import json
import re

import numpy as np
import pytest

from specverify.errors import UsageError
from specverify.harness import AcceptanceSummary, AdjustedTest, Report, check_against_law, check_against_sampler
from specverify.harness import report as R
from specverify.harness.plan import Plan

LAW = (np.array([1.0, -0.5]), np.array([0.5, 2.0]), np.array([[0.6, 0.8], [-0.8, 0.6]]))
REPORT_KEYS = ["verdict", "alpha", "beta", "epsilon", "n", "min_detectable_ks", "reference", "seed", "correction",
               "tests", "acceptance", "seconds", "warnings", "permutations", "rejection_path", "ledger", "caught_by"]
TEST_KEYS = ["name", "family", "statistic", "pvalue", "adjusted_pvalue", "rejected", "bh_qvalue", "method", "n"]
ACCEPTANCE_KEYS = ["trajectories", "accepted", "predicted_accepted", "verified", "acceptance_rate",
                   "predicted_acceptance_rate", "confidence", "ci_low", "ci_high", "per_position"]
POSITION_KEYS = ["position", "accepted", "verified", "rate", "predicted", "ci_low", "ci_high"]


def _gauss(n, seed):
    mean, lam, q = LAW
    return mean + (np.random.default_rng(seed).normal(size=(n, 2)) * np.sqrt(lam)) @ q.T


def _with_acceptance(n, seed):
    rng = np.random.default_rng(seed + 77)
    return {"samples": _gauss(n, seed), "accepted": rng.binomial(4, 0.8, size=n), "predicted": np.full(n, 3.2),
            "verified": np.full(n, 4), "accepted_per_position": [n, n // 2], "verified_per_position": [n + 5, n],
            "predicted_per_position": [0.9 * n, 0.4 * n]}


@pytest.fixture(scope="module")
def report():
    return check_against_law(_with_acceptance, *LAW, Plan(n=500, seed=3, keep_samples=True))


def test_to_dict_has_exactly_the_documented_keys_and_is_json(report):
    d = report.to_dict()
    assert list(d) == REPORT_KEYS
    assert all(list(t) == TEST_KEYS for t in d["tests"])
    assert list(d["acceptance"]) == ACCEPTANCE_KEYS and len(d["acceptance"]["per_position"]) == 2
    assert all(list(p) == POSITION_KEYS for p in d["acceptance"]["per_position"])
    assert json.loads(json.dumps(d)) == d  # plain JSON values: lists, not tuples; no records left inside
    assert isinstance(d["tests"], list) and isinstance(d["warnings"], list)


def test_to_dict_values_are_the_record_fields(report):
    d = report.to_dict()
    for t, row in zip(report.tests, d["tests"], strict=True):
        assert row == {k: getattr(t, k) for k in TEST_KEYS}
    assert d["acceptance"] == report.acceptance.to_dict()
    assert AcceptanceSummary.from_dict(d["acceptance"]) == report.acceptance  # the summary round-trips
    plain = [k for k in REPORT_KEYS if k not in ("tests", "acceptance", "warnings", "caught_by", "ledger")]
    assert {k: d[k] for k in plain} == {k: getattr(report, k) for k in plain}
    assert d["ledger"] == report.ledger.to_dict() == dict(report.ledger)
    assert d["caught_by"] == list(report.caught_by)


def test_records_are_frozen(report):
    for record, field in [(report, "verdict"), (report.tests[0], "adjusted_pvalue"), (report.acceptance, "accepted"),
                          (report.acceptance.per_position[0], "rate")]:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(record, field, None)
    assert isinstance(report.tests, tuple) and isinstance(report.warnings, tuple)
    assert isinstance(report.acceptance.per_position, tuple)


def _coord_in_name(name):
    m = re.fullmatch(r"ks\[coord (\d+)\]", name)
    return int(m.group(1)) if m else None


def test_coord_is_set_for_the_coordinate_tests_only(report):
    # coordinates, |w|^2, the three independence tests, acceptance
    assert [t.coord for t in report.tests] == [0, 1, None, None, None, None, None]
    assert [_coord_in_name(t.name) for t in report.tests] == [t.coord for t in report.tests]


def test_coord_of_a_two_sample_subset_matches_the_tested_coordinate():
    d = 70  # above MAX_COORDS = 64: a seeded subset of the coordinates is tested

    def normal(n, seed):
        return np.random.default_rng(seed).normal(size=(n, d))

    r = check_against_sampler(normal, normal, d, Plan(n=200, seed=5, n_perm=199))
    coords = [t.coord for t in r.tests if t.coord is not None]
    assert len(coords) == 64 and len(set(coords)) == 64 and sorted(coords) == coords and max(coords) < d
    assert coords != list(range(64))  # a subset, not the first 64
    assert [_coord_in_name(t.name) for t in r.tests] == [t.coord for t in r.tests]


def _fake(pvalues_by_coord, *, name="t"):
    """A Report whose tests' names say nothing of their coordinates: only ``coord`` does."""
    tests = tuple(AdjustedTest(name=f"{name}{i}", family="distribution", statistic=0.0, pvalue=p, adjusted_pvalue=p,
                               rejected=False, bh_qvalue=p, method="m", n=200, coord=coord)
                  for i, (coord, p) in enumerate(pvalues_by_coord))
    x = np.random.default_rng(0).normal(size=(200, 6))
    return Report("pass", 0.01, 0.05, 0.05, 200, 0.1, "sampler", 0, "holm", tests, None, 0.0, (),
                  data={"x": x, "y": x[::-1]})


def test_worst_coordinates_come_from_the_coord_fields():
    r = _fake([(0, 0.9), (3, 0.01), (None, 0.0001), (5, 0.2), (3, 0.02), (1, 0.05), (2, 0.5), (4, 0.6)])
    assert R._worst_coords(r.tests) == [3, 1, 5, 2]  # by p-value, each coordinate once, coord None skipped
    assert R._worst_coords(_fake([(None, 0.1)]).tests) == []


def test_plots_draw_the_worst_coordinates(tmp_path, monkeypatch):
    drawn = []
    real = R._qq_figure

    def spy(x, y, coords, exact, path):
        drawn.append(list(coords))
        return real(x, y, coords, exact, path)

    monkeypatch.setattr(R, "_qq_figure", spy)
    paths = R.plots(_fake([(2, 0.3), (5, 0.001), (None, 0.0)], name="ks[coord 0] "), tmp_path)
    assert drawn == [[5, 2]] and [p.name for p in paths] == ["qq_worst_coordinates.png", "squared_norm.png"]
    assert all(p.stat().st_size > 0 for p in paths)
    drawn.clear()
    R.plots(_fake([(None, 0.5)]), tmp_path)  # no coordinate tests: the first four coordinates
    assert drawn == [[0, 1, 2, 3]]


def test_plots_with_acceptance(report, tmp_path):
    names = [p.name for p in R.plots(report, tmp_path)]
    assert names == ["qq_worst_coordinates.png", "squared_norm.png", "acceptance_per_position.png"]
    with pytest.raises(UsageError, match="keep_samples=True"):
        R.plots(dataclasses.replace(report, data=None), tmp_path)


def test_markdown_reads_the_records(report):
    page = R.markdown(report, "t")
    assert page.startswith(f"# t: {report.verdict.upper()}")
    worst = min(report.tests, key=lambda t: (t.adjusted_pvalue, t.pvalue))
    first_row = page.split("|---|---|---|---|---|---|---|\n")[1].splitlines()[0]
    assert first_row.startswith(f"| {worst.name} | {worst.family} |")
    assert "| position | verified |" in page and R.acceptance_line(report.acceptance) in page
    with pytest.raises(UsageError, match="pass the Report"):
        R.markdown(report.to_dict())


def test_markdown_of_a_check_that_stopped():
    page = R.markdown({"problem": "gmm", "verdict": "error", "error": "no such file"})
    assert page.startswith("# specverify check: ERROR") and "no such file" in page and "problem=gmm" in page
