"""The `specverify` command.

Exit codes (:func:`exit_code`, the one map): 0 success (for `check`: exactness not rejected), 1 exactness
rejected, 2 anything else: a bad argument, a broken candidate, too few samples, or an unexpected exception. An
error prints one line ``specverify <command>: error: <what to do>`` (the traceback too with ``--debug``), and
`check`, `mutants` and `accept` still write their --json / --markdown report with ``"verdict": "error"``.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
import traceback
from pathlib import Path

from specverify.errors import SampleSizeError, SpecverifyError, UsageError

__all__ = ["EXIT_CODES", "exit_code", "main"]

EXIT_CODES = {"pass": 0, "fail": 1, "error": 2}  # a command's outcome -> the process's exit status


def _add_problem_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", default="gmm", help="built-in problem (see `specverify problems`)")
    p.add_argument("--dim", type=int, default=None, help="data dimension d (default 2; digits: its fixed 64)")
    p.add_argument("--steps", type=int, default=100, help="number of chain steps")
    p.add_argument("--chain", choices=("ddpm", "ddim"), default="ddpm", help="diffusion sampler of the chain")
    p.add_argument("--eta", type=float, default=1.0, help="DDIM eta (> 0)")
    p.add_argument("--schedule", choices=("linear", "cosine"), default="linear", help="beta schedule")
    p.add_argument("--prediction", choices=("eps", "x0", "v"), default="eps", help="model parametrisation")
    p.add_argument("--components", type=int, default=8, help="gmm: number of mixture components")
    p.add_argument("--step-size", type=float, default=None, help="Langevin problems: step size h")


class _ArgumentError(UsageError):
    """argparse could not read the command line (``prog``: the command it was reading)."""

    def __init__(self, message: str, prog: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so that main() prints one line and still writes the report."""

    def error(self, message):
        raise _ArgumentError(f"{message}; see `{self.prog} --help`", self.prog)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="specverify", description="Verify speculative sampling of diffusion models.")
    parser.add_argument("--debug", action="store_true", help="on an error, print the traceback too")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser = _with_debug(sub.add_parser)

    s = sub.add_parser("sample", help="run the plain or speculative sampler on a built-in problem")
    _add_problem_args(s)
    s.add_argument("--sampler", choices=("plain", "speculative"), default="speculative")
    s.add_argument("--drafter", default="frozen-denoiser", help="drafter (see `specverify drafters`)")
    s.add_argument("--window", type=int, default=8, help="drafted steps per window L (>= 1)")
    s.add_argument("--n", type=int, default=1000, help="number of samples")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu", help="cpu or cuda")
    s.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    s.add_argument("--max-batch", type=int, default=None,
                   help="speculative: at most this many samples at once (default: bounded by memory)")
    s.add_argument("--out", type=Path, help="write the samples here (.npz, key 'samples')")
    s.add_argument("--json", type=Path, help="write the run's statistics here as JSON")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on when stderr is a terminal)")

    c = sub.add_parser("check", help="check our sampler's exactness on a built-in problem (exit 0 pass, 1 fail)")
    _add_problem_args(c)
    c.add_argument("--sampler", choices=("plain", "speculative"), default="speculative")
    c.add_argument("--drafter", default="frozen-denoiser", help="drafter (see `specverify drafters`)")
    c.add_argument("--window", type=int, default=8, help="drafted steps per window L (>= 1)")
    c.add_argument("--n", type=int, default=None, help="samples (default: from --alpha, --beta, --epsilon)")
    c.add_argument("--alpha", type=float, default=0.01, help="family-wise false-alarm rate of the verdict")
    c.add_argument("--beta", type=float, default=0.05, help="miss rate at KS distance --epsilon (sizes n)")
    c.add_argument("--epsilon", type=float, default=0.05, help="smallest KS distance to detect (sizes n)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="cpu", help="cpu or cuda")
    c.add_argument("--mutant", default=None, help="check a known-broken sampler instead (specverify.sampler.mutants)")
    c.add_argument("--candidate", default=None, metavar="TARGET",
                   help="check a third-party sampler instead: package.module:attr or path/to/file.py:attr")
    c.add_argument("--contract", choices=("auto", "black-box", "chain", "kernel"), default="auto",
                   help="the candidate's contract: (n, seed), (view, n, seed), or a coupling (mean_p, mean_q, sigma, "
                        "z, u) / (mean_p, mean_q, sigma, seed); auto reads its signature")
    c.add_argument("--reference", default="exact", metavar="exact|plain|TARGET",
                   help="exact: the problem's exact law or JAX reference sampler; plain: our plain sampler on the "
                        "problem; or a black box reference(n, seed)")
    c.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="a candidate or reference call that runs longer is an error (exit 2); Unix only (SIGALRM)")
    c.add_argument("--allow-low-power", action="store_true",
                   help="accept a pass although n cannot deliver power 1 - beta at --epsilon (else exit 2)")
    c.add_argument("--json", type=Path, help="write the report here as JSON")
    c.add_argument("--markdown", type=Path, help="write the report here as Markdown")
    c.add_argument("--plots", type=Path, metavar="DIR", help="write PNG figures here")
    c.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on when stderr is a terminal)")

    m = sub.add_parser("mutants", help="run every known-broken sampler and the correct one through the suite")
    _add_problem_args(m)
    m.add_argument("--drafter", default="frozen-denoiser", help="drafter of the default configuration")
    m.add_argument("--window", type=int, default=8, help="window of the default configuration")
    m.add_argument("--stress-delta", type=float, default=1.2, help="stress drafter's shift (acceptance 2 Phi(-d/2))")
    m.add_argument("--n", type=int, default=None, help="samples per check (default: from alpha, beta, epsilon)")
    m.add_argument("--alpha", type=float, default=0.01, help="false-alarm rate of each sampler's verdict")
    m.add_argument("--beta", type=float, default=0.05)
    m.add_argument("--epsilon", type=float, default=0.05)
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--device", default="cpu")
    m.add_argument("--json", type=Path, help="write the kills report here as JSON")
    m.add_argument("--markdown", type=Path, help="write the kills report here as a Markdown table")

    a = sub.add_parser("accept", help="acceptance study: per drafter and window, measured next to predicted")
    _add_problem_args(a)
    a.add_argument("--drafters", default="frozen-drift,frozen-denoiser", help="comma-separated drafter names")
    a.add_argument("--windows", default="1,2,4,8,16", help="comma-separated windows L")
    a.add_argument("--n", type=int, default=1000, help="trajectories per (drafter, window)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--device", default="cpu")
    a.add_argument("--json", type=Path, help="write the rows here as JSON")
    a.add_argument("--markdown", type=Path, help="write the table here as Markdown")
    a.add_argument("--plots", type=Path, metavar="DIR", help="write PNG figures here")
    a.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)

    sub.add_parser("problems", help="list the built-in problems")
    sub.add_parser("drafters", help="list the drafters")
    return parser


