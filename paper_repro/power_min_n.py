"""The min-n study of ``power.py`` (each mutant's smallest n for 95% detection) and the comparison of two of its
runs (the terminal battery next to the innovation check, same problem, alpha, configurations and mutants).

    python paper_repro/power.py compare --inputs TERMINAL.json,INNOVATIONS.json --markdown PAGE.md
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from scipy import stats

from specverify.bridge import STRESS_WINDOW

CHECK_CONFIGS = {"natural": ("frozen-denoiser", 8), "stress": ("stress", STRESS_WINDOW)}  # min-n --check: drafter, L


def _ci95(k: int, n: int) -> tuple[float, float]:
    """The exact (Clopper-Pearson) 95% interval of k detections in n."""
    ci = stats.binomtest(k, n).proportion_ci(0.95, method="exact")
    return ci.low, ci.high


def _bar(it, desc):
    if not sys.stderr.isatty():
        return it
    from tqdm.auto import tqdm

    return tqdm(it, desc=desc)


def _smallest_n(detect, grid: list[int], replicates: int, labels: tuple = (), curtail: bool = False) -> dict:
    """The first n of ``grid`` at which ``detect(n, seed)`` (the labels of what caught the mutant; empty: missed)
    is non-empty for at least 95% of the seeds 1000, 1001, ...; each n tried, with its exact 95% interval (and
    per label, how many seeds it caught). ``curtail``: an n stops at the miss that leaves it unable to reach 95%
    (the same smallest n; that n's count is then over the seeds run)."""
    need = -(-19 * replicates // 20)  # at least 95% of the replicates
    history = []
    for n in grid:
        caught = []
        for s in range(replicates):
            caught.append(detect(n, 1000 + s))
            if curtail and sum(not c for c in caught) > replicates - need:
                break
        k, runs = sum(bool(c) for c in caught), len(caught)
        lo, hi = _ci95(k, runs)
        history.append({"n": n, "detected": k, "replicates": runs, "ci95": [float(lo), float(hi)],
                        **{f"caught_by_{x}": sum(x in c for c in caught) for x in labels}})
        if k >= need:
            return {"min_n": n, "history": history}
    return {"min_n": None, "history": history}


def _verdict_row(args, setup, ref, target, name: str) -> dict:
    """One mutant through the `specverify mutants` verdict (default and stress drafters, alpha / 2 each)."""
    from specverify.bridge import Ours, Plan, TrajectoryOptions, mutant_verdict

    def detect(n, seed):
        return mutant_verdict(setup, ref, Ours(mutant=name), Plan(args.alpha, n=n, seed=seed),
                              TrajectoryOptions(target=target))["caught_by"]

    row = _smallest_n(detect, args.grid, args.replicates, ("default", "stress"), args.curtail)
    last = row["history"][-1]
    print(f"  {name:<24} min n={row['min_n']}  ({last['detected']}/{last['replicates']} at n={last['n']}; "
          f"default {last['caught_by_default']}, stress {last['caught_by_stress']})", flush=True)
    return row


def _check_row(args, setup, ref, target, name: str) -> dict:
    """One mutant, each configuration alone at alpha, through one check (``--check``)."""
    from specverify.bridge import Ours, Plan, TrajectoryOptions, check, make_candidate

    row = {}
    for c in args.config_list:
        drafter, window = CHECK_CONFIGS[c]
        cand = make_candidate(setup, Ours(drafter=drafter, window=window, mutant=name),
                              path=args.check == "innovations")

        def detect(n, seed, cand=cand, window=window):
            paths = TrajectoryOptions(args.check == "terminal", target, lags=window + 1)
            rep = check(setup, cand, ref, Plan(args.alpha, n=n, seed=seed), paths=paths)
            return ["check"] if rep.verdict == "fail" else []

        row[c] = _smallest_n(detect, args.grid, args.replicates, curtail=args.curtail)
    print(f"  {name:<24} " + "  ".join(f"{c}: min n={row[c]['min_n']}" for c in args.config_list), flush=True)
    return row


def _default_n(args, setup, ref, target) -> dict:
    """The check's own n at --alpha per configuration (beta 0.05; the problem's delta, or epsilon 0.05)."""
    from specverify.harness.plan import Plan
    from specverify.harness.suite import terminal_plan
    from specverify.harness.trajectory_check import transition_plan

    if args.check == "innovations":
        return {c: transition_plan(target, alpha=args.alpha, beta=0.05, delta=setup.entry.delta, lags=w + 1,
                        counts=True)["n_needed"] for c, (_, w) in ((c, CHECK_CONFIGS[c]) for c in args.config_list)}
    kind = "exact" if ref[0] == "law" else "sampler"
    n = terminal_plan(kind, setup.dim, Plan(args.alpha), counts=True)["n_needed"]
    return {c: n for c in args.config_list}


def min_n(args) -> dict:
    from specverify.bridge import make_reference, make_setup, make_target
    from specverify.sampler.mutants import MUTANTS

    setup = make_setup(args.problem, dim=args.dim, steps=args.steps)
    ref = make_reference(setup) if args.check != "innovations" else None
    target = make_target(setup)  # the judge's transitions, compiled once
    args.grid = [args.n_start * 2**k for k in range(args.max_doublings + 1)]
    res = {"study": "min-n", "check": args.check, "problem": args.problem, "dim": args.dim, "steps": args.steps,
           "alpha": args.alpha, "replicates": args.replicates, "grid": args.grid, "curtail": args.curtail,
           "command": args.command, "rows": []}
    if args.check:
        res |= {"configs": {c: {"drafter": CHECK_CONFIGS[c][0], "window": CHECK_CONFIGS[c][1]}
                            for c in args.config_list}, "default_n": _default_n(args, setup, ref, target)}
    t0 = time.perf_counter()
    for name in _bar(list(MUTANTS), "mutants"):
        one = _check_row if args.check else _verdict_row
        res["rows"].append({"name": name, "description": MUTANTS[name].description,
                            **one(args, setup, ref, target, name)})
        res["seconds"] = time.perf_counter() - t0
        if args.json:  # after every mutant, so that a long run stopped early keeps what it measured
            args.json.write_text(json.dumps(res, indent=2) + "\n")
    return res


_CHECKS = {"innovations": ("the innovation check", "trajectories", "its trajectories"),
           "terminal": ("the terminal battery", "samples", "its final samples against the problem's reference")}


def _capped(res: dict) -> str:
    """A sentence when the grid ends below the check's default n (the run was capped by --max-doublings)."""
    below = {c: n for c, n in res["default_n"].items() if res["grid"][-1] < n}
    if not below:
        return ""
    return (f" The grid ends at {res['grid'][-1]}, below the check's default n ("
            + ", ".join(f"{c} {n}" for c, n in below.items()) + "), capped by --max-doublings to bound the run's "
            f"time: a mutant shown '> {res['grid'][-1]}' was not detected within the grid, which says nothing of "
            f"its detection at the default n.")


def _curtailed(res: dict) -> str:
    if not res.get("curtail"):
        return ""
    r = res["replicates"]
    return (f" Curtailed (--curtail): an n stops at the miss that leaves it unable to reach {-(-19 * r // 20)} of "
            f"{r} (the seeds run in order from 1000), so an n below the smallest shows its count over the seeds it "
            f"ran; the smallest n is the one the full count gives, and its count is over all {r} seeds.")


def _check_markdown(res: dict, head: list[str]) -> str:
    what, unit, judged = _CHECKS[res["check"]]
    grid, configs = res["grid"], res["configs"]
    out = [f"# Smallest n for 95% detection by {what}: {res['problem']} d={res['dim']}, {res['steps']} steps, "
           f"alpha = {res['alpha']}", "", *head,
           f"Each mutant is checked by {what} on {judged}, each drafter configuration alone at alpha = "
           f"{res['alpha']}; n counts {unit}; {res['replicates']} seeds per n on the grid {grid[0]} x 2^k up to "
           f"{grid[-1]}; 'smallest n' is the first n where at least 95% of the seeds reject ('> {grid[-1]}': not "
           f"detected within the grid); 'detected' is at the last n tried, with its exact 95% interval. The check's "
           f"default n at this alpha: " + ", ".join(f"{c} {n}" for c, n in res["default_n"].items())
           + f". ({res['seconds']:.0f} s in all.)" + _capped(res) + _curtailed(res), "",
           "| mutant | bug | " + " | ".join(f"{c} ({v['drafter']}, L={v['window']}): smallest n | detected"
                                           for c, v in configs.items()) + " |",
           "|---|---|" + "---|---|" * len(configs)]
    for r in res["rows"]:
        cells = []
        for c in configs:
            last = r[c]["history"][-1]
            cells += [str(r[c]["min_n"] or f"> {last['n']}"),
                      f"{last['detected']}/{last['replicates']} [{last['ci95'][0]:.2f}, {last['ci95'][1]:.2f}]"]
        out.append(f"| {r['name']} | {r['description']} | " + " | ".join(cells) + " |")
    return "\n".join(out) + "\n"


def min_n_markdown(res: dict, head: list[str]) -> str:
    """The min-n page: one check's table (``--check``) or the `specverify mutants` verdict's."""
    if res.get("check"):
        return _check_markdown(res, head)
    out = [f"# Smallest n at which each mutant is caught with probability 0.95: {res['problem']} d={res['dim']}, "
           f"{res['steps']} steps", "", *head,
           f"Each mutant runs through the `specverify mutants` verdict (frozen-denoiser L=8 and the stress drafter, "
           f"alpha / 2 each, alpha = {res['alpha']}) at n = 100, 200, 400, ... with {res['replicates']} seeds per n; "
           f"the table gives the first n at which at least 95% of the seeds detect it, the detections there with "
           f"their exact 95% interval, and how many seeds each configuration caught (the stress configuration "
           f"runs only where the default one did not reject). The verdict judges the mutants' trajectories "
           f"(the transition-level check, `theory/innovations.md`), so n counts trajectories; `theory/min_n.md` "
           f"measured the same study with the terminal battery on final samples. ({res['seconds']:.0f} s in all.)",
           "", "| mutant | smallest n | detected | 95% interval | by default config | by stress config |",
           "|---|---|---|---|---|---|"]
    for r in res["rows"]:
        h = r["history"][-1]
        min_n = r["min_n"] if r["min_n"] else f"> {h['n']}"
        out.append(f"| {r['name']} | {min_n} | {h['detected']}/{h['replicates']} "
                   f"| [{h['ci95'][0]:.2f}, {h['ci95'][1]:.2f}] | {h['caught_by_default']} | {h['caught_by_stress']} |")
    return "\n".join(out) + "\n"


def compare(args) -> dict:
    """Two finished ``min-n --check`` runs (their JSON files, --inputs) on the same problem, alpha, replicates and
    configurations, one per check, compared on the mutants both measured; nothing is measured here."""
    runs = [json.loads(Path(f).read_text()) for f in (args.inputs or "").split(",") if f]
    if len(runs) != 2 or any(not r.get("check") for r in runs) or runs[0]["check"] == runs[1]["check"]:
        raise ValueError("compare takes --inputs A.json,B.json: two `power.py min-n --check` runs, one terminal "
                         "and one innovations")
    same = ("problem", "dim", "steps", "alpha", "replicates", "configs")
    names = [[r["name"] for r in run["rows"]] for run in runs]
    both = [m for m in names[0] if m in names[1]]
    differ = [k for k in same if runs[0][k] != runs[1][k]]
    if differ or not both:
        raise ValueError(f"the two runs differ in {differ or 'every mutant'}: compare runs of the same problem, "
                         "alpha, replicates and configurations that share mutants")
    only = {r["check"]: [m for m in ns if m not in both] for r, ns in zip(runs, names, strict=True)}
    return {"study": "compare", "runs": {r["check"]: r for r in runs}, "mutants": both, "only": only}


def _smallest(row: dict) -> tuple[str, int, bool]:
    """The smallest n as printed, the n it stands for, and whether it was found within the grid."""
    last = row["history"][-1]["n"]
    return (str(row["min_n"]), row["min_n"], True) if row["min_n"] else (f"> {last}", last, False)


def _ratio(term: dict, inn: dict, floors: tuple[int, int]) -> str:
    """Terminal n over innovations n: a bound where either was not found within its grid; '*' where either was
    found at its grid's first n (``floors``), below which it was not tried."""
    (_, a, fa), (_, b, fb) = _smallest(term), _smallest(inn)
    mark = "*" if term["min_n"] == floors[0] or inn["min_n"] == floors[1] else ""
    if fa and fb:
        return f"{a / b:.3g}{mark}"
    if not fb:
        return "-" if not fa else f"< {a / b:.3g}{mark}"
    return f"> {a / b:.3g}{mark}"


def compare_markdown(res: dict, head: list[str]) -> str:
    term, inn = res["runs"]["terminal"], res["runs"]["innovations"]
    configs = term["configs"]
    out = [f"# Smallest n for 95% detection, terminal battery next to innovation check: {term['problem']} "
           f"d={term['dim']}, {term['steps']} steps, alpha = {term['alpha']}", "", *head,
           "Nothing is measured by this command: it reads the two runs' JSON files, each measured by:", "",
           f"    {term['command']}", f"    {inn['command']}", "",
           f"Per mutant and drafter configuration, the first n on each run's grid (terminal: {term['grid'][0]} x "
           f"2^k up to {term['grid'][-1]}, n samples; innovations: {inn['grid'][0]} x 2^k up to {inn['grid'][-1]}, "
           f"n trajectories) at which at least 95% of {term['replicates']} seeds reject, each configuration alone "
           f"at alpha = {term['alpha']}; '> n': not detected within the grid. Ratio: terminal n / innovations n "
           f"(a bound where one side was not found; both grids double, so a ratio is known to a factor of about 2 "
           f"either way); '*': one side was found at its grid's first n (terminal {term['grid'][0]}, "
           f"innovations {inn['grid'][0]}), below which it was not tried, so its smallest n is at most that and "
           f"the ratio only a bound (where both sides are at their first n, the ratio reflects where the grids "
           f"start, not the checks). Default n at this alpha: terminal "
           + ", ".join(f"{c} {n}" for c, n in term["default_n"].items()) + "; innovations "
           + ", ".join(f"{c} {n}" for c, n in inn["default_n"].items()) + ".", "",
           "| mutant | " + " | ".join(f"{c} ({v['drafter']}, L={v['window']}): terminal | innovations | ratio"
                                     for c, v in configs.items()) + " |",
           "|---|" + "---|---|---|" * len(configs)]
    rows = [{r["name"]: r for r in run["rows"]} for run in (term, inn)]
    for name in res["mutants"]:
        rt, ri = rows[0][name], rows[1][name]
        floors = (term["grid"][0], inn["grid"][0])
        cells = [f"{_smallest(rt[c])[0]} | {_smallest(ri[c])[0]} | {_ratio(rt[c], ri[c], floors)}" for c in configs]
        out.append(f"| {name} | " + " | ".join(cells) + " |")
    only = [f"{check} run only: {', '.join(ms)}" for check, ms in res["only"].items() if ms]
    if only:
        out += ["", "Mutants measured by one run only (not compared): " + "; ".join(only) + "."]
    return "\n".join(out) + "\n"
