"""Verifiers beyond one draft, measured: node acceptance, runs per verifier, K and window, and wall clock.

Writes ``theory/multidraft.md`` (+ ``.json``); every figure is measured by the command printed at its top.

1. Node acceptance: our multi-draft couplings (``verifiers.dgrs_coupling``, ``verifiers.rank_coupling``) on
   ``--node-n`` random nodes per (rule, |D|, K), accepted share with its exact 99% interval, next to the judge's
   prediction (``harness.predictions.dgrs_acceptance``, ``harness.node_laws.rank_acceptance``).
2. Runs: ``specverify accept``'s rows (``specverify.study.run_study``) per problem, verifier (``--verifiers``; the
   multi-draft ones with K drafts at the window's first position) and window: acceptance per verified step
   against the sum of the verifier's own per-step predictions (99% interval), nfe_ratio measured and predicted,
   and target rows per sample and round (every drafted state of every child counts).
3. Wall clock on a SIMULATED accelerator (every target call sleeps ``--latency-ms``; the table says so): plain
   and each verifier timed in turn, ``--repeats`` rounds, medians with min-max.

    python paper_repro/multidraft.py --markdown theory/multidraft.md --json theory/multidraft.json
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy import stats

VERIFIERS = [("reflection", 1), ("block", 1), ("dgrs", 2), ("dgrs", 4), ("dgrs", 8)]  # (verifier, K); --drafts
PROBLEMS = {"gmm": dict(dim=2, steps=100, drafter="frozen-denoiser"),
            "digits": dict(dim=None, steps=100, drafter="frozen-denoiser"),
            "images": dict(dim=None, steps=250, drafter="frozen-drift")}


def _ci(k, n, level=0.99):
    ci = stats.binomtest(int(k), int(n)).proportion_ci(level, method="exact")
    return float(ci.low), float(ci.high)


def _coupling(rule: str):
    """Our multi-draft coupling for ``rule`` and the judge's prediction of its node acceptance (|D|, K) -> p."""
    from specverify.harness.node_laws import rank_acceptance
    from specverify.harness.predictions import dgrs_acceptance
    from specverify.sampler.verifiers import dgrs_coupling, rank_coupling

    if rule == "dgrs":
        return dgrs_coupling, dgrs_acceptance
    kind = rule.partition("-")[2] or "lp"
    return (lambda *a: rank_coupling(*a, weights=kind)), (lambda d, K: rank_acceptance(d, K, kind))


def node_table(n: int, seed: int, rules=("dgrs",)) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    rows = []
    for rule in rules:
        coupling, law = _coupling(rule)
        for delta in (0.25, 0.5, 1.0, 2.0):
            for K in (1, 2, 4, 8):
                d = 4
                e = torch.zeros(n, d, dtype=torch.float64)
                e[:, 0] = 1.0
                mean_p = torch.randn(n, d, generator=g, dtype=torch.float64)
                means_q = (mean_p - delta * e).unsqueeze(1).expand(n, K, d).contiguous()
                z = torch.randn(n, K, d, generator=g, dtype=torch.float64)
                u = torch.rand(n, K + 1, generator=g, dtype=torch.float64)
                _, index = coupling(mean_p, means_q, torch.ones(n, dtype=torch.float64), z, u)
                k = int((index >= 0).sum())
                lo, hi = _ci(k, n)
                p = float(law(delta, K))
                rows.append({"rule": rule, "delta": delta, "K": K, "n": n, "accepted": k / n, "ci99": [lo, hi],
                             "predicted": p, "inside": lo <= p <= hi})
    return rows