def _with_debug(add_parser):
    """Each subcommand also takes --debug after its name (without overriding one given before it)."""
    def add(*a, **kw):
        p = add_parser(*a, **kw)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="on an error, print the "
                                                                                      "traceback too")
        return p

    return add


def _device(name: str):
    import torch

    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UsageError(f"--device {name!r} is not a device torch knows; use cpu or cuda") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    return dev


def build_problem(args):
    """The built-in problem named by the command line's problem options (a ``builtin.Setup``)."""
    from specverify.bridge import make_setup

    return make_setup(args.problem, dim=args.dim, steps=args.steps, chain=args.chain, eta=args.eta,
                      schedule=args.schedule, prediction=args.prediction, components=args.components,
                      step_size=args.step_size)


def _cmd_sample(args) -> int:
    import numpy as np
    import torch

    from specverify.bridge import make_builtin_drafter
    from specverify.sampler.speculative import plain_sample, speculative_sample

    device = _device(args.device)
    dtype = getattr(torch, args.dtype)
    setup = build_problem(args)
    chain = setup.chain()
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    run = dict(problem=args.problem, dim=args.dim, steps=args.steps, chain=args.chain, schedule=args.schedule,
               prediction=args.prediction, sampler=args.sampler, n=args.n, seed=args.seed, device=str(device),
               dtype=args.dtype)
    t0 = time.perf_counter()
    if args.sampler == "plain":
        x = plain_sample(chain, args.n, seed=args.seed, device=device, dtype=dtype, progress=progress)
        stats = dict(n_steps=chain.n_steps, rounds_mean=float(chain.n_steps), nfe_ratio=1.0,
                     target_evaluations=args.n * chain.n_steps, rounds_total=chain.n_steps)
    else:
        drafter = make_builtin_drafter(setup, args.drafter, args.window)
        x, st = speculative_sample(chain, drafter, args.n, window=args.window, seed=args.seed, device=device,
                                   dtype=dtype, max_batch=args.max_batch, progress=progress)
        stats = st.to_dict()
        run.update(drafter=args.drafter, window=args.window)
    if device.type == "cuda":
        torch.cuda.synchronize()
    stats["wall_seconds"] = time.perf_counter() - t0
    report = {**run, **stats}

    samples = x.detach().cpu().numpy()
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        np.savez(args.out, samples=samples)
    _write(args.json, json.dumps(report, indent=2) + "\n")
    _print_sample_report(report, samples)
    return "pass"


