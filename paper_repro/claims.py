"""The paper's claims, reproduced on models built or trained here: one command writes RESULTS.md and its figures.

    python paper_repro/claims.py                                  # paper_repro/RESULTS.md, figures/, results.json
    python paper_repro/claims.py --smoke --out /tmp/claims        # tiny sizes and the quick digits models (CI)
    python paper_repro/claims.py --render                         # rewrite the page from results.json only

Claims (De Bortoli et al., ICML 2025) and what is measured for each, every number in the same run:
    halving the function evaluations   nfe_ratio (steps / mean sequential target rounds) per drafter and window
                                       on `digits` (DDPM trained here) and `gmm`, next to its prediction; the
                                       wall-clock ratio plain / speculative measured side by side (bench_sampler's
                                       timer, interleaved repeats, median) at batch 1 and a large batch.
    exact samples                      `specverify check` (speculative against the reference: the JAX sampler for
                                       gmm and langevin-model, our plain sampler for digits) per drafter, with n,
                                       alpha (family-wise alpha split equally over the checks) and the smallest KS
                                       distance detected with power 1 - beta; on digits a sample-quality table
                                       (kernel MMD to held-out digits, classifier confidence) and sample grids.
    out-of-the-box drafter             the frozen drafters (no training) against the independent draft network
                                       and the trained Medusa-like heads, with their training cost.
    Langevin acceleration              nfe_ratio and the verdict on the numpyro posterior (`langevin-model`).

The measurements are ``specverify.benchmarks`` (Settings, speed, wall_clock, exactness, quality, ...); this script
runs them and writes the page, the JSON and the figures.
"""

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

from specverify.benchmarks import (
    DIFFUSION_DRAFTERS,
    LANGEVIN_DRAFTERS,
    QUALITY_KEYS,
    SMOKE,
    Settings,
    exactness,
    quality,
    save_grid,
    setups,
    speed,
    training_costs,
    wall_clock,
)

__all__ = ["DIFFUSION_DRAFTERS", "LANGEVIN_DRAFTERS", "SMOKE", "Settings", "figures", "main", "markdown", "run"]