def run_rows(problem: str, windows: list[int], n: int, seed: int, verifiers=VERIFIERS, steps=None) -> list[dict]:
    from specverify.bridge import make_setup
    from specverify.study import Study, run_study

    cfg = {**PROBLEMS[problem], **({"steps": steps} if steps else {})}
    setup = make_setup(problem, dim=cfg["dim"], steps=cfg["steps"])
    rows = []
    for verifier, K in verifiers:
        for row in run_study(setup, Study([cfg["drafter"]], windows, n, seed, verifier=verifier, drafts=K)):
            rows.append({"problem": problem, "steps": cfg["steps"], **{k: row[k] for k in (
                "drafter", "window", "verifier", "drafts", "acceptance_rate", "predicted_acceptance_rate", "ci_low",
                "ci_high", "acceptance_inside", "nfe_ratio", "predicted_nfe_ratio", "rounds_mean", "seconds")},
                "rows_per_round": row["target_rows_per_round"]})
    return rows


def wall_table(latency_ms: float, window: int, batch: int, repeats: int, seed: int, verifiers=VERIFIERS
               ) -> list[dict]:
    from specverify.bridge import Built, Ours, make_setup, run_ours
    from specverify.sampler.bench import with_latency

    setup = make_setup("gmm", dim=2, steps=100)
    chain = with_latency(setup.chain(), latency_ms / 1000)
    configs = [("plain", None, 1)] + [("speculative", v, K) for v, K in verifiers]
    times = {c: [] for c in configs}
    for _ in range(repeats):  # interleaved: each repeat times every configuration once, in turn
        for c in configs:
            ours = Ours(sampler=c[0], drafter="frozen-denoiser", window=window, verifier=c[1] or "reflection",
                        drafts=c[2])
            t0 = time.perf_counter()
            run_ours(setup, ours, batch, seed, built=Built(chain))
            times[c].append(time.perf_counter() - t0)
    base = statistics.median(times[configs[0]])
    return [{"sampler": c[0], "verifier": c[1], "drafts": c[2], "median_s": statistics.median(t), "min_s": min(t),
             "max_s": max(t), "speedup": base / statistics.median(t)} for c, t in times.items()]