class _Stages:
    """A progress bar over the stages of a check; shown after 2 s, when stderr is a terminal or --progress."""

    def __init__(self, enabled: bool):
        self.bar = None
        if enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=3, desc="check", unit="stage", delay=2, leave=False)

    def wrap(self, fn, label: str):
        def call(n, seed):
            if self.bar is not None and n > 8:  # the 8-sample seed probe is not a stage
                self.bar.set_description(f"check: drawing {n} from the {label}")
            out = fn(n, seed)
            if self.bar is not None and n > 8:
                self.bar.update(1)
                self.bar.set_description("check: testing")
            return out

        return call

    def close(self):
        if self.bar is not None:
            self.bar.close()


def _check_reference(args, setup, device):
    """("law", law) or ("sampler", fn) and its description, from --reference."""
    from specverify.bridge import make_candidate, make_reference, reference_name

    if args.reference == "exact":
        return make_reference(setup, device=device), reference_name(setup)
    if args.reference == "plain":
        return ("sampler", make_candidate(setup, sampler="plain", device=device)), "plain sampler (ours)"
    from specverify.harness.adapters import detect_contract, load

    fn = load(args.reference)
    if detect_contract(fn) != "black-box":
        raise UsageError(f"--reference {args.reference} must be a black box reference(n, seed)")
    return ("sampler", fn), f"reference {args.reference}"


def _check_candidate(args, setup, device):
    from specverify.bridge import make_candidate

    if args.candidate is None:
        what = f"mutant {args.mutant}" if args.mutant else f"{args.sampler} sampler"
        return make_candidate(setup, sampler=args.sampler, drafter=args.drafter, window=args.window,
                              mutant=args.mutant, device=device), what
    from specverify.harness.adapters import chain_candidate, detect_contract, load

    if args.mutant:
        raise UsageError("--mutant applies to our sampler, not to --candidate")
    fn = load(args.candidate)
    contract = detect_contract(fn) if args.contract == "auto" else args.contract
    if contract == "chain":
        return chain_candidate(fn, setup.view()), f"{args.candidate} (chain level)"
    if contract == "kernel":
        raise UsageError(f"{args.candidate} is a coupling: the kernel-level check is chosen before this point")
    return fn, f"{args.candidate} (black box)"


def _cmd_check_kernel(args, fn, context) -> int:
    from specverify.harness.coupling_check import check_coupling
    from specverify.harness.report import markdown_kernel

    r = check_coupling(fn, n=args.n or 20000, alpha=args.alpha, seed=args.seed)
    out = {**context, **r}
    _write(args.json, json.dumps(out, indent=2) + "\n")
    _write(args.markdown, markdown_kernel(out, f"specverify check: coupling {args.candidate}"))
    print(f"{r['verdict'].upper()}: coupling {args.candidate} ({r['form']} form), n={r['n']} per case, "
          f"alpha={r['alpha']} (Holm over {len(r['tests'])} tests)")
    for e in r["exact"]:
        print(f"  exact d={e['dim']} |D|={e['distance']}: {e['flag_mismatches']} flag and {e['output_mismatches']} "
              f"output mismatches against the reflection coupling formula")
    for t in sorted(r["tests"], key=lambda t: t["adjusted_pvalue"])[:3]:
        print(f"  {t['name']:<30} p={t['pvalue']:.3g} adjusted p={t['adjusted_pvalue']:.3g}")
    print(f"  {r['seconds']:.1f} s")
    return r["verdict"]


