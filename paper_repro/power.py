"""Power of the suite against the mutant catalogue, and false alarms of the correct sampler over seeds.

Two studies, each measured here (nothing typed in), on a built-in problem at the `specverify mutants` settings
(the given drafter and the stress drafter, alpha / 2 each, n from alpha, beta and epsilon unless given):

    python paper_repro/power.py seeds --problem gmm --dim 2 --seeds 20 --json seeds_gmm.json
        the correct sampler at seeds 0..19 (the verdict of each, with the configuration that rejected, if any)
    python paper_repro/power.py min-n --problem gaussian --dim 2 --replicates 20 --markdown theory/power.md
        for each mutant, the smallest n on the grid 100 x 2^k at which at least 95% of --replicates seeds
        detect it (the estimate of "caught with probability 0.95"), with its exact 95% interval
    python paper_repro/power.py min-n --check innovations --configs natural,stress --problem gmm --alpha 0.001 \
            --markdown theory/innovation_min_n.md --json theory/innovation_min_n.json
        the same with one check alone (innovations: on the mutant's trajectories, grid 16 x 2^k; terminal: the
        terminal battery on its samples) at alpha for each configuration (natural: frozen-denoiser, L = 8;
        stress: the stress drafter, L = 4), side by side, next to the check's own default n at that alpha

`compare` puts two finished `min-n --check` runs side by side (terminal battery next to innovation check;
`power_min_n.py`). A third study compares the two permutation engines at one n (the calibration's,
`specverify.calibration`):

    python paper_repro/power.py engines --config two-sample --alpha 0.01 --n 22646 --replicates 6
        every mutant (and the correct sampler) checked at --replicates seeds by `check` on that configuration,
        once with the sequential engine and once with a fixed B (the former default: 999, or the least valid
        B at the battery's alpha if more; --fixed-b sets it), on the very same samples (the second check
        replays the sampler calls of the first); detections with exact 95% intervals, the seeds only one
        engine caught, permutations and check seconds (sampler calls excluded) per engine
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from power_min_n import CHECK_CONFIGS, _bar, _ci95, compare, compare_markdown, min_n, min_n_markdown  # noqa: E402


def _setup(args):
    from specverify.bridge import make_reference, make_setup

    setup = make_setup(args.problem, dim=args.dim, steps=args.steps)
    return setup, make_reference(setup)


def seeds(args) -> dict:
    from specverify.bridge import Ours, Plan, check, make_candidate, mutant_verdict

    setup, ref = _setup(args)
    rows, t0 = [], time.perf_counter()
    for s in _bar(range(args.seeds), "seeds"):
        if args.configs == "both":  # the `specverify mutants` verdict: default and stress drafters, alpha / 2 each
            r = mutant_verdict(setup, ref, Ours(), Plan(args.alpha, n=args.n, seed=s))
            rows.append({"seed": s, "detected": r["detected"], "caught_by": r["caught_by"],
                         "n": r["configurations"]["default"]["n"], "min_adjusted_pvalue": r["min_adjusted_pvalue"]})
        else:  # the `specverify check` verdict at its defaults (frozen-denoiser, L = 8, alpha)
            rep = check(setup, make_candidate(setup), ref, Plan(args.alpha, n=args.n, seed=s))
            rows.append({"seed": s, "detected": rep.verdict == "fail", "caught_by": ["check"] * (rep.verdict == "fail"),
                         "n": rep.n, "min_adjusted_pvalue": min(t.adjusted_pvalue for t in rep.tests)})
        row = rows[-1]
        verdict = "FALSE ALARM" if row["detected"] else "pass"
        print(f"  seed {s:>3}: {verdict}  min adjusted p={row['min_adjusted_pvalue']:.3g}  n={row['n']}", flush=True)
    return {"study": "seeds", "configs": args.configs, "problem": args.problem, "dim": args.dim, "steps": args.steps,
            "alpha": args.alpha,
            "seeds": args.seeds, "passes": sum(not r["detected"] for r in rows), "rows": rows,
            "seconds": time.perf_counter() - t0}


class _Tape:
    """A sampler's calls, recorded by the first check and replayed in the same order by the second, so that both
    engines test the very same samples (the check itself asserts that the sampler is deterministic per seed)."""

    def __init__(self, fn):
        self.fn, self.calls, self.at, self.seconds = fn, [], None, 0.0

    def __call__(self, n, seed):
        if self.at is not None:
            n0, s0, out = self.calls[self.at]
            if (n0, s0) != (n, seed):
                raise RuntimeError(f"replay out of order: call {self.at} was ({n0}, {s0}), now ({n}, {seed})")
            self.at += 1
            return copy.deepcopy(out)
        t = time.perf_counter()
        out = self.fn(n, seed)
        self.seconds += time.perf_counter() - t
        self.calls.append((n, seed, copy.deepcopy(out)))
        return out

    def replay(self):
        self.at = 0


def _paired(setup, candidate, reference, args, seed: int, fixed_b: int, n: int | None, order: int) -> dict:
    """One seed, both engines, the same samples: verdict, permutations and the check's seconds without sampling.
    ``order`` 0 runs the sequential engine first (it records the samples), 1 the fixed B (warm-up costs alternate)."""
    from specverify.bridge import Plan, check

    cand, ref = _Tape(candidate), _Tape(reference)
    out = {}
    for engine, n_perm in [("sequential", None), ("fixed", fixed_b)][:: 1 - 2 * order]:
        rep = check(setup, cand, ("sampler", ref), Plan(args.alpha, n=n, seed=seed, n_perm=n_perm))
        out[engine] = {"rejected": rep.verdict == "fail", "n": rep.n, "permutations": rep.permutations,
                       "seconds": rep.seconds - cand.seconds - ref.seconds,
                       "rejected_tests": [t.name for t in rep.tests if t.rejected]}
        cand.replay(), ref.replay()
        cand.seconds = ref.seconds = 0.0
    return out


def _engine_summary(name: str, rows: list[dict]) -> dict:
    import numpy as np

    row = {"name": name, "replicates": len(rows)}
    for e in ("sequential", "fixed"):
        k = sum(r[e]["rejected"] for r in rows)
        lo, hi = _ci95(k, len(rows))
        perms = [r[e]["permutations"] for r in rows]
        row[e] = {"detected": k, "ci95": [float(lo), float(hi)], "permutations_median": float(np.median(perms)),
                  "permutations_max": int(max(perms)),
                  "seconds_median": float(np.median([r[e]["seconds"] for r in rows]))}
    row["only_sequential"] = sum(r["sequential"]["rejected"] and not r["fixed"]["rejected"] for r in rows)
    row["only_fixed"] = sum(r["fixed"]["rejected"] and not r["sequential"]["rejected"] for r in rows)
    return row


def engines(args) -> dict:
    from specverify.bridge import Ours, make_candidate, make_reference, make_setup
    from specverify.calibration import CONFIGS
    from specverify.harness.stats.omnibus import DEFAULT_PERMUTATIONS
    from specverify.harness.stats.permutation import min_permutations
    from specverify.sampler.mutants import MUTANTS

    problem, dim, _, drafter, window = CONFIGS[args.config]
    drafter, window = args.drafter or drafter, args.window or window
    setup = make_setup(problem, dim=dim, steps=args.steps)
    kind, reference = make_reference(setup)
    if kind != "sampler":
        raise SystemExit(f"error: configuration {args.config} is checked against an exact law: no permutations")
    # the fixed-B engine as `check` ran it before the sequential one: 999, or the least valid B at the battery's
    # share of alpha (distribution, independence, acceptance: alpha / 3) if more
    fixed_b = args.fixed_b or max(DEFAULT_PERMUTATIONS, min_permutations(args.alpha / 3))
    rows, t0, n = [], time.perf_counter(), args.n
    for name in _bar([None, *MUTANTS], "samplers"):
        cand = make_candidate(setup, Ours(drafter=drafter, window=window, mutant=name))
        per_seed = []
        for s in range(args.replicates):  # n: as given, else the sequential engine's sizing (both engines at it)
            per_seed.append(_paired(setup, cand, reference, args, 1000 + s, fixed_b, n, order=s % 2 if n else 0))
            n = per_seed[-1]["sequential"]["n"]
        row = _engine_summary(name or "correct", per_seed)
        rows.append(row | {"seeds": per_seed})
        print(f"  {row['name']:<24} sequential {row['sequential']['detected']}/{args.replicates} "
              f"fixed B={fixed_b} {row['fixed']['detected']}/{args.replicates}  (only sequential "
              f"{row['only_sequential']}, only fixed {row['only_fixed']})", flush=True)
        res = {"study": "engines", "config": args.config, "problem": problem, "dim": dim, "steps": args.steps,
               "drafter": drafter, "window": window, "alpha": args.alpha, "n": n, "fixed_b": fixed_b,
               "fixed_b_is_default": args.fixed_b is None, "command": args.command,
               "replicates": args.replicates, "rows": rows, "seconds": time.perf_counter() - t0}
        if args.json:  # after every sampler, so that a long run stopped early keeps what it measured
            args.json.write_text(json.dumps(res, indent=2) + "\n")
    return res


def _engines_markdown(res: dict, head: list[str]) -> str:
    b, r = res["fixed_b"], res["replicates"]
    why_b = " (the former default of `check`: 999, or the least valid B at the battery's alpha / 3 if more)" \
        if res["fixed_b_is_default"] else " (set by --fixed-b)"
    out = [f"# Power at the calibration's n: sequential permutations next to a fixed B = {b}", "", *head,
           f"The problem of configuration `{res['config']}` of `specverify.calibration`: {res['problem']} "
           f"d={res['dim']}, {res['steps']} steps, drafter {res['drafter']} L={res['window']}, `specverify check` at "
           f"alpha = {res['alpha']}, n = {res['n']}, seeds 1000..{999 + r}. Each seed is checked twice on the very "
           f"same samples (the second check replays the sampler calls of the first): once with the sequential engine "
           f"(the default) and once with the fixed B = {b}{why_b}. "
           f"Detections with exact 95% intervals; 'only' counts the seeds one engine caught and the other did not; "
           f"check seconds exclude the sampler calls; the engine that runs first alternates over the seeds. "
           f"({res['seconds']:.0f} s in all.)", "",
           "| sampler | detected (sequential) | 95% interval | detected (fixed B) | 95% interval | only sequential "
           "| only fixed B | permutations, sequential (median / max) | check s, sequential / fixed B (median) |",
           "|---|---|---|---|---|---|---|---|---|"]
    for row in res["rows"]:
        sq, fx = row["sequential"], row["fixed"]
        out.append(f"| {row['name']} | {sq['detected']}/{r} | [{sq['ci95'][0]:.2f}, {sq['ci95'][1]:.2f}] | "
                   f"{fx['detected']}/{r} | [{fx['ci95'][0]:.2f}, {fx['ci95'][1]:.2f}] | {row['only_sequential']} | "
                   f"{row['only_fixed']} | {sq['permutations_median']:.0f} / {sq['permutations_max']} | "
                   f"{sq['seconds_median']:.2f} / {fx['seconds_median']:.2f} |")
    seq = sum(x["sequential"]["seconds"] for row in res["rows"] for x in row["seeds"])
    fix = sum(x["fixed"]["seconds"] for row in res["rows"] for x in row["seeds"])
    out += ["", f"Check seconds (sampler calls excluded) over all checks: sequential {seq:.0f} s, fixed B {fix:.0f} s "
            f"(ratio fixed / sequential {fix / seq:.2f}, measured in the same run, on the same samples)."]
    return "\n".join(out) + "\n"


_VERDICTS = {"both": "`specverify mutants` (default and stress configurations, alpha / 2 each)",
             "check": "`specverify check` at its defaults (frozen-denoiser, L = 8)"}


def markdown(res: dict, command: str) -> str:
    head = ["Generated by `paper_repro/power.py`; measured by:", "", f"    {command}", ""]
    if res["study"] == "engines":
        return _engines_markdown(res, head)
    if res["study"] == "compare":
        return compare_markdown(res, head)
    if res["study"] == "seeds":
        out = [f"# The correct sampler over {res['seeds']} seeds: {res['problem']} d={res['dim']}", "", *head,
               f"Verdict: {_VERDICTS[res['configs']]}.", "",
               f"{res['passes']} of {res['seeds']} seeds pass at alpha = {res['alpha']} "
               f"({res['seconds']:.0f} s in all).", "", "| seed | verdict | min adjusted p | n |", "|---|---|---|---|"]
        out += [f"| {r['seed']} | {'FALSE ALARM' if r['detected'] else 'pass'} | {r['min_adjusted_pvalue']:.3g} | "
                f"{r['n']} |" for r in res["rows"]]
        return "\n".join(out) + "\n"
    return min_n_markdown(res, head)


def _settle(ap, args) -> None:
    """The options that depend on the study; a bad combination is a usage error (exit 2)."""
    if args.check and args.study != "min-n":
        ap.error("--check applies to the min-n study only")
    if args.study == "seeds":
        args.configs = args.configs or "both"
        if args.configs not in ("both", "check"):
            ap.error(f"seeds: --configs is both or check, not {args.configs!r}")
    elif args.configs is not None and not args.check:
        ap.error("--configs applies to seeds, and to min-n with --check terminal or innovations")
    args.config_list = [c for c in (args.configs or ",".join(CHECK_CONFIGS)).split(",") if c]
    if args.check and (not args.config_list or set(args.config_list) - set(CHECK_CONFIGS)
                       or len(set(args.config_list)) < len(args.config_list)):
        ap.error(f"--configs {args.configs!r}: give a comma list of distinct names among {', '.join(CHECK_CONFIGS)}")
    if args.n_start is None:
        args.n_start = 16 if args.check == "innovations" else 100
    if args.n_start < 2 or args.max_doublings < 0 or args.replicates < 1:
        ap.error("--n-start must be >= 2, --max-doublings >= 0 and --replicates >= 1")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", choices=("seeds", "min-n", "engines", "compare"))
    ap.add_argument("--inputs", help="compare: TERMINAL.json,INNOVATIONS.json, two finished min-n --check runs")
    ap.add_argument("--config", default="two-sample", help="engines: a configuration of specverify.calibration")
    ap.add_argument("--drafter", default=None, help="engines: the candidate's drafter (default: the configuration's)")
    ap.add_argument("--window", type=int, default=None, help="engines: its window (default: the configuration's)")
    ap.add_argument("--fixed-b", type=int, default=None,
                    help="engines: B of the fixed engine (default: the former default of `check`, 999 or more)")
    ap.add_argument("--problem", default="gmm")
    ap.add_argument("--dim", type=int, default=2)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--alpha", type=float, default=0.01)
    ap.add_argument("--n", type=int, default=None, help="seeds: samples per check (default: from alpha, beta, eps)")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--configs", default=None,
                    help="seeds: both (the verdict of `specverify mutants`, default and stress drafters) or check; "
                         "min-n with --check: a comma list of natural (frozen-denoiser, L = 8) and stress (L = 4), "
                         "default natural,stress")
    ap.add_argument("--check", choices=("terminal", "innovations"), default=None,
                    help="min-n: one check alone per configuration (default: the `specverify mutants` verdict)")
    ap.add_argument("--replicates", type=int, default=20)
    ap.add_argument("--n-start", type=int, default=None,
                    help="min-n: the grid's first n (default 16 with --check innovations, else 100)")
    ap.add_argument("--max-doublings", type=int, default=8, help="min-n: the grid ends at n-start x 2^this")
    ap.add_argument("--curtail", action="store_true",
                    help="min-n: an n stops at the miss that leaves it unable to reach 95%% of the seeds (same "
                         "smallest n, fewer checks)")
    ap.add_argument("--threads", type=int, choices=(1,), default=None,
                    help="1: torch and XLA on one thread (on a shared machine their idle threads spin; default: "
                         "their own choice)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--smoke", action="store_true",
                    help="seconds (CI): 10 steps; seeds: 2 seeds at n = 200; min-n: 1 replicate at n = 100 only; "
                         "engines: 1 seed, n = 200")
    args = ap.parse_args(argv)
    _settle(ap, args)
    if args.threads == 1:
        from specverify.calibration import _single_thread

        _single_thread()  # before torch or JAX computes anything
    if args.smoke:
        args.steps = 10
        if args.study == "seeds":
            args.seeds, args.n = 2, 200
        elif args.study == "engines":
            args.replicates, args.n = 1, 200
        else:
            args.replicates, args.max_doublings = 1, 0
    command = "python paper_repro/power.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.command = command.strip()
    try:
        res = {"seeds": seeds, "min-n": min_n, "engines": engines, "compare": compare}[args.study](args)
    except (OSError, ValueError) as e:
        if args.study != "compare":
            raise
        ap.error(str(e))
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    if args.markdown:
        args.markdown.write_text(markdown(res, command.strip()))
    if res["study"] == "seeds":
        return 0 if res["passes"] == res["seeds"] else 1
    if res["study"] in ("engines", "compare"):
        return 0  # a measurement (or a page of two): power is reported, not judged
    if res.get("check"):
        return 0 if all(r[c]["min_n"] for r in res["rows"] for c in res["configs"]) else 1
    return 0 if all(r["min_n"] for r in res["rows"]) else 1


if __name__ == "__main__":
    sys.exit(main())