HERE = Path(__file__).resolve().parent


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def figures(res: dict, figdir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    probs = [p for p in res["speed"] if res["speed"][p]]
    fig, axes = plt.subplots(1, len(probs), figsize=(4.5 * len(probs), 3.6), squeeze=False)
    for ax, p in zip(axes[0], probs, strict=True):
        rows = res["speed"][p]
        for d, pol in dict.fromkeys((r["drafter"], r.get("policy", "")) for r in rows):
            sel = [r for r in rows if r["drafter"] == d and r.get("policy", "") == pol]
            line, = ax.plot([r["window"] for r in sel], [r["nfe_ratio"] for r in sel],
                            "o-" if pol != "window-start" else "s:", label=f"{d} ({pol})" if pol else d)
            ax.plot([r["window"] for r in sel], [r["predicted_nfe_ratio"] for r in sel], "x", color=line.get_color())
        ax.axhline(2, color="k", lw=0.6, ls="--")
        ax.set_xscale("log", base=2)
        ax.set_title(f"{p}, {res['steps'][p]} steps", fontsize=10)
        ax.set_xlabel("window L")
        ax.set_ylabel("nfe_ratio (o measured, x predicted)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths.append(figdir / "nfe_ratio.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    rows = [r for p in res["wall"] for r in res["wall"][p]]
    labels = [f"{r['model']}\n{r['drafter']}\nbatch {r['batch']}" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, 0.7 * len(rows)), 4))
    xs = range(len(rows))
    ax.bar([x - 0.2 for x in xs], [r["nfe_ratio"] for r in rows], 0.4, label="nfe_ratio")
    ax.bar([x + 0.2 for x in xs], [r["wall_ratio"] for r in rows], 0.4, label="wall-clock ratio (plain / spec)")
    ax.axhline(1, color="k", lw=0.6)
    ax.set_xticks(list(xs), labels, fontsize=6)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(figdir / "wall_clock.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    q = res["quality"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.6), sharey=True)
    titles = ("MMD statistic to held-out digits (lower is better)", "Frechet distance, class probabilities (lower is "
              "better)", "classifier confidence (higher is better)")
    for ax, key, title in zip(axes, QUALITY_KEYS, titles, strict=True):
        ax.barh([r["sampler"] for r in q], [r[key] for r in q], xerr=[r[f"{key}_sd"] for r in q], capsize=3)
        ax.set_title(f"{title}\nmean and sd over {q[0]['seeds']} seeds", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    paths.append(figdir / "digits_quality.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)
    paths.append(figdir / "digits_samples.png")
    return [str(p) for p in paths]


def _wall_sentence(res: dict) -> str:
    rows = [r for p in res["wall"] for r in res["wall"][p]]
    cost = [r["round_cost"] for r in rows]
    faster = [r for r in rows if r["wall_ratio"] > 1]
    out = f"Here a round cost {min(cost):.1f} to {max(cost):.1f} plain steps, so the speculative sampler was "
    out += (f"faster in wall-clock time in {len(faster)} of {len(rows)} rows. " if faster else
            "slower in wall-clock time in every row: on this CPU a round's parallel target evaluations (and the "
            "sampler's own work) cost about as much as the sequential calls they replace. ")
    out += ("The nfe_ratio turns into wall-clock time where a round costs fewer plain steps than the nfe_ratio, as "
            "on a GPU with idle parallel capacity at small batches (the paper's setting")
    out += ("; " + res["cuda"] + ")." if res.get("cuda") else "; no GPU was available to this run).")
    spreads = [r["spread"] for r in rows if "spread" in r]  # results written before it was logged have none
    if spreads and res["settings"]["repeats"] > 1:
        spread = max(spreads)
        out += (f" Timing spread: the slowest repeat is at most x{spread:.2f} the fastest"
                + (" -- the machine was busy; rerun on an idle machine before trusting the wall ratios." if spread > 1.5
                   else "."))
    return out


def _best(rows, drafter, policy="accepted+1"):
    sel = [r for r in rows if r["drafter"] == drafter and r.get("policy", policy) == policy]
    return max(sel, key=lambda r: r["nfe_ratio"]) if sel else None


def markdown(res: dict, figrel: str) -> str:
    st = res["settings"]
    out = ["# Results: the paper's claims on models built here", "",
           f"Generated by `{res['command']}` in {res['seconds'] / 60:.1f} min on {res['machine']}. Every number "
           "below was measured by that command in that run; `results.json` holds them all.", ""]
    dig = res["speed"].get("digits", [])
    best = _best(dig, "frozen-denoiser")
    if best:
        reach = "reaches" if best["nfe_ratio"] >= 2 else "does NOT reach"
        out += [f"**Headline:** the frozen-denoiser drafter on digits ({st['digits_steps']} DDPM steps) {reach} "
                f"nfe_ratio 2: {best['nfe_ratio']:.2f} at window {best['window']} (n = {best['n']}; round policy "
                "accepted+1, `theory/rounds.md`).", ""]
    verdicts = [r["verdict"] for r in res["exactness"]]
    out += [f"**Exactness:** {verdicts.count('pass')} of {len(verdicts)} checks pass "
            f"(family-wise alpha {st['family_alpha']}).", ""]

    out += ["## 1. Halving the number of function evaluations", "",
            "nfe_ratio = steps / mean sequential target rounds per trajectory (a round verifies a whole window in one "
            "parallel call). Predicted: the dynamic program of `theory/rounds.md` fed with the logged acceptance "
            "probabilities. Acceptance with its 99% Clopper-Pearson interval. Two round policies side by side: "
            "accepted+1 (the default: every round commits its accepted drafts plus one step, drafters anchored on "
            "the latest target output) and window-start (a fresh anchor at every window start, a warm-up round "
            "after each rejection, no bonus step).", ""]
    for p, rows in res["speed"].items():
        out += [f"### {p} ({res['steps'][p]} steps, n = {rows[0]['n']} per row)", "",
                "| drafter | L | policy | acceptance [99% CP] | predicted | rounds | nfe_ratio | predicted |",
                "|---|---|---|---|---|---|---|---|"]
        out += [f"| {r['drafter']} | {r['window']} | {r.get('policy', '-')} | {r['acceptance_rate']:.3f} "
                f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}] | {r['predicted_acceptance_rate']:.3f} | {r['rounds_mean']:.1f} "
                f"| **{r['nfe_ratio']:.2f}** | {r['predicted_nfe_ratio']:.2f} |" for r in rows]
        out.append("")
    out += [f"![nfe_ratio]({figrel}/nfe_ratio.png)", "", "### Wall clock, side by side", "",
            f"Plain against speculative at window {st['check_window']}, float32, on this CPU "
            f"({res['threads']} torch threads); median of {st['repeats']} interleaved repeats. wall ratio = plain / "
            "speculative (> 1: speculative is faster) = call ratio / round cost, where call ratio = steps / rounds of "
            "the whole batch (it waits for its slowest sample; at batch 1 it is the nfe_ratio) and round cost = "
            "seconds per speculative round / seconds per plain step. " + _wall_sentence(res), "",
            "| problem | steps | batch | drafter | policy | plain s | speculative s | wall ratio | nfe_ratio | call ratio "
            "| round cost |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r['model']} | {r['steps']} | {r['batch']} | {r['drafter']} | {r.get('policy', '-')} | {r['plain_s']:.3f} "
            f"| {r['spec_s']:.3f} "
            f"| {r['wall_ratio']:.2f} | {r['nfe_ratio']:.2f} | {r['call_ratio']:.2f} | {r['round_cost']:.2f} |"
            for p in res["wall"] for r in res["wall"][p]]
    out += ["", f"![wall clock]({figrel}/wall_clock.png)", ""]

    out += ["## 2. Exact samples", "",
            f"`specverify check` of each drafter at window {st['check_window']}: the two-sample battery (KS, MMD, "
            "energy; minP) against the reference, plus the acceptance test, at alpha = family-wise alpha / "
            f"{len(res['exactness'])} checks. min detectable = the KS distance detected with power "
            f"{1 - st['beta']} at this n.", "",
            "| problem | drafter | reference | verdict | n | alpha | min detectable KS | min adjusted p | acceptance "
            "(predicted) |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["exactness"]:
        acc = (f"{r['acceptance_rate']:.3f} ({r['predicted_acceptance_rate']:.3f})"
               if r["acceptance_rate"] is not None else "-")
        low = "" if r["power_ok"] else " (n below the declared power)"
        out.append(f"| {r['problem']} | {r['drafter']} | {r['reference']} | **{r['verdict']}**{low} | {r['n']} | "
                   f"{r['alpha']:.4g} | {r['min_detectable_ks']:.4f} | {r['min_adjusted_pvalue']:.3g} | {acc} |")
    q0 = res["quality"][0]
    out += ["", f"### Sample quality on digits ({res['steps']['digits']} steps, n = {q0['n']}, {q0['seeds']} seeds)",
            "",
            "Against the held-out digits, mean and standard deviation over seeds: specverify's MMD statistic (max over "
            "bandwidths of the standardised MMD^2_u; its median permutation p-value), the Frechet distance between "
            "the class probabilities of a logistic-regression classifier fitted on the training digits (the FID "
            "formula on these features), and that classifier's mean top-class probability. The training digits "
            "give the floor, a Gaussian fit a baseline. These figures rank models; whether speculative and plain "
            "samples have the same law is the check above, at a much larger n.", "",
            "| samples | MMD statistic | median p | Frechet (class probabilities) | classifier confidence | fewest "
            "classes |",
            "|---|---|---|---|---|---|"]
    out += [f"| {r['sampler']} | {r['mmd_statistic']:.2f} ± {r['mmd_statistic_sd']:.2f} | {r['mmd_pvalue_median']:.3f} "
            f"| {r['frechet_proba']:.3f} ± {r['frechet_proba_sd']:.3f} | {r['classifier_confidence']:.3f} ± "
            f"{r['classifier_confidence_sd']:.3f} | {r['classes_min']} |" for r in res["quality"]]
    out += ["", f"![quality]({figrel}/digits_quality.png)", "", f"![samples]({figrel}/digits_samples.png)", ""]

    out += ["## 3. The out-of-the-box drafter", "",
            f"At window {st['check_window']}, policy accepted+1: the frozen drafters need no training; the independent drafter needs a "
            "second network (and calls it at every drafted step), the Medusa-like heads need training on target "
            "rollouts (the time includes generating them). Training seconds as measured when the model was built.", "",
            "| problem | drafter | acceptance | nfe_ratio | training |", "|---|---|---|---|---|"]
    for p, rows in res["speed"].items():
        costs = res["training"].get(p, {})
        for r in (r for r in rows if r["window"] == st["check_window"] and r.get("policy") != "window-start"):
            if r["drafter"] == "medusa":
                c = costs.get(f"medusa L={r['window']}")
                when = " (recorded when cached)" if c and c["cached"] else ""
                cost = "-" if c is None else f"{c['seconds']:.0f} s{when}"
            elif r["drafter"] == "independent":
                net = costs.get("draft network")
                cost = f"{net['seconds']:.0f} s (draft network)" if net else "none (the problem's analytic draft chain)"
            else:
                cost = "none"
            out.append(f"| {p} | {r['drafter']} | {r['acceptance_rate']:.3f} | {r['nfe_ratio']:.2f} | {cost} |")
    out += [""]

    lang = res["speed"].get("langevin-model", [])
    lv = [r for r in res["exactness"] if r["problem"] == "langevin-model"]
    out += ["## 4. Langevin acceleration", "",
            f"Unadjusted Langevin on the numpyro logistic-regression posterior (`langevin-model`, d = "
            f"{res['dims']['langevin-model']}, {res['steps']['langevin-model']} steps): the rows for it in the tables "
            "above."]
    b = _best(lang, "frozen-drift")
    if b:
        verdicts = ", ".join(f"{r['drafter']} {r['verdict']}" for r in lv)
        out.append(f"Best nfe_ratio of the frozen-drift drafter: {b['nfe_ratio']:.2f} at window {b['window']}; "
                   f"verdicts: {verdicts}.")
    return "\n".join(out) + "\n"


def run(s: Settings, out: Path, seed: int, command: str) -> dict:
    import os

    import torch

    t0 = time.perf_counter()
    figdir = out / "figures"
    figdir.mkdir(parents=True, exist_ok=True)
    all_setups = setups(s)
    res = {"command": command, "settings": dataclasses.asdict(s), "seed": seed, "threads": torch.get_num_threads(),
           "machine": f"{platform.machine()} CPU ({os.cpu_count()} cores), torch {torch.__version__}",
           "cuda": torch.cuda.get_device_name(0) + " present but not used" if torch.cuda.is_available() else None,
           "steps": {k: v.steps for k, v in all_setups.items()}, "dims": {k: v.dim for k, v in all_setups.items()}}
    _log("training costs (trains the digits networks and medusa heads unless cached)")
    res["training"] = {k: training_costs(v, s) for k, v in all_setups.items()}
    _log("speed")
    res["speed"] = {k: speed(v, s, seed) for k, v in all_setups.items()}
    _log("wall clock")
    res["wall"] = {k: wall_clock(all_setups[k], s, seed) for k in ("digits", "gmm")}
    _log("exactness")
    res["exactness"] = exactness(all_setups, s, seed)
    _log("quality")
    res["quality"], grids = quality(all_setups["digits"], s, seed)
    save_grid(figdir / "digits_samples.png", grids)
    res["seconds"] = time.perf_counter() - t0
    res["figures"] = figures(res, figdir)
    (out / "results.json").write_text(json.dumps(res, indent=2) + "\n")
    (out / "RESULTS.md").write_text(markdown(res, "figures"))
    return res


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=HERE, help="folder for RESULTS.md, results.json and figures/")
    ap.add_argument("--smoke", action="store_true", help="tiny sizes and the quick digits models (CI)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--render", action="store_true",
                    help="measure nothing: rewrite RESULTS.md and the figures from --out/results.json (after an edit "
                         "of the page's text; the page keeps the command that measured the numbers)")
    args = ap.parse_args(argv)
    if args.render:
        res = json.loads((args.out / "results.json").read_text())
        figures(res, args.out / "figures")
        (args.out / "RESULTS.md").write_text(markdown(res, "figures"))
        print(f"rewrote {args.out / 'RESULTS.md'} from {args.out / 'results.json'}")
        return 0
    command = "python paper_repro/claims.py " + " ".join(argv if argv is not None else sys.argv[1:])
    res = run(SMOKE if args.smoke else Settings(), args.out, args.seed, command.strip())
    fails = [r for r in res["exactness"] if r["verdict"] != "pass"]
    print(f"wrote {args.out / 'RESULTS.md'} ({res['seconds']:.0f} s); {len(fails)} exactness checks failed")
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