def _write(path, text):
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def _context(args) -> dict:
    """What a report knows before the run: written alone (with the error) when the command stops early."""
    out = {"problem": args.problem, "dim": args.dim, "steps": args.steps}
    if args.command == "check":
        ours = args.sampler == "speculative" and not args.candidate
        out.update(candidate=args.candidate, reference_option=args.reference,
                   sampler=None if args.candidate else args.sampler, mutant=args.mutant,
                   drafter=args.drafter if ours else None, window=args.window if ours else None,
                   alpha=args.alpha, n=args.n, seed=args.seed)
    elif args.command == "mutants":
        out.update(alpha=args.alpha, n=args.n, seed=args.seed)
    else:
        out.update(n=args.n, seed=args.seed)
    return out


def _write_partial(args, error: str) -> None:
    """Write what is known when check, mutants or accept stops with an error: JSON and Markdown, verdict "error".
    A report that cannot be written is left out (its path was checked before the run; the error is the news)."""
    from specverify.harness.report import markdown

    partial = {**_context(args), "verdict": "error", "error": error}
    for path, text in ((args.json, lambda: json.dumps(partial, indent=2) + "\n"),
                       (args.markdown, lambda: markdown(partial, f"specverify {args.command}"))):
        try:
            _write(path, text())
        except Exception:  # noqa: BLE001, S110 - the error being reported matters more than its report
            pass


def _cmd_check(args) -> str:
    from specverify.bridge import check
    from specverify.harness.contracts import time_limit
    from specverify.harness.report import acceptance_line, markdown, plots

    context = _context(args)
    if args.candidate and args.contract in ("auto", "kernel"):
        from specverify.harness.adapters import detect_contract, load

        fn = load(args.candidate)
        if args.contract == "kernel" or detect_contract(fn) == "kernel":
            return _cmd_check_kernel(args, fn, context)
    stages = _Stages(sys.stderr.isatty() if args.progress is None else args.progress)
    try:
        device = _device(args.device)
        setup = build_problem(args)
        reference, ref_text = _check_reference(args, setup, device)
        candidate, what = _check_candidate(args, setup, device)
        if reference[0] == "sampler":
            reference = ("sampler", stages.wrap(reference[1], "reference"))
        with time_limit(args.timeout):
            report = check(setup, stages.wrap(candidate, "candidate"), reference, alpha=args.alpha, beta=args.beta,
                           epsilon=args.epsilon, n=args.n, seed=args.seed, keep_samples=args.plots is not None)
    finally:
        stages.close()
    out = {**context, **report.to_dict()}
    low_power = bool(report.warnings) and report.verdict == "pass" and not args.allow_low_power
    out["power_ok"] = not report.warnings
    _write(args.json, json.dumps(out, indent=2) + "\n")
    _write(args.markdown, markdown(out, f"specverify check: {what}"))
    figures = plots(report, args.plots) if args.plots is not None else []
    for w in report.warnings:
        print(f"specverify check: warning: {w}", file=sys.stderr)
    print(f"{report.verdict.upper()}: {what} on {args.problem} d={args.dim} steps={args.steps} against the {ref_text}")
    print(f"  n={report.n} alpha={report.alpha} over {len(report.tests)} tests ({report.correction}); "
          f"min detectable KS distance={report.min_detectable_ks:.4f} (power {1 - report.beta})")
    if report.acceptance is not None:
        print(f"  {acceptance_line(report.acceptance)}")
    for t in sorted(report.tests, key=lambda t: (t["adjusted_pvalue"], t["pvalue"]))[:3]:
        print(f"  {t['name']:<30} p={t['pvalue']:.3g} adjusted p={t['adjusted_pvalue']:.3g}")
    if figures:
        print(f"  figures: {', '.join(str(f) for f in figures)}")
    print(f"  {report.seconds:.1f} s")
    if low_power:
        print("specverify check: error: the check passed, but n is too small for the declared power, so the pass "
              "is no evidence of exactness at --epsilon; use the n above (or leave --n out), or pass "
              "--allow-low-power", file=sys.stderr)
        return "error"
    return report.verdict


