"""The chain-level controls of paper_repro/controls.py return their committed paths, and the transition-level
check judges them: the exact ones pass, clearly broken ones are caught by the innovation or independence block."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from specverify import bridge
from specverify.harness.adapters import chain_candidate

CONTROLS_PY = Path(__file__).resolve().parents[1] / "paper_repro" / "controls.py"
ALPHA = 0.01  # the declared false-alarm rate of every verdict below
N, STEPS = 512, 20


def _controls():
    spec = importlib.util.spec_from_file_location("controls_under_test", CONTROLS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


controls = _controls()


@pytest.fixture(scope="module")
def setup():
    return bridge.make_setup("gmm", dim=2, steps=STEPS)


def test_there_are_enough_controls():
    assert len(controls.BUGS) >= 8 and len(controls.EXACT) >= 2
    assert set(controls.CONTROLS) == set(controls.BUGS) | set(controls.EXACT)


@pytest.mark.parametrize("name", list(controls.CONTROLS))
def test_every_control_returns_its_committed_path(setup, name):
    view = setup.view()
    out = controls.CONTROLS[name](view, 33, 1)
    paths = out["trajectories"]
    assert paths.shape == (33, STEPS + 1, 2) and paths.dtype == np.float64 and np.isfinite(paths).all()
    assert np.array_equal(paths[:, -1], out["samples"])
    assert all(out[k].shape == (33,) for k in ("accepted", "verified", "predicted", "predicted_var"))
    # the last step has sigma = 0: x_T = m(x_{T-1}, T - 1) exactly, on the recorded path
    target = bridge.make_target(setup)
    last = target.mean(paths[:, -2], np.full(33, STEPS - 1))
    assert np.allclose(paths[:, -1], last, rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["correct", "correct-window-8"])
def test_an_exact_control_passes_the_innovation_check(setup, name):
    r = bridge.check(setup, chain_candidate(controls.CONTROLS[name], setup.view()), plan=bridge.Plan(ALPHA, n=N))
    assert r.reference.startswith("innovations") and r.verdict == "pass", r.caught_by


@pytest.mark.parametrize("name, block", [("unreflected-rejection", "innovations"),
                                         ("duplicated-trajectories", "independence")])
def test_a_clearly_broken_control_is_rejected(setup, name, block):
    r = bridge.check(setup, chain_candidate(controls.CONTROLS[name], setup.view()), plan=bridge.Plan(ALPHA, n=N))
    assert r.reference.startswith("innovations") and r.verdict == "fail" and block in r.caught_by
