"""The stress family and `check --stress`: the view's initial law, the alpha split, the CLI's contract, and the
chain-level controls of paper_repro/controls.py (written against the third-party view only)."""

import importlib.util
import json
from pathlib import Path

import pytest
import torch

from specverify import bridge
from specverify.cli import main
from specverify.harness.adapters import chain_candidate
from specverify.bridge.stress_configs import STRESS, stress_split

ROOT = Path(__file__).resolve().parents[1]
CONTROLS_PY = ROOT / "paper_repro" / "controls.py"
ALPHA = 0.01  # the declared false-alarm rate of every verdict below


def _controls():
    spec = importlib.util.spec_from_file_location("stress_controls_under_test", CONTROLS_PY)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _plain(view, n, seed, *, use_prior=True):
    """A plain chain-level sampler on the view, started from the view's initial law (or from N(0, I))."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn((n, *view.shape), generator=g, dtype=torch.float64)
    if use_prior:
        x = view.prior_mean + view.prior_std * x
    for k in range(view.n_steps):
        x = view.mean(x, torch.full((n,), k)) + float(view.sigma[k]) * torch.randn(x.shape, generator=g,
                                                                                      dtype=torch.float64)
    return x.numpy()


def test_the_view_carries_the_chains_initial_law():
    setup = bridge.make_setup("langevin-model", dim=3, steps=5, options={"prior_scale": 2.0})
    view, chain = setup.view(), setup.chain()
    assert (view.prior_mean, view.prior_std) == (chain.prior_mean, chain.prior_std) == (0.0, 2.0)
    gmm = bridge.make_setup("gmm", dim=2, steps=10).view()
    assert (gmm.prior_mean, gmm.prior_std) == (0.0, 1.0)


@pytest.mark.slow  # 17 s on 2 shared cores
def test_a_sampler_that_starts_from_the_views_prior_passes_and_one_that_ignores_it_fails():
    # langevin-model with prior_scale 2 and 3 steps: x_0 ~ N(0, 4 I); starting from N(0, I) is a wrong law
    setup = bridge.make_setup("langevin-model", dim=3, steps=3, options={"prior_scale": 2.0})
    view = setup.view()
    right = bridge.check(setup, lambda n, s: _plain(view, n, s), plan=bridge.Plan(ALPHA, n=3000))
    wrong = bridge.check(setup, lambda n, s: _plain(view, n, s, use_prior=False), plan=bridge.Plan(ALPHA, n=3000))
    assert right.verdict == "pass" and wrong.verdict == "fail"


def test_the_alpha_split_is_bonferroni():
    split = stress_split(0.01)
    main_alpha, each = split["main"], split[STRESS[0].name]
    assert main_alpha == 0.005 and each == pytest.approx(0.005 / len(STRESS))
    assert main_alpha + each * len(STRESS) == pytest.approx(0.01)


def test_the_stress_family_names_built_in_problems_only():
    for c in STRESS:
        setup = bridge.setup_of(c.problem, c.options)
        assert setup.view().n_steps == c.options["steps"]


def test_stress_with_a_black_box_candidate_is_a_usage_error(tmp_path, capsys):
    f = tmp_path / "box.py"
    f.write_text("import numpy as np\n\ndef box(n, seed):\n    return np.random.default_rng(seed).normal(size=(n, 2))\n")
    js = tmp_path / "r.json"
    assert main(["check", "--candidate", f"{f}:box", "--stress", "--json", str(js)]) == 2
    err = capsys.readouterr().err
    assert "--stress needs a chain-level candidate" in err and "Traceback" not in err
    assert json.loads(js.read_text())["verdict"] == "error"


@pytest.mark.slow  # 25 s on 2 shared cores
def test_stress_runs_every_configuration_and_writes_each_report(tmp_path, capsys):
    js = tmp_path / "r.json"
    rc = main(["check", "--candidate", f"{CONTROLS_PY}:correct", "--stress", "--n", "2000", "--allow-low-power",
               "--json", str(js)])
    out = json.loads(js.read_text())
    assert rc == 0 and out["verdict"] == "pass"
    assert [s["name"] for s in out["stress"]] == [c.name for c in STRESS]
    assert out["main_alpha"] == out["alpha"] == ALPHA / 2 and out["stress_alpha"] == pytest.approx(ALPHA / 6)
    assert all(s["alpha"] == out["stress_alpha"] and s["rejection_path"]["rejected_steps"] > 0 for s in out["stress"])
    assert out["alpha_split"]["checks"] == {"main": ALPHA / 2, **{c.name: out["stress_alpha"] for c in STRESS}}
    printed = capsys.readouterr().out
    assert "Bonferroni" in printed and all(c.name in printed for c in STRESS)


@pytest.mark.slow
def test_the_correct_control_passes_both_and_a_rejection_path_bug_needs_the_stress_family():
    # default problem (gmm d=2, 100 steps, default n) at ALPHA; --stress: ALPHA / 2 there, ALPHA / 6 per config
    from specverify.cli.check_stress import run_stress

    controls = _controls()
    setup = bridge.make_setup("gmm", dim=2, steps=100)

    def verdicts(sampler):  # the terminal battery (the controls' final samples)
        cand = chain_candidate(sampler, setup.view())
        default = bridge.check(setup, cand, alpha=ALPHA, paths=bridge.TrajectoryOptions(terminal=True)).verdict
        split = stress_split(ALPHA)
        main_alpha, each = split["main"], split[STRESS[0].name]
        stressed = [bridge.check(setup, cand, alpha=main_alpha, paths=bridge.TrajectoryOptions(terminal=True)).verdict]
        stressed += [r.verdict for _, r in run_stress(lambda s: chain_candidate(sampler, s.view()),
                                                      bridge.Plan(each), terminal=True)]
        return default, "fail" if "fail" in stressed else "pass"

    assert verdicts(controls.correct) == ("pass", "pass")
    assert verdicts(controls.CONTROLS[BUG_ONLY_UNDER_STRESS]) == ("pass", "fail")
    # the transition-level check of the same control's trajectories needs no stress family
    cand = chain_candidate(controls.CONTROLS[BUG_ONLY_UNDER_STRESS], setup.view())
    assert bridge.check(setup, cand, alpha=ALPHA).caught_by[:1] == ("innovations",)


BUG_ONLY_UNDER_STRESS = "reused-noise"  # set from the measured table (paper_repro/stress_controls.py)