def _cmd_mutants(args) -> str:
    """Each sampler is checked under two configurations (the given drafter and the stress drafter) at alpha / 2
    each, so that its verdict has false-alarm rate <= alpha; a mutant is detected if either rejects."""
    from specverify.bridge import STRESS_WINDOW, make_reference, mutant_verdict
    from specverify.sampler.mutants import MUTANTS

    t0 = time.perf_counter()
    device = _device(args.device)
    setup = build_problem(args)
    reference = make_reference(setup)
    rows = []
    for name in [None, *MUTANTS]:
        row = mutant_verdict(setup, reference, name, drafter=args.drafter, window=args.window,
                             stress_delta=args.stress_delta, alpha=args.alpha, beta=args.beta, epsilon=args.epsilon,
                             n=args.n, seed=args.seed, device=device)
        rows.append(row)
        tests = "; ".join(f"{k}: {', '.join(c['rejected_tests'][:3])}{' ...' if len(c['rejected_tests']) > 3 else ''}"
                          for k, c in row["configurations"].items() if c["rejected_tests"])
        print(f"  {row['name']:<24}{'REJECTED' if row['detected'] else 'passes':<10}"
              f"min adjusted p={row['min_adjusted_pvalue']:.3g}  caught by: {tests or '-'}")
    correct, mutants = rows[0], rows[1:]
    out = {"problem": args.problem, "dim": args.dim, "steps": args.steps, "alpha": args.alpha,
           "configurations": {"default": {"drafter": args.drafter, "window": args.window},
                              "stress": {"drafter": "stress", "window": STRESS_WINDOW}},
           "mutants": mutants, "kill_rate": sum(m["detected"] for m in mutants) / len(mutants),
           "reference_false_alarm": correct["detected"], "correct": correct}
    _write(args.json, json.dumps(out, indent=2) + "\n")
    out["seconds"] = time.perf_counter() - t0
    _write(args.markdown, _kills_markdown(out, " ".join(sys.argv[1:]) if args.markdown else ""))
    print(f"kill rate {out['kill_rate']:.2f} ({sum(m['detected'] for m in mutants)}/{len(mutants)}); "
          f"correct sampler {'FALSELY REJECTED' if correct['detected'] else 'passes'}")
    return "fail" if correct["detected"] else "pass"


def _few(names: list, k: int = 4) -> str:
    if not names:
        return "-"
    return ", ".join(names[:k]) + (f" and {len(names) - k} more" if len(names) > k else "")


def _seconds(out: dict) -> str:
    return f" ({out['seconds']:.0f} s)" if "seconds" in out else ""


def _kills_markdown(out: dict, argv: str) -> str:
    from specverify.sampler.mutants import MUTANTS

    c = out["configurations"]
    lines = [f"# Mutants against the suite: {out['problem']} d={out['dim']}, {out['steps']} steps", "",
             f"Measured by `specverify {argv}`{_seconds(out)}. Each sampler is checked under the default "
             f"configuration ({c['default']['drafter']}, L={c['default']['window']}) and the stress configuration "
             f"(stress drafter, L={c['stress']['window']}) at alpha / 2 = {out['alpha'] / 2} each; detected if "
             f"either rejects.", "",
             f"Kill rate {out['kill_rate']:.2f}; correct sampler "
             f"{'FALSELY REJECTED' if out['reference_false_alarm'] else 'passes'}.", "",
             "| sampler | bug | detected | min adjusted p | n | rejected by (default) | rejected by (stress) |",
             "|---|---|---|---|---|---|---|"]
    for r in [out["correct"], *out["mutants"]]:
        cfg = r["configurations"]
        desc = MUTANTS[r["name"]].description if r["name"] in MUTANTS else "(none)"
        lines.append(f"| {r['name']} | {desc} | {'yes' if r['detected'] else 'no'} | {r['min_adjusted_pvalue']:.3g} "
                     f"| {cfg['default']['n']} | {_few(cfg['default']['rejected_tests'])} | "
                     f"{_few(cfg['stress']['rejected_tests'])} |")
    return "\n".join(lines) + "\n"


