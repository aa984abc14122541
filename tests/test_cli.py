"""The `specverify` command: the contract that users and scripts rely on."""

import json
import subprocess
import sys

import numpy as np
import pytest

from specverify.cli import main

CONTRACT_KEYS = {"n_steps", "rounds_mean", "nfe_ratio", "acceptance_rate", "mean_accepted_length",
                 "target_evaluations", "accepted_per_position", "proposed_per_position"}


def test_sample_writes_samples_and_stats(tmp_path, capsys):
    out, js = tmp_path / "s.npz", tmp_path / "stats.json"
    rc = main(["sample", "--problem", "gmm", "--dim", "2", "--steps", "30", "--sampler", "speculative",
               "--drafter", "frozen-denoiser", "--window", "4", "--n", "200", "--seed", "0",
               "--dtype", "float64", "--out", str(out), "--json", str(js)])
    assert rc == 0
    stats = json.loads(js.read_text())
    assert CONTRACT_KEYS <= stats.keys()
    assert stats["n_steps"] == 30 and len(stats["accepted_per_position"]) == 4
    assert stats["nfe_ratio"] == pytest.approx(30 / stats["rounds_mean"])
    x = np.load(out)["samples"]
    assert x.shape == (200, 2) and x.dtype == np.float64 and np.isfinite(x).all()
    assert "nfe_ratio" in capsys.readouterr().out


def test_sample_is_seeded(tmp_path):
    paths = [tmp_path / f"{i}.npz" for i in range(2)]
    for p in paths:
        assert main(["sample", "--steps", "20", "--n", "50", "--seed", "3", "--out", str(p)]) == 0
    assert np.array_equal(np.load(paths[0])["samples"], np.load(paths[1])["samples"])


@pytest.mark.parametrize("sampler,drafter", [("plain", "oracle"), ("speculative", "independent"),
                                             ("speculative", "frozen-drift")])
def test_sample_variants(tmp_path, sampler, drafter):
    js = tmp_path / "s.json"
    rc = main(["sample", "--steps", "20", "--n", "40", "--sampler", sampler, "--drafter", drafter,
               "--chain", "ddim", "--eta", "0.5", "--json", str(js)])
    assert rc == 0
    assert {"n_steps", "rounds_mean", "nfe_ratio", "target_evaluations"} <= json.loads(js.read_text()).keys()


@pytest.mark.parametrize("args,msg", [
    (["--window", "0"], "window"),
    (["--n", "0"], "--n"),
    (["--drafter", "nope"], "unknown drafter"),
    (["--problem", "nope"], "unknown problem"),
    (["--chain", "ddim", "--eta", "0"], "eta"),
])
def test_bad_input_exits_2_with_a_message(args, msg, capsys):
    assert main(["sample", "--steps", "10", "--n", "5", *args]) == 2
    assert msg in capsys.readouterr().err


def test_listings(capsys):
    assert main(["problems"]) == 0
    assert "gmm" in capsys.readouterr().out
    assert main(["drafters"]) == 0
    out = capsys.readouterr().out
    for name in ("frozen-drift", "frozen-denoiser", "independent", "oracle"):
        assert name in out


def test_console_script_and_light_import():
    r = subprocess.run([sys.executable, "-m", "specverify.cli", "drafters"], capture_output=True, text=True)
    assert r.returncode == 0 and "oracle" in r.stdout
    code = "import sys, specverify; print('torch' in sys.modules, 'jax' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.stdout.split() == ["False", "False"]


def _kills():
    def row(name, description, detected, rejected):
        cfg = {"drafter": "d", "window": 4, "verdict": "fail" if rejected else "pass", "n": 300,
               "min_adjusted_pvalue": 0.001 if rejected else 0.5, "rejected_tests": rejected,
               "permutations": 1700 if rejected else 50, "seconds": 9.4 if rejected else 3.0}
        return {"name": name, "description": description, "configurations": {"default": cfg, "stress": cfg},
                "detected": detected, "min_adjusted_pvalue": cfg["min_adjusted_pvalue"]}

    return {"problem": "gaussian", "dim": 2, "steps": 20, "alpha": 0.01,
            "configurations": {"default": {"drafter": "frozen-denoiser", "window": 8},
                               "stress": {"drafter": "stress", "window": 4}},
            "correct": row("correct", None, False, []),
            "mutants": [row("no-reflection", "rejected steps are not reflected", True, [f"t{i}" for i in range(6)])],
            "kill_rate": 1.0, "reference_false_alarm": False, "seconds": 12.0}


def test_kills_markdown():
    from specverify.cli.mutants import kills_markdown

    page = kills_markdown(_kills(), "mutants --problem gaussian")
    assert "Measured by `specverify mutants --problem gaussian` (12 s)" in page and "alpha / 2 = 0.005" in page
    rows = [line for line in page.splitlines() if line.startswith("| ") and not line.startswith("| sampler")]
    assert rows[0] == "| correct | (none) | no | 0.5 | 300 | - | - | 50 / 50 | 3 / 3 |"
    assert rows[1] == ("| no-reflection | rejected steps are not reflected | yes | 0.001 | 300 | "
                       "t0, t1, t2, t3 and 2 more | t0, t1, t2, t3 and 2 more | 1700 / 1700 | 9 / 9 |")
