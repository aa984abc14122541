"""Calibration of the transition-level check under the null: our exact speculative sampler, many seeds.

Each replicate runs ``specverify.harness.trajectory_check.check_trajectories`` on our speculative sampler's
trajectories (a natural drafter, one seed per replicate) at a fixed n. Holm and Bonferroni adjusted p-values do
not depend on alpha, so one replicate gives the verdict at every alpha: the same replicates are read at alpha =
0.05 and 0.01. With ``--n auto`` each replicate runs at the check's own n instead (sized from --alpha, beta =
0.05 and the problem's delta, as ``specverify check`` sizes it) and is read at --alpha only. Reported, all
measured here: per configuration and alpha the rejection rate with its exact 99% Clopper-Pearson interval; per
test a KS test of its p-values against U(0, 1) (Holm over the tests at 0.01; tests that are conservative by
design, Bonferroni minima, duplicates, exact 0/1 tests, are reported but not KS-tested).

    python paper_repro/calibrate_innovations.py --replicates 1000 --workers 2 \
        --markdown theory/calibration_innovations.md --json theory/calibration_innovations.json
    python paper_repro/calibrate_innovations.py --n auto --alpha 0.01 --configs gmm,gaussian --replicates R \
        --markdown theory/calibration_innovations_sized.md --json theory/calibration_innovations_sized.json
"""

from __future__ import annotations

import argparse
import functools
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

CONFIGS = {  # name: (problem, dim, steps, drafter, window, n trajectories, options)
    "gaussian": ("gaussian", 16, 50, "frozen-drift", 8, 128, None),
    "gmm": ("gmm", 2, 100, "frozen-denoiser", 8, 128, None),
    "langevin-model": ("langevin-model", 31, 100, "frozen-drift", 8, 128, None),
    "digits": ("digits", 64, 100, "frozen-denoiser", 8, 64, None),
    "images": ("images", 192, 100, "frozen-drift", 8, 32, None),
}
ALPHAS = (0.05, 0.01)
CONSERVATIVE = ("worst", "duplicates", "zero-noise", "seed hygiene")


@functools.lru_cache(maxsize=2)
def _built(name: str):
    from specverify.bridge import Ours, make_candidate, make_setup, make_target

    problem, dim, steps, drafter, window, _, options = CONFIGS[name]
    setup = make_setup(problem, dim=dim, steps=steps, options=options)
    return make_candidate(setup, Ours(drafter=drafter, window=window), path=True), make_target(setup), setup.entry.delta


def _replicates(name: str, seeds: list[int], auto: bool = False, alpha: float = 0.01) -> list[dict]:
    """Each seed's check; ``auto``: at the n the check sizes at ``alpha`` (else the configuration's fixed n)."""
    from specverify.harness.plan import Plan
    from specverify.harness.trajectory_check import check_trajectories

    candidate, target, delta = _built(name)
    window, n = CONFIGS[name][4], None if auto else CONFIGS[name][5]
    rows = []
    for s in seeds:
        r = check_trajectories(candidate, target, Plan(alpha, n=n, seed=s), lags=window + 1, delta=delta)
        rows.append({"n": r.n, "min_adjusted": min(t.adjusted_pvalue for t in r.tests),
                     "pvalues": {t.name: t.pvalue for t in r.tests}})
    return rows


def run(name: str, replicates: int, workers: int, auto: bool = False, sized_at: float = 0.01) -> dict:
    """``replicates`` null checks of configuration ``name`` (``auto``: at the n sized at ``sized_at``), read at each
    alpha (``auto``: at ``sized_at`` only)."""
    from scipy import stats

    from specverify.calibration import _single_thread, _uniformity

    t0 = time.perf_counter()
    seeds = list(range(replicates))
    if workers == 1:
        rows = _replicates(name, seeds, auto, sized_at)
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        chunks = [seeds[i::workers * 8] for i in range(workers * 8)]
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_single_thread) as pool:
            k = len(chunks)
            parts = pool.map(_replicates, [name] * k, chunks, [auto] * k, [sized_at] * k)
            rows = [row for part in parts for row in part]
    pvalues = {k: [r["pvalues"][k] for r in rows] for k in rows[0]["pvalues"]}
    conservative = [k for k in pvalues if any(c in k for c in CONSERVATIVE)]
    sizes = sorted({r["n"] for r in rows})
    out = {"config": name, "settings": dict(zip(("problem", "dim", "steps", "drafter", "window"), CONFIGS[name][:5],
                                               strict=True)) | {"n": sizes[0] if len(sizes) == 1 else sizes},
           "n_sized_at": sized_at if auto else None, "replicates": replicates, "seconds": time.perf_counter() - t0,
           "alphas": []}
    for alpha in (sized_at,) if auto else ALPHAS:
        k = int(sum(r["min_adjusted"] <= alpha for r in rows))
        lo, hi = stats.binomtest(k, replicates).proportion_ci(0.99, method="exact")
        out["alphas"].append({"alpha": alpha, "rejections": k, "rate": k / replicates, "ci99_low": float(lo),
                              "ci99_high": float(hi), "inside": bool(lo <= alpha <= hi), "valid": bool(lo <= alpha),
                              "tests": _uniformity(pvalues, alpha, conservative)})
    return out