def _print_sample_report(r: dict, samples) -> None:
    head = f"{r['sampler']} sampling: problem={r['problem']} d={r['dim']} steps={r['steps']} n={r['n']}"
    if r["sampler"] == "speculative":
        head += f" drafter={r['drafter']} window={r['window']}"
    print(head)
    rows = [("n_steps", r["n_steps"]), ("rounds_mean", r["rounds_mean"]), ("nfe_ratio", r["nfe_ratio"]),
            ("target_evaluations", r["target_evaluations"])]
    if r["sampler"] == "speculative":
        rows += [("acceptance_rate", r["acceptance_rate"]), ("predicted_acceptance", r["predicted_acceptance_rate"]),
                 ("mean_accepted_length", r["mean_accepted_length"]), ("draft_evaluations", r["draft_evaluations"]),
                 ("warmup_evaluations", r["warmup_evaluations"])]
    rows += [("wall_seconds", r["wall_seconds"])]
    for name, v in rows:
        print(f"  {name:<22}{v:.4g}" if isinstance(v, float) else f"  {name:<22}{v}")
    if r["sampler"] == "speculative":
        acc, ver = r["accepted_per_position"], r["verified_per_position"]
        per = " ".join(f"{a / v:.2f}" if v else "-" for a, v in zip(acc, ver, strict=True))
        print(f"  {'acceptance/position':<22}{per}")
    print(f"  {'sample mean':<22}{samples.reshape(len(samples), -1).mean(0)[:4].round(4).tolist()}"
          f"{' ...' if samples[0].size > 4 else ''}")


def _accept_lists(args) -> tuple[list, list]:
    from specverify.sampler.drafters import DRAFTERS

    drafters = [d for d in args.drafters.split(",") if d]
    unknown = [d for d in drafters if d not in DRAFTERS]
    if unknown or not drafters:
        raise UsageError(f"unknown drafter(s) {unknown or args.drafters!r}; --drafters takes comma-separated names "
                         f"from {', '.join(DRAFTERS)}")
    try:
        windows = [int(w) for w in args.windows.split(",") if w]
    except ValueError:
        raise UsageError(f"--windows must be comma-separated integers, got {args.windows!r}") from None
    if not windows or min(windows) < 1:
        raise UsageError(f"--windows must be integers >= 1, got {args.windows!r}")
    return drafters, windows


def _cmd_accept(args) -> str:
    from specverify import study

    drafters, windows = _accept_lists(args)
    device = _device(args.device)
    setup = build_problem(args)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    rows = study.run_study(setup, drafters, windows, n=args.n, seed=args.seed, device=device, progress=progress)
    result = {"problem": args.problem, "dim": args.dim, "steps": args.steps, "n": args.n, "seed": args.seed,
              "confidence": study.CONFIDENCE, "rows": rows}
    _write(args.json, json.dumps(result, indent=2) + "\n")
    _write(args.markdown, study.markdown(result, "specverify " + " ".join(sys.argv[1:])))
    figures = study.plots(result, args.plots) if args.plots is not None else []
    print(f"acceptance study: {args.problem} d={args.dim} steps={args.steps} n={args.n} "
          f"(intervals {study.CONFIDENCE:.0%}; * = prediction outside)")
    print(f"  {'drafter':<16}{'L':>3}  {'acceptance':>10} {'pred':>7}  {'rounds':>8} {'pred':>8}  {'nfe':>6} "
          f"{'pred':>6}")
    for r in rows:
        print(f"  {r['drafter']:<16}{r['window']:>3}  {r['acceptance_rate']:>10.4f} "
              f"{r['predicted_acceptance_rate']:>7.4f}{' ' if r['acceptance_inside'] else '*'} "
              f"{r['rounds_mean']:>8.2f} {r['predicted_rounds_mean']:>8.2f}"
              f"{' ' if r['rounds_inside'] else '*'} {r['nfe_ratio']:>6.3f} {r['predicted_nfe_ratio']:>6.3f}")
    if figures:
        print(f"  figures: {', '.join(str(f) for f in figures)}")
    return "pass"


