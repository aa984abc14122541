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
