"""Power of the transition-level check against the terminal battery on the chain-level controls (measured).

Each control of ``paper_repro/controls.py`` is checked on gaussian (d = 16, 50 steps) and gmm (d = 2, 100 steps)
by the innovation check (``bridge.check`` on its trajectories, the default) and by the terminal battery
(``terminal=True``: its samples against the problem's reference) at the SAME n: the innovation check's default n
for that problem at ``--alpha`` (and each n of ``--n``), one seed. ``--min-n``: per control, the innovation check
at n = 128, 256, 512, ... until it rejects (one seed per n; an upper bound on the smallest n, not a power curve),
next to the terminal battery at its own default n.

    OMP_NUM_THREADS=1 python paper_repro/innovation_power.py [--alpha 1e-3] [--seed 0] [--n 4000,...]
        [--problems gaussian,gmm] [--only correct,...] [--terminal-n] [--min-n] [--max-n 16384]
        [--md theory/innovation_power.md] [--json theory/innovation_power.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controls import CONTROLS, EXACT  # noqa: E402

from specverify import bridge  # noqa: E402
from specverify.harness.adapters import chain_candidate  # noqa: E402
from specverify.harness.trajectory_check import transition_plan  # noqa: E402

PROBLEMS = {"gaussian": dict(dim=16, steps=50), "gmm": dict(dim=2, steps=100)}


def default_n(setup, alpha: float) -> int:
    """The innovation check's default n on ``setup`` at ``alpha`` (with acceptance counts, lags 9)."""
    led = transition_plan(bridge.make_target(setup), alpha=alpha, beta=0.05, delta=0.02, lags=9, counts=True)
    return led["n_needed"]


def one(setup, sampler, *, terminal: bool, alpha: float, n, seed: int) -> dict:
    cand = chain_candidate(sampler, setup.view())
    t0 = time.perf_counter()
    r = bridge.check(setup, cand, plan=bridge.Plan(alpha, n=n, seed=seed),
                     paths=bridge.TrajectoryOptions(terminal=terminal))
    return {"verdict": r.verdict, "caught_by": list(r.caught_by), "n": r.n,
            "min_adjusted_p": min(t.adjusted_pvalue for t in r.tests),
            "rejected_tests": [t.name for t in r.tests if t.rejected], "seconds": time.perf_counter() - t0}


def smallest_n(setup, sampler, alpha, seed, max_n) -> dict:
    """The innovation check at n = 128, 256, ... until it rejects (or n > max_n)."""
    tried, n = [], 128  # the acceptance block needs n >= 100
    while n <= max_n:
        r = one(setup, sampler, terminal=False, alpha=alpha, n=n, seed=seed)
        tried.append({"n": n, "verdict": r["verdict"], "min_adjusted_p": r["min_adjusted_p"]})
        if r["verdict"] == "fail":
            return {"detected_at": n, "tried": tried}
        n *= 2
    return {"detected_at": None, "tried": tried}


def _cell(r: dict) -> str:
    by = f" ({', '.join(r['caught_by'])})" if r["caught_by"] else ""
    return f"{r['verdict']}{by}, p {r['min_adjusted_p']:.2g}, {r['seconds']:.0f} s"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--alpha", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", default="", help="comma-separated extra n (default: only the innovation default)")
    p.add_argument("--problems", default="gaussian,gmm")
    p.add_argument("--only", default="", help="comma-separated control names (default: all)")
    p.add_argument("--terminal-n", action="store_true", help="also at the terminal battery's default n")
    p.add_argument("--min-n", action="store_true", help="also the doubling grid for the smallest detecting n")
    p.add_argument("--max-n", type=int, default=16384)
    p.add_argument("--md", type=Path)
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    names = [x for x in a.only.split(",") if x] or list(CONTROLS)
    out = {"alpha": a.alpha, "seed": a.seed, "command": _command(argv), "rows": [], "min_n": []}
    for problem in [x for x in a.problems.split(",") if x]:
        setup = bridge.make_setup(problem, **PROBLEMS[problem])
        ns = [default_n(setup, a.alpha)] + [int(x) for x in a.n.split(",") if x] + ([None] if a.terminal_n else [])
        for n in ns:
            print(f"\n{problem} d={setup.dim} {setup.steps} steps, n={n or 'the terminal default'}, "
                  f"alpha={a.alpha}, seed={a.seed}")
            print("| control | exact | innovations | terminal |\n|---|---|---|---|")
            for name in names:
                out["rows"].append(_row(setup, problem, name, n, a))
                r = out["rows"][-1]
                print(f"| {name} | {r['exact']} | {_cell(r['innovations'])} | {_cell(r['terminal'])} |", flush=True)
            _write(out, a)
    if a.min_n:
        _min_n_table(names, a, out)
    _write(out, a)


