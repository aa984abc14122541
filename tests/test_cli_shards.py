"""`--shards --workers --run-dir --resume` on check, sample and accept: the same report for any number of workers
and after an interrupted run, a shard that fails for good (exit 2, partial report, finished shards kept), refused
resumes, and the error without Ray. Exact comparisons (hashes of the JSON minus timings and of the samples)."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from specverify.cli import main

ray = pytest.importorskip("ray")

CHECK = ["check", "--problem", "gaussian", "--dim", "2", "--steps", "10", "--drafter", "frozen-drift", "--window",
         "4", "--n", "302", "--allow-low-power", "--seed", "3"]
TIMINGS = ("seconds", "wall_seconds")


@pytest.fixture(scope="module")
def local_ray():
    """One 2-CPU Ray instance for the module (the commands find it running and leave it alone)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def report_hash(path: Path) -> str:
    """The hash of a JSON report minus its timings."""
    data = json.loads(path.read_text())
    for key in TIMINGS:
        data.pop(key, None)
    for row in data.get("rows", []):
        row.pop("seconds", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def candidate_file(tmp_path, body: str) -> str:
    f = tmp_path / "cand.py"
    f.write_text("import time\nimport numpy as np\n\n\ndef cand(n, seed):\n" + body +
                 "    return np.random.default_rng(seed).standard_normal((n, 2))\n")
    return f"{f}:cand"


def test_check_same_report_here_and_on_two_workers(local_ray, tmp_path):
    here, there = tmp_path / "here.json", tmp_path / "there.json"
    assert main([*CHECK, "--shards", "3", "--json", str(here)]) == 0
    assert main([*CHECK, "--shards", "3", "--workers", "2", "--json", str(there)]) == 0
    assert report_hash(here) == report_hash(there)
    assert json.loads(there.read_text())["sharding"]["shards"] == 3


@pytest.mark.slow
def test_check_against_a_sharded_reference_sampler_same_on_two_workers(local_ray, tmp_path):
    """gmm: the JAX reference sampler's calls are sharded too (call 'reference-n...'), with the same report."""
    gmm = ["check", "--problem", "gmm", "--dim", "2", "--steps", "10", "--n", "200", "--allow-low-power",
           "--terminal", "--shards", "2", "--run-dir"]  # the terminal battery: its reference sampler is sharded
    assert main([*gmm, str(tmp_path / "a"), "--json", str(tmp_path / "a.json")]) in (0, 1)
    assert main([*gmm, str(tmp_path / "b"), "--workers", "2", "--json", str(tmp_path / "b.json")]) in (0, 1)
    assert report_hash(tmp_path / "a.json") == report_hash(tmp_path / "b.json")
    assert len(list((tmp_path / "b" / "reference-n200-seed1000003").glob("shard-*.npz"))) == 2


def test_sample_and_accept_same_on_two_workers(local_ray, tmp_path):
    base = ["--problem", "gmm", "--dim", "2", "--steps", "12", "--n", "40", "--shards", "3"]
    for w in ([], ["--workers", "2"]):
        tag = "w" if w else "here"
        assert main(["sample", *base, "--window", "3", *w, "--out", str(tmp_path / f"{tag}.npz"),
                     "--json", str(tmp_path / f"s{tag}.json")]) == 0
        assert main(["accept", *base, "--windows", "2", "--drafters", "frozen-drift", *w,
                     "--json", str(tmp_path / f"a{tag}.json")]) == 0
    assert np.array_equal(np.load(tmp_path / "here.npz")["samples"], np.load(tmp_path / "w.npz")["samples"])
    assert report_hash(tmp_path / "shere.json") == report_hash(tmp_path / "sw.json")
    assert report_hash(tmp_path / "ahere.json") == report_hash(tmp_path / "aw.json")
    assert json.loads((tmp_path / "sw.json").read_text())["n_samples"] == 40


def test_a_shard_that_fails_for_good(local_ray, tmp_path, capsys):
    """Exit 2, a partial report that names the shard and why, and the finished shards kept in the run dir."""
    target = candidate_file(tmp_path, "    if n == 100:\n        raise ValueError('out of memory on this shard')\n")
    report, run_dir = tmp_path / "r.json", tmp_path / "run"
    args = ["check", "--candidate", target, "--problem", "gaussian", "--dim", "2", "--steps", "10", "--n", "302",
            "--allow-low-power", "--shards", "3", "--workers", "2", "--run-dir", str(run_dir), "--json", str(report)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "shard 2 of 3" in err and "out of memory on this shard" in err and "2 finished shards are kept" in err
    out = json.loads(report.read_text())
    assert out["verdict"] == "error" and out["shards"]["failed"]["shard"] == 2
    assert "ValueError: out of memory on this shard" in out["shards"]["failed"]["error"]
    kept = sorted(p.name for p in (run_dir / "candidate-n302-seed0").iterdir())
    assert kept == ["shard-00000.npz", "shard-00001.npz"]


def test_resume_refuses_another_run(tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main([*CHECK, "--shards", "2", "--run-dir", str(run_dir)]) == 0
    assert main([*CHECK, "--shards", "2", "--run-dir", str(run_dir)]) == 2
    assert "already holds a run; pass --resume" in capsys.readouterr().err
    other = [a if a != "302" else "400" for a in CHECK]
    assert main([*other, "--shards", "2", "--run-dir", str(run_dir), "--resume"]) == 2
    assert "different run (n: 302 -> 400)" in capsys.readouterr().err
    assert main([*CHECK, "--shards", "2", "--run-dir", str(run_dir), "--resume"]) == 0


def test_an_edited_candidate_file_is_another_run(tmp_path, capsys):
    target, run_dir = candidate_file(tmp_path, ""), tmp_path / "run"
    args = ["check", "--candidate", target, "--problem", "gaussian", "--dim", "2", "--steps", "10", "--n", "200",
            "--allow-low-power", "--shards", "2", "--run-dir", str(run_dir), "--resume"]
    assert main(args) == 1  # N(0, I) is not the problem's law
    assert "versions" in json.loads((run_dir / "manifest.json").read_text())["signature"]
    candidate_file(tmp_path, "    n = n\n")
    assert main(args) == 2
    assert "different run (candidate: " in capsys.readouterr().err


def test_workers_without_ray_name_the_extra(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray now fails
    assert main([*CHECK, "--shards", "2", "--workers", "2", "--json", str(tmp_path / "r.json")]) == 2
    assert "pip install 'specverify[ray]'" in capsys.readouterr().err
    assert main([*CHECK, "--workers", "2"]) == 2  # and --workers alone also needs --shards


def _cli(*args, env=None):
    return subprocess.Popen([sys.executable, "-m", "specverify.cli", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


@pytest.mark.slow
def test_driver_killed_then_resumed_gives_the_same_report(tmp_path):
    """SIGKILL the driver after 2 of 6 shards (1 worker), resume on 2 workers: the report of an uninterrupted run.
    (The candidate draws N(0, I), not the problem's law: both runs reject, exit 1, with the same report.)"""
    target = candidate_file(tmp_path, "    time.sleep(0.5 if n > 8 else 0)\n")
    run_dir = tmp_path / "run"
    args = ["check", "--candidate", target, "--problem", "gaussian", "--dim", "2", "--steps", "10", "--n", "300",
            "--allow-low-power", "--shards", "6"]
    assert main([*args, "--json", str(tmp_path / "whole.json")]) == 1
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    driver = _cli(*args, "--workers", "1", "--run-dir", str(run_dir), env=env)
    shards = run_dir / "candidate-n300-seed0"
    deadline = time.monotonic() + 120
    while len(list(shards.glob("shard-*.npz"))) < 2 and driver.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    assert driver.returncode == -signal.SIGKILL
    done = len(list(shards.glob("shard-*.npz")))
    assert 2 <= done < 6 and not list(shards.glob(".*.tmp"))
    resumed = _cli(*args, "--workers", "2", "--run-dir", str(run_dir), "--resume", "--json",
                   str(tmp_path / "resumed.json"), env=env)
    _, err = resumed.communicate(timeout=300)
    _kill_group(driver.pid)  # the Ray processes the killed driver had started
    assert resumed.returncode == 1, err
    assert report_hash(tmp_path / "whole.json") == report_hash(tmp_path / "resumed.json")


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