def _cmd_problems(args) -> str:
    from specverify.sampler.problems import PROBLEMS

    for name, cls in PROBLEMS.items():
        summary = (cls.__doc__ or "").strip().splitlines()[0].split(": ", 1)[-1]
        print(f"{name}  [exact law: {'yes' if cls.exact_law else 'no'}]\n    {summary}\n    reference: {cls.reference}")
        for p, desc in cls.params.items():
            print(f"      {p:<14}{desc}")
    return "pass"


def _cmd_drafters(args) -> str:
    from specverify.sampler.drafters import DRAFTERS

    for name, (cls, desc) in DRAFTERS.items():
        print(f"{name:<17}{desc}{'  [needs the target at the window start]' if cls.needs_anchor else ''}")
    return "pass"


# ---------------------------------------------------------------------------------------------------------
# Arguments checked before the run, and the one exit-code map


def _need(ok: bool, message: str, error: type[Exception] = UsageError) -> None:
    if not ok:
        raise error(message)


def _number(args, name: str, *, low: float = 0.0, high: float | None = None, what: str = "") -> None:
    """--name must be a finite number in (low, high) (high: none if None); None (not given) passes."""
    v = getattr(args, name.replace("-", "_"), None)
    if v is None:
        return
    bounds = f"in ({low:g}, {high:g})" if high is not None else f"> {low:g}"
    _need(math.isfinite(v) and v > low and (high is None or v < high),
          f"--{name} must be a finite number {bounds}{what}, got {v}")


def _writable(path: Path | None, flag: str, *, folder: bool = False) -> None:
    """A report path that cannot be written is an error now, not after the run."""
    if path is None:
        return
    target = path if folder else path.parent
    _need(folder or not path.is_dir(), f"{flag} {path} is a directory; give a file name, e.g. {path / 'report'}")
    _need(not target.exists() or target.is_dir(), f"{flag} {path}: {target} is a file, not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path} cannot be written ({e.strerror or e}); choose a writable path") from None


def _check_names(args) -> None:
    from specverify.bridge import entry
    from specverify.sampler.drafters import DRAFTERS
    from specverify.sampler.mutants import MUTANTS

    entry(args.problem)  # an unknown problem: UsageError naming the choices
    drafter = getattr(args, "drafter", None)
    _need(drafter is None or drafter in DRAFTERS,
          f"unknown drafter {drafter!r}; choose one of {', '.join(DRAFTERS)} (see `specverify drafters`)")
    mutant = getattr(args, "mutant", None)
    _need(mutant is None or mutant in MUTANTS,
          f"unknown mutant {mutant!r} for --mutant; choose one of {', '.join(MUTANTS)}")


def _check_args(args) -> None:
    """Every argument of a command that runs a problem, before anything long starts; messages name the fix."""
    from specverify.harness.stats import MIN_SAMPLES

    cmd = args.command
    _need(args.steps >= 1, f"--steps must be >= 1 (the number of chain steps), got {args.steps}")
    _need(args.dim is None or args.dim >= 1, f"--dim must be >= 1, got {args.dim}")
    _need(args.components >= 1, f"--components must be >= 1, got {args.components}")
    _number(args, "eta", what=" (DDIM's noise level; at most 1)")
    _number(args, "step-size", what=" (the Langevin step h)")
    _need(getattr(args, "window", 1) >= 1, f"--window must be >= 1 (drafted steps per window), got "
                                           f"{getattr(args, 'window', None)}")
    _need(getattr(args, "max_batch", None) is None or args.max_batch >= 1, "--max-batch must be >= 1")
    _need(args.seed >= 0, f"--seed must be >= 0, got {args.seed}")
    if cmd in ("check", "mutants"):
        for name, what in (("alpha", "false-alarm rate"), ("beta", "miss rate"), ("epsilon", "KS distance")):
            _number(args, name, high=1.0, what=f" (a {what})")
        _number(args, "timeout", what=" seconds")
        _number(args, "stress-delta", what=" (the stress drafter's shift)")
        _need(args.n is None or args.n >= MIN_SAMPLES,
              f"--n {args.n} is too few samples for the tests (they need n >= {MIN_SAMPLES}); use a larger --n, or "
              "leave it out to size n from --alpha, --beta and --epsilon", SampleSizeError)
    minimum = {"sample": 1, "accept": 2}.get(cmd, 1)
    _need(args.n is None or args.n >= minimum, f"--n must be >= {minimum}, got {args.n}", SampleSizeError)
    if cmd == "accept":
        _accept_lists(args)
    for flag in ("out", "json", "markdown"):
        _writable(getattr(args, flag, None), f"--{flag}")
    _writable(getattr(args, "plots", None), "--plots", folder=True)