def _how(results: list[dict]) -> tuple[str, str]:
    """The page's title and how its replicates were run (fixed n, or the check's own n)."""
    sized = results[0].get("n_sized_at")
    if sized is None:
        return ("# Calibration of the transition-level check under the null",
                "a new seed at a fixed n. The same replicates are read at both alphas (adjusted p-values do not depend "
                "on alpha).")
    return ("# Calibration of the transition-level check under the null, at its own sized n",
            f"a new seed at the check's own n: the n that `specverify check` sizes at alpha = {sized} (beta = 0.05, "
            f"the problem's delta), as it runs when --n is left out; read at that alpha.")


def markdown(results: list[dict], command: str) -> str:
    title, how = _how(results)
    out = [title, "",
           "Generated by `paper_repro/calibrate_innovations.py`; every figure below was measured by that run:", "",
           f"    {command}", "", f"Machine: {platform.machine()}, Python {platform.python_version()}.", "",
           "Each replicate checks our speculative sampler's trajectories (float64, a natural drafter, window 8) with "
           f"{how} 'inside': alpha is inside the 99% Clopper-Pearson interval of the rate; 'level held': the "
           "interval's lower end is at most alpha (the false-alarm rate is not shown to exceed alpha; a rate "
           "below alpha is the price of Bonferroni over blocks and of the conservative tests).", "",
           "| configuration | n | replicates | alpha | rejections | rate | 99% CP | inside? | level held? | seconds |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        s = r["settings"]
        for a in r["alphas"]:
            out.append(f"| {r['config']} (d={s['dim']}, {s['steps']} steps, {s['drafter']} L={s['window']}) | "
                       f"{s['n']} | {r['replicates']} | {a['alpha']} | {a['rejections']} | {a['rate']:.4f} | "
                       f"[{a['ci99_low']:.4f}, {a['ci99_high']:.4f}] | {'yes' if a['inside'] else 'no'} | "
                       f"{'yes' if a['valid'] else 'NO'} | {r['seconds']:.0f} |")
    for r in results:
        tests = r["alphas"][0]["tests"]
        bad = [t["name"] for t in tests if t["uniformity_rejected"]]
        ks = [t["ks_uniform_pvalue"] for t in tests if not t.get("conservative")]
        out += ["", f"## {r['config']}: uniformity of the p-values", "",
                f"{len(ks)} tests KS-tested against U(0, 1) (Holm at 0.01): smallest KS p {min(ks):.3g}; "
                f"rejected: {', '.join(bad) or 'none'}. Conservative by design (not KS-tested): "
                f"{sum(bool(t.get('conservative')) for t in tests)} tests.", "",
                "| test | KS p (uniform) | rejected | P(p <= 0.05) | deciles |", "|---|---|---|---|---|"]
        out += [f"| {t['name']} | {t['ks_uniform_pvalue']:.3g} | {'YES' if t['uniformity_rejected'] else 'no'} | "
                f"{t['rate_below_alpha']:.3f} | {' '.join(map(str, t['deciles']))} |" for t in tests]
    return "\n".join(out) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicates", type=int, default=1000)
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--n", choices=("fixed", "auto"), default="fixed",
                    help="fixed: each configuration's n (CONFIGS); auto: the n the check sizes at --alpha")
    ap.add_argument("--alpha", type=float, default=0.01, help="with --n auto: the level n is sized at and read at")
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--render", type=Path, metavar="JSON",
                    help="write --markdown from a finished run's JSON (with --command: the command that measured it)")
    ap.add_argument("--command", help="with --render: the command line of the run")
    args = ap.parse_args(argv)
    unknown = [c for c in args.configs.split(",") if c and c not in CONFIGS]
    if unknown or not 0 < args.alpha < 1 or args.replicates < 1 or args.workers < 1:
        ap.error(f"unknown configurations {unknown} (choose among {', '.join(CONFIGS)})" if unknown else
                 "--alpha must lie in (0, 1), --replicates and --workers must be >= 1")
    if args.render:
        args.markdown.write_text(markdown(json.loads(args.render.read_text()), args.command))
        return 0
    results = []
    for name in [c for c in args.configs.split(",") if c]:
        results.append(run(name, args.replicates, args.workers, args.n == "auto", args.alpha))
        for a in results[-1]["alphas"]:
            print(f"{name}: alpha {a['alpha']}: {a['rejections']}/{args.replicates} = {a['rate']:.4f} "
                  f"[{a['ci99_low']:.4f}, {a['ci99_high']:.4f}] inside={a['inside']} level held={a['valid']} "
                  f"({results[-1]['seconds']:.0f} s)", flush=True)
        if args.json:  # after every configuration: a long run keeps what it measured
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    command = "python paper_repro/calibrate_innovations.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.markdown:
        args.markdown.write_text(markdown(results, command.strip()))
    return 0 if all(a["valid"] for r in results for a in r["alphas"]) else 1


if __name__ == "__main__":
    from specverify.calibration import _single_thread

    np.seterr(all="ignore")
    _single_thread()  # torch and XLA on one thread here too, as in the --workers processes
    sys.exit(main())
