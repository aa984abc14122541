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
"""

import argparse
import dataclasses
import importlib.util
import json
import platform
import sys
import time
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).resolve().parent
DIFFUSION_DRAFTERS = ("frozen-denoiser", "frozen-drift", "independent", "medusa")
LANGEVIN_DRAFTERS = ("frozen-drift", "independent")  # a Langevin chain has no denoiser to freeze


@dataclasses.dataclass(frozen=True)
class Settings:
    digits_config: str = "full"
    digits_steps: int = 250  # frozen-denoiser on digits passes nfe_ratio 2 from about 250 steps (window 8)
    gmm_steps: int = 100
    langevin_steps: int = 200
    langevin_dim: int = 31  # the posterior's full size (`specverify problems`: 1..31)
    windows: tuple = (2, 4, 8, 16)
    medusa_windows: tuple = (4, 8)  # heads are trained per window
    nfe_n: int = 500
    wall_batches: tuple = (1, 256)
    repeats: int = 3
    check_window: int = 8
    family_alpha: float = 0.05
    beta: float = 0.05
    epsilon: tuple = (("digits", 0.1), ("gmm", 0.05), ("langevin-model", 0.1))
    check_n: int | None = None  # None: from alpha, beta, epsilon
    quality_n: int = 297  # the held-out digits
    quality_seeds: int = 5


SMOKE = Settings(digits_config="quick", digits_steps=20, gmm_steps=20, langevin_steps=20, windows=(2, 4),
                 medusa_windows=(4,), nfe_n=50, wall_batches=(1,), repeats=1, check_window=4, check_n=200,
                 quality_n=100, quality_seeds=2)


def _sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def setups(s: Settings) -> dict:
    from specverify.bridge import make_setup

    return {"digits": make_setup("digits", steps=s.digits_steps, options={"config": s.digits_config}),
            "gmm": make_setup("gmm", steps=s.gmm_steps),
            "langevin-model": make_setup("langevin-model", dim=s.langevin_dim, steps=s.langevin_steps)}


def drafters_for(name: str) -> tuple:
    return LANGEVIN_DRAFTERS if name.startswith("langevin") else DIFFUSION_DRAFTERS


def training_costs(setup, s: Settings) -> dict:
    """Seconds to build each trained drafter (trains now unless cached; the cache flag says which)."""
    from specverify.sampler.drafters import medusa

    out = {}
    if "medusa" in drafters_for(setup.name):
        for w in s.medusa_windows:
            heads = medusa.load_or_train(setup.chain(), w, key=setup.key)
            out[f"medusa L={w}"] = dict(heads.fit_info)
    if setup.name == "digits":
        for k, info in setup.problem.training.items():
            out[f"{k} network"] = {"seconds": info["seconds"], "cached": info["cached"]}
    return out


def speed(setup, s: Settings, seed: int) -> list[dict]:
    """`specverify accept` rows: acceptance, rounds and nfe_ratio next to their predictions."""
    from specverify import study

    rows = []
    for d in drafters_for(setup.name):
        windows = s.medusa_windows if d == "medusa" else s.windows
        rows += study.run_study(setup, [d], windows, n=s.nfe_n, seed=seed)
        _log(f"  speed {setup.name}: {d} done")
    return [{k: r[k] for k in ("drafter", "window", "n", "acceptance_rate", "predicted_acceptance_rate", "ci_low",
                               "ci_high", "rounds_mean", "predicted_rounds_mean", "nfe_ratio", "predicted_nfe_ratio",
                               "seconds")} for r in rows]


def wall_clock(setup, s: Settings, seed: int) -> list[dict]:
    """Plain against speculative at the check window, timed side by side (median of interleaved repeats)."""
    import torch

    from specverify.bridge import make_builtin_drafter

    bench = _sibling("bench_sampler")
    configs = [(d, s.check_window) for d in drafters_for(setup.name)]
    drafters = {(d, w): make_builtin_drafter(setup, d, w) for d, w in configs}
    args = SimpleNamespace(seed=seed, repeats=s.repeats)
    rows = []
    for batch in s.wall_batches:
        rows += bench.bench_one(setup.name, setup.chain(), batch, configs, args, torch.device("cpu"), torch.float32,
                                drafters=drafters)
    keep = ("model", "steps", "batch", "drafter", "window", "plain_s", "spec_s", "wall_ratio", "nfe_ratio",
            "call_ratio", "round_cost")
    return [{k: r[k] for k in keep} | {"spread": max(max(t) / min(t) for t in (r["plain_times_s"], r["spec_times_s"]))}
            for r in rows]


class _Memo:
    """A reference sampler called once per (n, seed): every check of a problem reuses its samples."""

    def __init__(self, fn):
        self.fn, self.cache = fn, {}

    def __call__(self, n, seed):
        if (n, seed) not in self.cache:
            self.cache[(n, seed)] = self.fn(n, seed)
        return self.cache[(n, seed)]


def exactness(all_setups: dict, s: Settings, seed: int) -> list[dict]:
    """`specverify check` of every drafter on every problem; alpha = family_alpha / number of checks."""
    from specverify.bridge import check, make_candidate, make_reference, reference_name

    plan = [(name, d) for name, setup in all_setups.items() for d in drafters_for(name)]
    alpha = s.family_alpha / len(plan)
    eps = dict(s.epsilon)
    refs = {}
    rows = []
    for name, d in plan:
        setup = all_setups[name]
        if name not in refs:
            kind, ref = make_reference(setup)
            refs[name] = (kind, _Memo(ref) if kind == "sampler" else ref)
        cand = make_candidate(setup, drafter=d, window=s.check_window)
        rep = check(setup, cand, refs[name], alpha=alpha, beta=s.beta, epsilon=eps[name], n=s.check_n, seed=seed)
        acc = rep.acceptance or {}
        rows.append({"problem": name, "drafter": d, "window": s.check_window, "verdict": rep.verdict, "n": rep.n,
                     "alpha": alpha, "beta": s.beta, "epsilon": eps[name], "min_detectable_ks": rep.min_detectable_ks,
                     "reference": reference_name(setup),
                     "tests": len(rep.tests), "min_adjusted_pvalue": min(t["adjusted_pvalue"] for t in rep.tests),
                     "acceptance_rate": acc.get("acceptance_rate"),
                     "predicted_acceptance_rate": acc.get("predicted_acceptance_rate"),
                     "power_ok": not rep.warnings, "seconds": rep.seconds})
        _log(f"  check {name} {d}: {rep.verdict} (n={rep.n}, {rep.seconds:.0f} s)")
    return rows


QUALITY_KEYS = ("mmd_statistic", "frechet_proba", "classifier_confidence")


def quality(setup, s: Settings, seed: int, figdir: Path) -> list[dict]:
    """Sample quality on digits over ``quality_seeds`` seeds: plain and speculative samples against the held-out
    digits (mean and standard deviation across seeds), with the training digits (floor) and a Gaussian fit."""
    import numpy as np

    from specverify.bridge import make_candidate

    td = _sibling("train_digits")
    n = s.quality_n
    samplers = {"plain": make_candidate(setup, sampler="plain")}
    samplers |= {f"speculative {d}": make_candidate(setup, drafter=d, window=s.check_window)
                 for d in DIFFUSION_DRAFTERS}
    per = {label: [] for label in [*samplers, "training digits (floor)", "Gaussian fit (baseline)"]}
    grids = {}
    for r in range(s.quality_seeds):
        for label, cand in samplers.items():
            out = cand(n, seed + r)
            x = np.asarray(out["samples"] if isinstance(out, dict) else out).reshape(n, 1, 8, 8)
            grids.setdefault(label, x)
            q = td.quality(x, seed + r)
            per[label].append(q["model"])
        per["training digits (floor)"].append(q["train_floor"])
        per["Gaussian fit (baseline)"].append(q["gaussian_baseline"])
    rows = []
    for label, qs in per.items():
        row = {"sampler": label, "n": n, "seeds": len(qs)}
        for key in QUALITY_KEYS:
            v = np.array([q[key] for q in qs])
            row[key], row[f"{key}_sd"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        row["mmd_pvalue_median"] = float(np.median([q["mmd_pvalue"] for q in qs]))
        row["classes_min"] = min(q["classes"] for q in qs)
        rows.append(row)
    shown = {k: grids[k] for k in ("plain", "speculative frozen-denoiser")}
    td.save_grid(figdir / "digits_samples.png", shown | {"held-out digits": setup.problem.data_sample(min(n, 100))})
    return rows


def figures(res: dict, figdir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    probs = [p for p in res["speed"] if res["speed"][p]]
    fig, axes = plt.subplots(1, len(probs), figsize=(4.5 * len(probs), 3.6), squeeze=False)
    for ax, p in zip(axes[0], probs, strict=True):
        rows = res["speed"][p]
        for d in dict.fromkeys(r["drafter"] for r in rows):
            sel = [r for r in rows if r["drafter"] == d]
            line, = ax.plot([r["window"] for r in sel], [r["nfe_ratio"] for r in sel], "o-", label=d)
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


def _best(rows, drafter):
    sel = [r for r in rows if r["drafter"] == drafter]
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
                f"nfe_ratio 2: {best['nfe_ratio']:.2f} at window {best['window']} (n = {best['n']}).", ""]
    verdicts = [r["verdict"] for r in res["exactness"]]
    out += [f"**Exactness:** {verdicts.count('pass')} of {len(verdicts)} checks pass "
            f"(family-wise alpha {st['family_alpha']}).", ""]

    out += ["## 1. Halving the number of function evaluations", "",
            "nfe_ratio = steps / mean sequential target rounds per trajectory (a round verifies a whole window in one "
            "parallel call). Predicted: the dynamic program of `theory/rounds.md` fed with the logged acceptance "
            "probabilities. Acceptance with its 99% Clopper-Pearson interval.", ""]
    for p, rows in res["speed"].items():
        out += [f"### {p} ({res['steps'][p]} steps, n = {rows[0]['n']} per row)", "",
                "| drafter | L | acceptance [99% CP] | predicted | rounds | nfe_ratio | predicted |",
                "|---|---|---|---|---|---|---|"]
        out += [f"| {r['drafter']} | {r['window']} | {r['acceptance_rate']:.3f} [{r['ci_low']:.3f}, {r['ci_high']:.3f}]"
                f" | {r['predicted_acceptance_rate']:.3f} | {r['rounds_mean']:.1f} | **{r['nfe_ratio']:.2f}** | "
                f"{r['predicted_nfe_ratio']:.2f} |" for r in rows]
        out.append("")
    out += [f"![nfe_ratio]({figrel}/nfe_ratio.png)", "", "### Wall clock, side by side", "",
            f"Plain against speculative at window {st['check_window']}, float32, on this CPU "
            f"({res['threads']} torch threads); median of {st['repeats']} interleaved repeats. wall ratio = plain / "
            "speculative (> 1: speculative is faster) = call ratio / round cost, where call ratio = steps / rounds of "
            "the whole batch (it waits for its slowest sample; at batch 1 it is the nfe_ratio) and round cost = "
            "seconds per speculative round / seconds per plain step. " + _wall_sentence(res), "",
            "| problem | steps | batch | drafter | plain s | speculative s | wall ratio | nfe_ratio | call ratio | "
            "round cost |", "|---|---|---|---|---|---|---|---|---|---|"]
    out += [f"| {r['model']} | {r['steps']} | {r['batch']} | {r['drafter']} | {r['plain_s']:.3f} | {r['spec_s']:.3f} "
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
            f"At window {st['check_window']}: the frozen drafters need no training; the independent drafter needs a "
            "second network (and calls it at every drafted step), the Medusa-like heads need training on target "
            "rollouts (the time includes generating them). Training seconds as measured when the model was built.", "",
            "| problem | drafter | acceptance | nfe_ratio | training |", "|---|---|---|---|---|"]
    for p, rows in res["speed"].items():
        costs = res["training"].get(p, {})
        for r in (r for r in rows if r["window"] == st["check_window"]):
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
    res["quality"] = quality(all_setups["digits"], s, seed, figdir)
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
