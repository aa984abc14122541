"""`specverify mutants`: every known-broken sampler and the correct one through the check."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping

from specverify.cli.common import build_problem, torch_device, write

__all__ = ["cmd_mutants", "kills_markdown"]


def cmd_mutants(args) -> str:
    """Each sampler is checked under two configurations (the given drafter and the stress drafter) at alpha / 2
    each, so that its verdict has false-alarm rate <= alpha; a mutant is detected if either rejects."""
    from specverify.bridge import (
        STRESS_WINDOW,
        Ours,
        Plan,
        TrajectoryOptions,
        make_reference,
        make_target,
        mutant_split,
        mutant_verdict,
    )
    from specverify.bridge.registry import MUTANTS

    t0 = time.perf_counter()
    device = torch_device(args.device)
    setup = build_problem(args)
    reference = make_reference(setup) if args.terminal else None
    target = None if args.terminal else make_target(setup)
    plan = Plan(args.alpha, args.beta, args.epsilon, args.n, args.seed)
    paths = TrajectoryOptions(args.terminal, target, args.delta)
    rows = []
    for name in [None, *MUTANTS]:
        ours = Ours(drafter=args.drafter, window=args.window, mutant=name, stress_delta=args.stress_delta)
        row = mutant_verdict(setup, reference, ours, plan, paths, device=device)
        rows.append(row)
        tests = "; ".join(f"{k}: {', '.join(c['rejected_tests'][:3])}{' ...' if len(c['rejected_tests']) > 3 else ''}"
                          for k, c in row["configurations"].items() if c["rejected_tests"])
        cost = ", ".join(f"{k} {c['seconds']:.0f} s / {c['permutations'] or 0} permutations"
                         for k, c in row["configurations"].items())
        print(f"  {row['name']:<24}{'REJECTED' if row['detected'] else 'passes':<10}"
              f"min adjusted p={row['min_adjusted_pvalue']:.3g}  caught by: {tests or '-'}  ({cost})")
    correct, mutants = rows[0], rows[1:]
    out = {"problem": args.problem, "dim": args.dim, "steps": args.steps, "alpha": args.alpha,
           "check": "terminal battery (final samples)" if args.terminal else "transition level (trajectories)",
           "configurations": {"default": {"drafter": args.drafter, "window": args.window},
                              "stress": {"drafter": "stress", "window": STRESS_WINDOW}},
           "alpha_split": mutant_split(args.alpha).to_dict(),
           "mutants": mutants, "kill_rate": sum(m["detected"] for m in mutants) / len(mutants),
           "reference_false_alarm": correct["detected"], "correct": correct}
    write(args.json, json.dumps(out, indent=2) + "\n")
    out["seconds"] = time.perf_counter() - t0
    write(args.markdown, kills_markdown(out, " ".join(sys.argv[1:]) if args.markdown else ""))
    print(f"kill rate {out['kill_rate']:.2f} ({sum(m['detected'] for m in mutants)}/{len(mutants)}); "
          f"correct sampler {'FALSELY REJECTED' if correct['detected'] else 'passes'}")
    return "fail" if correct["detected"] else "pass"


def _few(names: list, k: int = 4) -> str:
    if not names:
        return "-"
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


def _seconds(out: Mapping) -> str:
    return f" ({out['seconds']:.0f} s)" if "seconds" in out else ""


def _secs(cfg: Mapping) -> str:
    return f"{cfg['seconds']:.0f}" if "seconds" in cfg else "-"


def kills_markdown(out: Mapping, argv: str) -> str:
    """The `specverify mutants` kills table from its JSON (rows of ``bridge.mutant_verdict``); ``argv``: the
    command line that measured it."""
    c = out["configurations"]
    lines = [f"# Mutants against the suite: {out['problem']} d={out['dim']}, {out['steps']} steps", "",
             f"Measured by `specverify {argv}`{_seconds(out)}. Check: {out.get('check', 'terminal battery')}. "
             f"Each sampler is checked under the default "
             f"configuration ({c['default']['drafter']}, L={c['default']['window']}) and the stress configuration "
             f"(stress drafter, L={c['stress']['window']}) at alpha / 2 = {out['alpha'] / 2} each; detected if "
             f"either rejects (the stress configuration is skipped once the default one has rejected).", "",
             f"Kill rate {out['kill_rate']:.2f}; correct sampler "
             f"{'FALSELY REJECTED' if out['reference_false_alarm'] else 'passes'}.", "",
             "| sampler | bug | detected | min adjusted p | n | rejected by (default) | rejected by (stress) | "
             "permutations (default / stress) | seconds (default / stress) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in [out["correct"], *out["mutants"]]:
        cfg = r["configurations"]
        lines.append(f"| {r['name']} | {r.get('description') or '(none)'} | {'yes' if r['detected'] else 'no'} | "
                     f"{r['min_adjusted_pvalue']:.3g} | {cfg['default']['n']} | "
                     f"{_few(cfg['default']['rejected_tests'])} | {_few(cfg['stress']['rejected_tests'])} | "
                     f"{cfg['default'].get('permutations')} / {cfg['stress'].get('permutations')} | "
                     f"{_secs(cfg['default'])} / {_secs(cfg['stress'])} |")
    return "\n".join(lines) + "\n"