def _row(setup, problem, name, n, a) -> dict:
    """Both checks at n (None: the terminal battery at its default n, then the innovation check at that n)."""
    term = one(setup, CONTROLS[name], terminal=True, alpha=a.alpha, n=n, seed=a.seed)
    inn = one(setup, CONTROLS[name], terminal=False, alpha=a.alpha, n=term["n"], seed=a.seed)
    return {"problem": problem, "dim": setup.dim, "steps": setup.steps, "n": term["n"], "n_from": (
        "terminal default" if n is None else "given"), "control": name, "exact": name in EXACT,
        "innovations": inn, "terminal": term}


def _write(out, a):
    """The JSON and the page so far (rewritten after every table: a cut-short run keeps what it measured)."""
    if a.json:
        a.json.write_text(json.dumps(out, indent=2) + "\n")
    if a.md:
        a.md.write_text(page(out))


def _min_n_table(names, a, out):
    for problem in [x for x in a.problems.split(",") if x]:
        setup = bridge.make_setup(problem, **PROBLEMS[problem])
        print(f"\nsmallest detecting n, {problem} (innovations: doubling grid; terminal: its default n)")
        for name in names:
            grid = smallest_n(setup, CONTROLS[name], a.alpha, a.seed, a.max_n)
            known = [r["terminal"] for r in out["rows"] if (r["problem"], r["control"], r["n_from"]) == (
                problem, name, "terminal default")]
            term = known[0] if known else one(setup, CONTROLS[name], terminal=True, alpha=a.alpha, n=None,
                                              seed=a.seed)
            out["min_n"].append({"problem": problem, "control": name, "exact": name in EXACT, "innovations": grid,
                                 "terminal_default": term})
            print(f"  {name}: innovations detect at n={grid['detected_at']}; terminal at n={term['n']}: "
                  f"{_cell(term)}", flush=True)
            _write(out, a)


def page(out: dict) -> str:
    """The markdown page of a run (every number from ``out``, i.e. measured by ``out["command"]``)."""
    lines = ["# The innovation check against the terminal battery on the chain-level controls", "",
             f"    {out['command']}", "",
             "Every number on this page is measured by the command above (one run, CPU, float64), "
             f"alpha = {out['alpha']:g}, one seed ({out['seed']}). The controls are `paper_repro/controls.py` "
             "(third-party view only, frozen-drift drafter, window 4; see its docstring for each planted bug). "
             "Innovations: `bridge.check` on the trajectories (transition-level check); terminal: "
             "`bridge.check(..., paths=TrajectoryOptions(terminal=True))`, the terminal battery on the samples "
             "against the problem's reference. Both run at the same n. A cell: verdict (blocks that rejected), the "
             "smallest Holm/Bonferroni-adjusted p-value, seconds. One seed per cell: a detection, not a power "
             "estimate.", ""]
    keys = sorted({(r["problem"], r["dim"], r["steps"], r["n"]) for r in out["rows"]},
                  key=lambda t: (t[0] != "gaussian", t[3]))
    for problem, dim, steps, n in keys:
        rows = [r for r in out["rows"] if (r["problem"], r["n"]) == (problem, n)]
        caught = {lab: sum(r[lab]["verdict"] == "fail" for r in rows if not r["exact"])
                  for lab in ("innovations", "terminal")}
        bugs = sum(not r["exact"] for r in rows)
        lines += [f"## {problem}, d = {dim}, {steps} steps, n = {n}", "",
                  f"Bugs caught: innovations {caught['innovations']} / {bugs}, terminal {caught['terminal']} / "
                  f"{bugs}.", "", "| control | exact | innovations | terminal |", "|---|---|---|---|"]
        lines += [f"| {r['control']} | {'yes' if r['exact'] else 'no'} | {_cell(r['innovations'])} | "
                  f"{_cell(r['terminal'])} |" for r in rows]
        lines.append("")
    if out["min_n"]:
        lines += ["## Smallest detecting n", "",
                  "Innovations: n = 128, 256, 512, ... until the check rejects at alpha (one seed per n, so an "
                  "upper bound from one path through the grid, not a power curve); terminal: the battery at its "
                  "own default n, once.", "",
                  "| problem | control | innovations: first n that rejects | terminal at its default n |",
                  "|---|---|---|---|"]
        for r in out["min_n"]:
            g = r["innovations"]
            first = g["detected_at"] or f"none up to {g['tried'][-1]['n']}"
            t = r["terminal_default"]
            lines.append(f"| {r['problem']} | {r['control']} | {first} | n = {t['n']}: {_cell(t)} |")
        lines.append("")
    return "\n".join(lines)


def _command(argv) -> str:
    return "OMP_NUM_THREADS=1 python paper_repro/innovation_power.py " + " ".join(
        sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