def exit_code(outcome: str) -> int:
    """The one exit-code map: "pass" (exactness not rejected, or a command that succeeded) 0, "fail" (rejected) 1,
    "error" 2 (bad arguments, a broken candidate, too few samples, any unexpected exception)."""
    return EXIT_CODES.get(outcome, EXIT_CODES["error"])


def _message(e: BaseException) -> str:
    """One line that says what went wrong and what to do."""
    if isinstance(e, SpecverifyError):
        return str(e)
    if isinstance(e, MemoryError):
        return f"out of memory ({e or 'MemoryError'}); use a smaller --dim, --n or --steps"
    return (f"unexpected {type(e).__name__}: {e}; rerun with --debug for the traceback (and report it if the "
            "arguments are valid)")


_COMMANDS = {"sample": _cmd_sample, "check": _cmd_check, "mutants": _cmd_mutants, "accept": _cmd_accept,
             "problems": _cmd_problems, "drafters": _cmd_drafters}


def _outcome(args) -> str:
    """Run the command; an exception (KeyboardInterrupt aside) becomes one error line, a partial report, "error"."""
    try:
        if args.command in ("problems", "drafters"):
            return _COMMANDS[args.command](args)
        _check_names(args)
        if args.dim is None:
            from specverify.sampler.problems import default_dim

            args.dim = default_dim(args.problem)
        _check_args(args)
        return _COMMANDS[args.command](args)
    except Exception as e:  # noqa: BLE001 - the exit-code map: every error is exit 2 with one line
        message = " ".join(_message(e).split())
        if args.command in ("check", "mutants", "accept"):
            _write_partial(args, message)
        if args.debug:
            traceback.print_exception(e, file=sys.stderr)
        print(f"specverify {args.command}: error: {message}", file=sys.stderr)
        return "error"


def _unparsed_report(argv: list, e: _ArgumentError) -> None:
    """The --json / --markdown report of a command line that argparse could not read (found by hand)."""
    command = e.prog.removeprefix("specverify").strip()
    if command not in ("check", "mutants", "accept"):
        return
    for flag, i in ((a, i) for i, a in enumerate(argv) if a.startswith(("--json", "--markdown"))):
        name, _, value = flag.partition("=")
        value = value or (argv[i + 1] if i + 1 < len(argv) else "")
        if name not in ("--json", "--markdown") or not value or value.startswith("-"):
            continue
        partial = {"command": command, "argv": list(argv), "verdict": "error", "error": str(e)}
        text = json.dumps(partial, indent=2) + "\n" if name == "--json" else \
            f"# specverify {command}: ERROR\n\n{e}\n\nNo verdict: fix the error above and run again.\n"
        try:
            _write(Path(value), text)
        except Exception:  # noqa: BLE001, S110 - the error being reported matters more than its report
            pass


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = _parser().parse_args(argv)
    except _ArgumentError as e:
        print(f"{e.prog}: error: {e}", file=sys.stderr)
        _unparsed_report(argv, e)
        return exit_code("error")
    except SystemExit as e:  # --help printed its text
        return e.code if isinstance(e.code, int) else exit_code("error")
    return exit_code(_outcome(args))


if __name__ == "__main__":
    sys.exit(main())
