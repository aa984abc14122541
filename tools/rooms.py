"""Modules and lines per room of the package at two git revisions, as a Markdown table.

    python tools/rooms.py REV_BEFORE [REV_AFTER]    # REV_AFTER defaults to HEAD

The rooms are those of ``tests/test_layering.py``: the shared plain modules, the sampler (``sampler/``), the
judge (``harness/``), the door (``bridge``) and the faces (``cli`` and the modules on top of both halves).
"""

from __future__ import annotations

import argparse
import subprocess

ROOMS = ("shared", "sampler/", "harness/", "bridge (door)", "faces")
FACES = ("pytest_plugin.py", "testing.py", "strategies.py", "study.py", "calibration.py", "benchmarks.py", "cli.py")


def room(rel: str) -> str:
    """The room of a module path relative to ``specverify/``."""
    for prefix, name in (("sampler/", "sampler/"), ("harness/", "harness/"), ("bridge", "bridge (door)"),
                         ("cli/", "faces")):
        if rel.startswith(prefix):
            return name
    return "faces" if rel in FACES else "shared"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], capture_output=True, text=True, check=True).stdout


def tally(rev: str) -> dict[str, tuple[int, int]]:
    """room -> (modules, lines) of ``specverify/`` at ``rev``."""
    out = {r: (0, 0) for r in ROOMS}
    for path in _git("ls-tree", "-r", "--name-only", rev, "specverify").split():
        if path.endswith(".py"):
            r = room(path.removeprefix("specverify/"))
            modules, lines = out[r]
            out[r] = (modules + 1, lines + _git("show", f"{rev}:{path}").count("\n"))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after", nargs="?", default="HEAD")
    args = parser.parse_args(argv)
    a, b = tally(args.before), tally(args.after)
    print(f"| room | modules at {args.before} | lines | modules at {args.after} | lines |\n|---|---|---|---|---|")
    for r in ROOMS:
        print(f"| {r} | {a[r][0]} | {a[r][1]} | {b[r][0]} | {b[r][1]} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
