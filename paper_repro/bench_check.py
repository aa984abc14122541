"""Wall clock of `specverify` commands, this checkout next to an earlier revision, interleaved in one run.

Each repeat runs the command once with this checkout's package and once with the package of ``--before`` (a git
worktree made in a temporary folder, put first on PYTHONPATH; the same interpreter and installed libraries), in
alternating order; printed: the median, min and max seconds of each side and the ratio of the medians.

    python paper_repro/bench_check.py --before d8fd1b5 --repeats 5 -- check --problem gmm --dim 2 --steps 100
    python paper_repro/bench_check.py --repeats 1 -- check --problem images      # this checkout only
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(cmd: list[str], pythonpath: str | None) -> float:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    t = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "specverify.cli", *cmd], env=env, cwd=tempfile.gettempdir(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seconds = time.perf_counter() - t
    if r.returncode not in (0, 1):
        raise SystemExit(f"`specverify {' '.join(cmd)}` exited {r.returncode}:\n{r.stdout[-2000:]}")
    return seconds


def _summary(xs: list[float]) -> str:
    return f"median {statistics.median(xs):.2f} s (min {min(xs):.2f}, max {max(xs):.2f}, {len(xs)} runs)"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", help="a git revision to time next to this checkout")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("command", nargs=argparse.REMAINDER, help="-- then the specverify command line")
    args = ap.parse_args(argv)
    cmd = args.command[1:] if args.command[:1] == ["--"] else args.command
    times: dict[str, list[float]] = {"after": [], "before": []}
    with tempfile.TemporaryDirectory() as tmp:
        before = None
        if args.before:
            before = str(Path(tmp) / "before")
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-f", before, args.before],
                           check=True, capture_output=True)
        try:
            for i in range(args.repeats):
                sides = ["after", "before"] if i % 2 == 0 else ["before", "after"]
                for side in sides:
                    if side == "before" and before is None:
                        continue
                    times[side].append(_run(cmd, before if side == "before" else str(ROOT)))
                    print(f"  repeat {i}: {side} {times[side][-1]:.2f} s", flush=True)
        finally:
            if before is not None:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", before], capture_output=True)
    print(f"specverify {' '.join(cmd)}")
    print(f"  this checkout: {_summary(times['after'])}")
    if times["before"]:
        print(f"  {args.before}: {_summary(times['before'])}")
        print(f"  ratio before / after (medians): {statistics.median(times['before']) / statistics.median(times['after']):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
