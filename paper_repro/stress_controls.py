"""Which rejection-path bugs the default check catches and which only `check --stress` (measured).

Each chain-level control of ``paper_repro/controls.py`` (written against the third-party view only) is checked
at the default problem (gmm d=2, 100 steps, default n from alpha, beta, epsilon) at alpha, and as
``specverify check --stress`` does: each stress configuration at alpha / 6 (the exact-law Langevin one first,
stopping at the first rejection, which already fails --stress), then the problem at alpha / 2 if none rejected.

    python paper_repro/stress_controls.py [--alpha 0.01] [--seed 0] [--only correct,reused-noise] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from controls import CONTROLS  # noqa: E402

from specverify import bridge  # noqa: E402
from specverify.cli.check_stress import rejected_steps, run_stress  # noqa: E402
from specverify.harness.adapters import chain_candidate  # noqa: E402
from specverify.bridge.stress_configs import STRESS, stress_split  # noqa: E402


def row(name, sampler, alpha, seed, n=None):
    setup = bridge.make_setup("gmm", dim=2, steps=100)
    cand = chain_candidate(sampler, setup.view())
    default = bridge.check(setup, cand, plan=bridge.Plan(alpha, n=n, seed=seed))
    split = stress_split(alpha)
    main_alpha, each = split["main"], split[STRESS[0].name]
    stressed = []  # cheapest first (the exact-law Langevin check); stop at the first rejection: --stress fails then
    for c in sorted(STRESS, key=lambda c: c.problem != "langevin-gaussian"):
        stressed += run_stress(lambda s: chain_candidate(sampler, s.view()), bridge.Plan(each, n=n, seed=seed),
                               configs=[c])
        if stressed[-1][1].verdict == "fail":
            break
    main = None if stressed[-1][1].verdict == "fail" else bridge.check(setup, cand,
                                                                      plan=bridge.Plan(main_alpha, n=n, seed=seed))
    caught = [c.name for c, r in stressed if r.verdict == "fail"] + (["gmm (alpha/2)"] if main and main.verdict == "fail" else [])
    return {"control": name, "default": default.verdict, "default_caught_by": list(default.caught_by),
            "default_rejected_steps": rejected_steps(default), "stress": "fail" if caught else "pass",
            "stress_caught_on": caught,
            "stress_min_p": {c.name: min(t.adjusted_pvalue for t in r.tests) for c, r in stressed},
            "stress_rejected_steps": {c.name: rejected_steps(r) for c, r in stressed}}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n", type=int, default=None, help="samples per check (default: sized from alpha)")
    p.add_argument("--only", default="", help="comma-separated control names (default: all)")
    p.add_argument("--json", type=Path)
    a = p.parse_args(argv)
    names = [x for x in a.only.split(",") if x] or list(CONTROLS)
    print(f"| control | default check (alpha {a.alpha}) | caught by | check --stress | caught on | seconds |")
    print("|---|---|---|---|---|---|")
    rows = []
    for name in names:
        t0 = time.perf_counter()
        r = row(name, CONTROLS[name], a.alpha, a.seed, a.n)
        r["seconds"] = time.perf_counter() - t0
        rows.append(r)
        print(f"| {name} | {r['default']} | {', '.join(r['default_caught_by']) or '-'} | {r['stress']} | "
              f"{', '.join(r['stress_caught_on']) or '-'} | {r['seconds']:.0f} |", flush=True)
    if a.json:
        a.json.write_text(json.dumps({"alpha": a.alpha, "seed": a.seed, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
