"""Sharded `specverify check` on Ray: wall time with 1 and 2 workers, and the same report and pooled samples for
1 worker, 2 workers, and a run whose driver is SIGKILLed after some shards and then resumed.

    python paper_repro/shard_runs.py [--smoke] [--json shard_runs.json]

Each run is the command line (a subprocess, Ray started by it: its start-up is in the wall time; "in the suite"
is the report's own "seconds", from the first candidate call to the verdict). The interrupted run is killed with
its whole process group (the driver and the Ray instance it started) once 2 shards are stored. The report hash
is SHA-256 of the JSON report minus "seconds"; the samples hash is SHA-256 of the pooled samples, read back from
the run directory's shard files in shard order (exactly what the suite tested).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FULL = ["--problem", "gaussian", "--dim", "8", "--steps", "200", "--drafter", "frozen-drift", "--window", "8",
        "--n", "4000", "--shards", "8"]
SMOKE = ["--problem", "gaussian", "--dim", "2", "--steps", "10", "--drafter", "frozen-drift", "--window", "4",
         "--n", "400", "--shards", "4"]


def _cli(args):
    return subprocess.Popen([sys.executable, "-m", "specverify.cli", "check", *args, "--allow-low-power"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _hashes(report: Path, run_dir: Path) -> dict:
    data = json.loads(report.read_text())
    data.pop("seconds")
    main = max((p for p in run_dir.iterdir() if p.is_dir()), key=lambda p: int(p.name.split("-n")[1].split("-")[0]))
    x = np.concatenate([np.load(f)["samples"] for f in sorted(main.glob("shard-*.npz"))])
    return {"verdict": data["verdict"], "report_sha256": hashlib.sha256(json.dumps(data, sort_keys=True).encode())
            .hexdigest()[:16], "samples_sha256": hashlib.sha256(x.tobytes()).hexdigest()[:16], "n": len(x)}


def timed(args, workers: int, out: Path) -> dict:
    t0 = time.perf_counter()
    p = _cli([*args, "--workers", str(workers), "--run-dir", str(out / "run"), "--json", str(out / "r.json")])
    _, err = p.communicate()
    if p.returncode not in (0, 1):
        raise SystemExit(err)
    return {"workers": workers, "wall_seconds": round(time.perf_counter() - t0, 1),
            "check_seconds": round(json.loads((out / "r.json").read_text())["seconds"], 1),
            **_hashes(out / "r.json", out / "run")}


def interrupted(args, out: Path, after: int) -> dict:
    """Workers 1, SIGKILL the driver once ``after`` shards are stored, resume with 2 workers."""
    run_dir, shards = out / "run", None
    p = _cli([*args, "--workers", "1", "--run-dir", str(run_dir)])
    while p.poll() is None:
        calls = [c for c in run_dir.glob("candidate-n*") if not c.name.startswith("candidate-n8-")]
        shards = len(list(calls[0].glob("shard-*.npz"))) if calls else 0
        if shards >= after:
            break
        time.sleep(0.05)
    os.killpg(p.pid, signal.SIGKILL)  # the driver and the Ray instance it started
    p.wait()
    return {**timed([*args, "--resume"], 2, out), "workers": "1, killed, resumed on 2", "killed_after_shards": shards}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--json", type=Path)
    a = ap.parse_args(argv)
    args, load = SMOKE if a.smoke else FULL, os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for w in (1, 2):
            (Path(tmp) / f"w{w}").mkdir()
            rows.append(timed(args, w, Path(tmp) / f"w{w}"))
        (Path(tmp) / "kill").mkdir()
        rows.append(interrupted(args, Path(tmp) / "kill", after=2))
    print("specverify check " + " ".join(args) + " --allow-low-power --workers W --run-dir DIR")
    print(f"  load average before: {load:.1f} ({os.cpu_count()} CPUs seen)")
    for r in rows:
        print(f"  workers {r['workers']!s:<24} wall {r['wall_seconds']:>6.1f} s (in the suite "
              f"{r['check_seconds']:>5.1f} s)  verdict {r['verdict']}  "
              f"report {r['report_sha256']}  samples {r['samples_sha256']} (n={r['n']})"
              + (f"  [killed after {r['killed_after_shards']} shards]" if "killed_after_shards" in r else ""))
    if a.json:
        a.json.write_text(json.dumps({"command": args, "load_average": load, "rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