def markdown(res: dict, command: str) -> str:
    out = [f"# Verifiers beyond one draft: acceptance, rounds and wall clock{res['title']}", "",
           "Generated by `paper_repro/multidraft.py`; every figure below was measured by:", "", f"    {command}", "",
           "The rules (equations in `../shared/VERIFIERS.md`, code in `specverify/sampler/verifiers.py`): "
           "**reflection** accepts each drafted step with min(1, p/q) and reflects the first rejected one; "
           "**block** accepts the window's prefix jointly (c_i = min(1, c_{i-1} r_i), h_i = M_i / (M_i + 1 - c_i), "
           "tau = max{i : eta_i <= h_i}) and draws the next step from (c_tau f_tg - f_dr)_+ along e with fresh "
           "noise; **dgrs** drafts K children at the window's first position, each with its own chain below (1 + K L "
           "target rows per round), decides the first position by D-GRS in drafting order (then a residual draw "
           "(phi(s - |D|) - lambda_K phi(s))_+), and the chosen child's chain by reflection. Every verifier keeps the "
           "round policy (accepted + 1 steps per round) and its anchor rule: the drafters freeze the latest target "
           "output, the committed state's parent, for every child alike.", "",
           "**rank** (and rank-max, rank-uniform) draft the same tree and decide the first position by rank selection "
           "(PAWS / RASS): the r-th smallest projection with probability lambda_r(|D|, K) (LP-optimised, max, uniform), "
           "accepted with min(1, f/g), else a residual draw from (f - g)_+.", "",
           "## 1. Node acceptance: measured (our couplings) against the judge's prediction (D-GRS 1 - G_(K+1); "
           "rank selection int min(f, g) by the judge's own LP and quadrature)",
           "", f"{res['node'][0]['n']} random nodes per row (d = 4); exact 99% Clopper-Pearson intervals. With "
           f"{len(res['node'])} independent rows at 99%, a correct rule misses at least one interval with probability "
           f"{1 - 0.99 ** len(res['node']):.2f}; here {sum(not r['inside'] for r in res['node'])} missed.", "",
           "| rule | abs(D) | K | measured | 99% interval | predicted | inside |", "|---|---|---|---|---|---|---|"]
    for r in res["node"]:
        out.append(f"| {r.get('rule', 'dgrs')} | {r['delta']} | {r['K']} | {r['accepted']:.4f} | [{r['ci99'][0]:.4f}, {r['ci99'][1]:.4f}] | "
                   f"{r['predicted']:.4f} | {'yes' if r['inside'] else 'NO'} |")
    out += ["", "## 2. Runs: acceptance and nfe per verifier, K and window", "",
            f"n = {res['n']} trajectories per row, seed {res['seed']}, float64, CPU. Acceptance: accepted over verified "
            "drafted steps, with its 99% interval, against the mean of the verifier's own per-step predictions "
            "(reflection 2 Phi(-|D|/2); dgrs 1 - G_(K+1)(|D|) and rank int min(f, g) at the first position; block P(tau >= j + 1 | tau >= j, "
            "window)). Predicted nfe: the round model of `theory/rounds.md` fed with those per-step predictions "
            "(independent acceptances; for block an approximation). Rows/round: target rows per sample and round.", "",
            "| problem | steps | drafter | L | verifier | K | acceptance | 99% interval | predicted | inside | nfe_ratio | "
            "predicted nfe | rows/round | seconds |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["runs"]:
        out.append(f"| {r['problem']} | {r['steps']} | {r['drafter']} | {r['window']} | {r['verifier']} | {r['drafts']} "
                   f"| {r['acceptance_rate']:.4f} | [{r['ci_low']:.4f}, {r['ci_high']:.4f}] | "
                   f"{r['predicted_acceptance_rate']:.4f} | {'yes' if r['acceptance_inside'] else 'NO'} | "
                   f"{r['nfe_ratio']:.3f} | {r['predicted_nfe_ratio']:.3f} | {r['rows_per_round']:.1f} | "
                   f"{r['seconds']:.1f} |")
    w = res["wall"]
    out += ["", f"## 3. Wall clock on a SIMULATED accelerator ({w['latency_ms']} ms per target call)", "",
            f"gmm d=2, 100 steps, frozen-denoiser, window {w['window']}, batch {w['batch']}: every target call first "
            f"sleeps {w['latency_ms']} ms (a SIMULATION of an idle accelerator whose call costs its latency whatever "
            f"the rows). {w['repeats']} interleaved repeats; median seconds with min-max; speed-up = plain's median "
            "over the row's median.", "", "| sampler | verifier | K | median s | min-max s | speed-up |",
            "|---|---|---|---|---|---|"]
    for r in w["rows"]:
        out.append(f"| {r['sampler']} | {r['verifier'] or '-'} | {r['drafts']} | {r['median_s']:.2f} | "
                   f"{r['min_s']:.2f}-{r['max_s']:.2f} | {r['speedup']:.2f} |")
    out += ["", f"({res['seconds']:.0f} s in all.)", ""]
    return "\n".join(out)


BEGIN, END = "<!-- multidraft:begin -->", "<!-- multidraft:end -->"


def results_section(runs: list[dict], commands: list[str], window: int = 8) -> str:
    """RESULTS.md's section: per problem at ``window``, nfe_ratio of each verifier next to its prediction."""
    out = [BEGIN, "## 6. Verifiers beyond one draft (block, D-GRS, rank selection)", "",
           "Generated by `paper_repro/multidraft.py --section`, from the runs of " +
           ", ".join(f"`{c}`" for c in commands) + " (the full tables are on the pages those commands write). "
           "nfe_ratio at window " + str(window) + " per verifier, next to its "
           "prediction, with the target rows each round evaluates per sample; gain = nfe_ratio over reflection's.", "",
           "| problem | steps | drafter | verifier | K | rows/round | nfe_ratio | predicted | gain |",
           "|---|---|---|---|---|---|---|---|---|"]
    base = {}  # reflection's nfe_ratio per (problem, steps), from the first run that has it
    for r in runs:
        if r["window"] == window and r["verifier"] == "reflection":
            base.setdefault((r["problem"], r["steps"]), r["nfe_ratio"])
    seen = set()
    for r in runs:  # a row measured by two runs is shown once, from the first
        key = (r["problem"], r["steps"], r["verifier"], r["drafts"], r["window"])
        if r["window"] == window and key not in seen:
            seen.add(key)
            out.append(f"| {r['problem']} | {r['steps']} | {r['drafter']} | {r['verifier']} | {r['drafts']} | "
                       f"{r['rows_per_round']:.1f} | **{r['nfe_ratio']:.3f}** | {r['predicted_nfe_ratio']:.3f} | "
                       f"{r['nfe_ratio'] / base[(r['problem'], r['steps'])]:.3f} |")
    return "\n".join(out + ["", END]) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--problems", default="gmm,digits", help="comma-separated: gmm, digits, images")
    ap.add_argument("--windows", default="1,2,4,8,16")
    ap.add_argument("--verifiers", default="reflection,block,dgrs,rank",
                    help="comma-separated verifiers; the multi-draft ones (dgrs, rank*) run at each --drafts K")
    ap.add_argument("--drafts", default="2,4,8", help="the multi-draft verifiers' K")
    ap.add_argument("--steps", type=int, default=None, help="chain steps of every problem (default: each one's own)")
    ap.add_argument("--title", default="", help="a suffix of the page's title (e.g. the problem)")
    ap.add_argument("--n", type=int, default=1000, help="trajectories per run row")
    ap.add_argument("--node-n", type=int, default=200000)
    ap.add_argument("--latency-ms", type=float, default=5.0)
    ap.add_argument("--wall-window", type=int, default=8)
    ap.add_argument("--wall-batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path)
    ap.add_argument("--render", type=Path, nargs="+", metavar="JSON",
                    help="measure nothing: write --markdown again from a run's JSON, or --section from several")
    ap.add_argument("--section", type=Path, metavar="RESULTS.md", help="with --render: write the verifiers' section")
    args = ap.parse_args(argv)
    if args.render:
        runs = [json.loads(p.read_text()) for p in args.render]
        if args.section:
            from specverify.benchmarks import write_section

            write_section(args.section, results_section([r for res in runs for r in res["runs"]],
                                                        [res["command"] for res in runs]), BEGIN, END)
        elif args.markdown:
            args.markdown.write_text(markdown(runs[0], runs[0]["command"]))
        return 0
    problems = [p for p in args.problems.split(",") if p]
    if any(p not in PROBLEMS for p in problems):
        print(f"error: --problems takes {', '.join(PROBLEMS)}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    windows = [int(w) for w in args.windows.split(",")]
    names = [v for v in args.verifiers.split(",") if v]
    multi = [v for v in names if v == "dgrs" or v.startswith("rank")]
    verifiers = [(v, 1) for v in names if v not in multi] + [(v, int(k)) for v in multi
                                                              for k in args.drafts.split(",") if k]
    res = {"n": args.n, "seed": args.seed, "title": args.title, "node": node_table(args.node_n, args.seed, multi)}
    res["runs"] = [r for p in problems for r in run_rows(p, windows, args.n, args.seed, verifiers, args.steps)]
    res["wall"] = {"latency_ms": args.latency_ms, "window": args.wall_window, "batch": args.wall_batch,
                   "repeats": args.repeats, "rows": wall_table(args.latency_ms, args.wall_window, args.wall_batch,
                                                               args.repeats, args.seed, verifiers)}
    res["seconds"] = time.perf_counter() - t0
    res["command"] = "python paper_repro/multidraft.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    text = markdown(res, res["command"])
    if args.json:
        args.json.write_text(json.dumps(res, indent=1, default=float) + "\n")
    if args.markdown:
        args.markdown.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
