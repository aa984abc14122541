"""`specverify accept`: the acceptance study's rows, its predictions against measurement, bad input."""

import json

import numpy as np
import pytest

from specverify.cli import main
from specverify.harness.predictions import round_moments

KEYS = {"drafter", "window", "acceptance_rate", "predicted_acceptance_rate", "ci_low", "ci_high", "rounds_mean",
        "predicted_rounds_mean", "nfe_ratio"}


def test_per_position_probabilities_reduce_to_per_step_ones():
    sigma = np.r_[np.full(11, 0.3), 0.0]
    p = np.linspace(0.5, 0.95, 12)
    a = round_moments(p, 4, sigma)
    b = round_moments(np.repeat(p[:, None], 4, axis=1), 4, sigma)
    assert a == b
    with pytest.raises(ValueError, match="one row per chain step"):
        round_moments(np.ones((5, 4)), 4, sigma)


def test_unvisited_cells_borrow_their_position_from_the_nearest_steps():
    from specverify.study import _cell_probs

    ver = np.array([[4, 2, 0], [4, 0, 0], [4, 0, 0], [4, 1, 0]], dtype=float)
    pred = np.array([[3.6, 1.2, 0], [3.2, 0, 0], [2.8, 0, 0], [2.4, 0.3, 0]])
    p = _cell_probs(ver, pred)
    np.testing.assert_allclose(p[:, 0], [0.9, 0.8, 0.7, 0.6])  # visited: the logged ratio
    np.testing.assert_allclose([p[1, 1], p[2, 1]], [1.2 / 2, 0.3 / 1])  # nearest visited steps, same position
    np.testing.assert_allclose(p[:, 2], pred.sum(1) / ver.sum(1))  # a position never visited: the step's mean


def test_accept_writes_rows_with_predictions_inside_the_intervals(tmp_path, capsys):
    js, md, figs = tmp_path / "acc.json", tmp_path / "acc.md", tmp_path / "figs"
    rc = main(["accept", "--problem", "gaussian", "--dim", "2", "--steps", "30", "--drafters",
               "frozen-drift,frozen-denoiser,stress", "--windows", "1,2,8", "--n", "2000", "--json", str(js),
               "--markdown", str(md), "--plots", str(figs)])
    res = json.loads(js.read_text())
    assert rc == 0 and len(res["rows"]) == 18 and KEYS <= res["rows"][0].keys()  # 3 drafters x 3 windows x 2 policies
    assert [r["policy"] for r in res["rows"][:2]] == ["accepted+1", "window-start"]  # side by side
    for r in res["rows"]:
        if r["window"] == 1 and r["policy"] == "window-start":  # a frozen drafter's single draft is the target step
            assert r["drafter"] == "stress" or (r["acceptance_rate"] == 1.0 and r["rounds_mean"] == 30)
        # at 99% each; the stress drafter's acceptance does not depend on the state, so its rounds are exact
        assert r["acceptance_inside"], r
        if r["drafter"] == "stress":
            assert r["rounds_inside"] and r["accepted_inside"], r
        assert r["nfe_ratio"] == pytest.approx(30 / r["rounds_mean"])
    assert "| frozen-drift | 8 | accepted+1 |" in md.read_text() and "| frozen-drift | 8 | window-start |" in md.read_text()
    assert sorted(p.name for p in figs.iterdir()) == ["acceptance_per_position.png", "rounds_measured_vs_predicted.png"]
    assert "acceptance study" in capsys.readouterr().out


@pytest.mark.parametrize("args,msg", [(["--drafters", "nope"], "unknown drafter"), (["--windows", "a"], "integers"),
                                      (["--windows", "0"], ">= 1"), (["--n", "1"], "--n")])
def test_accept_bad_input_exits_2(args, msg, capsys):
    assert main(["accept", "--steps", "10", *args]) == 2
    assert msg in capsys.readouterr().err
