"""`specverify check`: one sampler against the problem's reference (transition-level or terminal), or a coupling
against its exact per-node law; --stress adds the stress drafter's configurations."""

from __future__ import annotations

import json
import sys

from specverify.cli import check_stress, sharding
from specverify.cli.common import build_problem, ours, report_context, torch_device, write
from specverify.cli.parser import MULTI_DRAFT
from specverify.errors import UsageError

__all__ = ["cmd_check"]


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
    from specverify.bridge import Ours, make_candidate, make_reference, reference_name

    if args.reference == "exact":
        if not args.terminal and (args.candidate is None or args.target):  # trajectories: no terminal reference
            return None, reference_name(setup)
        return make_reference(setup, device=device), reference_name(setup)
    if args.reference == "plain":
        return ("sampler", make_candidate(setup, Ours(sampler="plain"), device=device)), "plain sampler (ours)"
    from specverify.harness.adapters import detect_contract, load

    fn = load(args.reference)
    if detect_contract(fn) != "black-box":
        raise UsageError(f"--reference {args.reference} must be a black box reference(n, seed)")
    return ("sampler", fn), f"reference {args.reference}"


def _check_candidate(args, setup, device):
    from specverify.bridge import make_candidate

    if args.candidate is None:
        what = f"mutant {args.mutant}" if args.mutant else f"{args.sampler} sampler"
        return make_candidate(setup, ours(args), device=device, path=not args.terminal), what
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


def _target(args):
    """--target as the judge's transition (None: the problem's own)."""
    if args.target is None:
        return None
    from specverify.harness.adapters import load_object
    from specverify.harness.targets import as_transition

    return as_transition(load_object(args.target), source=f"target {args.target}")


def _sizing_line(report) -> str:
    head = f"n={report.n} alpha={report.alpha} over {len(report.tests)} tests ({report.correction}); "
    if not report.transition_level:
        return head + f"min detectable KS distance={report.min_detectable_ks:.4f} (power {1 - report.beta})"
    led = report.ledger
    return (f"{report.n} trajectories x {led['noisy_steps']} noisy steps, alpha={report.alpha} over "
            f"{len(report.tests)} tests (Bonferroni over {len(led['blocks'])} blocks, Holm within); "
            f"smallest detectable per-step shift={led['smallest_detectable_shift']:.4f} sd (power {1 - report.beta}); "
            f"mean from {led['mean_from']}")


def _cmd_check_kernel(args, fn, context) -> int:
    from specverify.harness.coupling_check import check_coupling, markdown_kernel
    from specverify.harness.multidraft_check import check_multidraft

    if args.contract == "multidraft":
        r = check_multidraft(fn, n=args.n or 20000, alpha=args.alpha, seed=args.seed,
                             rule=args.verifier if args.verifier in MULTI_DRAFT else None)
    else:
        r = check_coupling(fn, n=args.n or 20000, alpha=args.alpha, seed=args.seed)
    out = {**context, **r.to_dict()}
    write(args.json, json.dumps(out, indent=2) + "\n")
    write(args.markdown, markdown_kernel(r, f"specverify check: coupling {args.candidate}"))
    print(f"{r.verdict.upper()}: coupling {args.candidate} ({r.form} form), n={r.n} per case, "
          f"alpha={r.alpha} (Holm over {len(r.tests)} tests)")
    against = "the drafts it returned" if r.form == "multidraft" else "the reflection coupling formula"
    for e in r.exact:
        print(f"  exact d={e.dim} |D|={e.distance}: {e.flag_mismatches} flag and {e.output_mismatches} "
              f"output mismatches against {against}")
    for t in sorted(r.tests, key=lambda t: t.adjusted_pvalue)[:3]:
        print(f"  {t.name:<30} p={t.pvalue:.3g} adjusted p={t.adjusted_pvalue:.3g}")
    print(f"  {r.seconds:.1f} s")
    return r.verdict


def cmd_check(args) -> str:
    context = report_context(args)
    if args.candidate and args.contract in ("auto", "kernel", "multidraft"):
        from specverify.harness.adapters import detect_contract, load

        fn = load(args.candidate)
        if args.contract in ("kernel", "multidraft") or detect_contract(fn) == "kernel":
            if args.stress:
                raise UsageError("--stress needs a chain-level candidate sampler(view, n, seed), not a coupling")
            return _cmd_check_kernel(args, fn, context)
    from specverify.bridge.stress_configs import STRESS, stress_split

    split = stress_split(args.alpha) if args.stress else None
    alpha, alpha_each = (split["main"], split[STRESS[0].name]) if args.stress else (args.alpha, None)
    report, what, ref_text, bind = _run(args, alpha)
    out = {**context, **report.to_dict(), **sharding.report_fields(args)}
    low_power = bool(report.warnings) and report.verdict == "pass" and not args.allow_low_power
    out["power_ok"] = not report.warnings
    _print_report(args, report, what, ref_text)
    verdict = report.verdict
    if args.stress:
        from specverify.harness.contracts import time_limit

        with time_limit(args.timeout):
            out["stress"], stressed = check_stress.stress_block(args, bind, alpha, alpha_each)
        out.update(stress_alpha=alpha_each, main_alpha=alpha, alpha_split=split.to_dict(),
                   main_verdict=report.verdict, verdict="fail" if "fail" in (verdict, stressed) else "pass")
        verdict = out["verdict"]
    write(args.json, json.dumps(out, indent=2) + "\n")
    if low_power:
        print("specverify check: error: the check passed, but n is too small for the declared power, so the pass "
              "is no evidence of exactness at --epsilon; use the n above (or leave --n out), or pass "
              "--allow-low-power", file=sys.stderr)
        return "error"
    return verdict


def _run(args, alpha):
    """The main check at ``alpha``: (report, candidate's description, reference's description, stress binder)."""
    from specverify.bridge import Plan, TrajectoryOptions, check
    from specverify.harness.contracts import time_limit
    from specverify.harness.shards import sharded

    stages = _Stages(sys.stderr.isatty() if args.progress is None else args.progress)
    try:
        device = torch_device(args.device)
        bind = check_stress.binder(args, device) if args.stress else None  # a black box: usage error before the run
        setup = build_problem(args)
        reference, ref_text = _check_reference(args, setup, device)
        candidate, what = _check_candidate(args, setup, device)
        with time_limit(args.timeout), sharding.engine(args) as eng:
            if eng is not None:  # the candidate's and a reference sampler's calls run as shards
                candidate = sharded(candidate, eng, dim=setup.dim)
                if reference is not None and reference[0] == "sampler":
                    reference = ("sampler", sharded(reference[1], eng, what="reference", dim=setup.dim,
                                                    preload=("specverify.harness.reference",)))  # JAX x64 first
            if reference is not None and reference[0] == "sampler":
                reference = ("sampler", stages.wrap(reference[1], "reference"))
            plan = Plan(alpha, args.beta, args.epsilon, args.n, args.seed, keep_samples=args.plots is not None)
            paths = TrajectoryOptions(args.terminal, _target(args), args.delta, args.lags or args.window + 1)
            report = check(setup, stages.wrap(candidate, "candidate"), reference, plan, paths=paths)
    finally:
        stages.close()
    return report, what, ref_text, bind


def _print_report(args, report, what, ref_text) -> None:
    """The Markdown report, the figures, and the verdict with its sizing and worst tests on stdout."""
    from specverify.harness.report import acceptance_line, markdown, plots

    write(args.markdown, markdown(report, f"specverify check: {what}"))
    figures = plots(report, args.plots) if args.plots is not None else []
    note = (report.rejection_path or {}).get("note")
    for w in report.warnings + ((note,) if note else ()):
        print(f"specverify check: warning: {w}", file=sys.stderr)
    against = ref_text if not report.transition_level else f"target's transitions ({report.ledger['mean_from']})"
    where = f"{args.problem} d={args.dim} steps={args.steps}" if not (args.target and report.transition_level) else \
        f"--target {args.target}"
    print(f"{report.verdict.upper()}: {what} on {where} against the {against}")
    print(f"  {_sizing_line(report)}")
    if report.caught_by:
        print(f"  caught by: {', '.join(report.caught_by)}")
    if report.acceptance is not None:
        print(f"  {acceptance_line(report.acceptance)}")
    for t in sorted(report.tests, key=lambda t: (t.adjusted_pvalue, t.pvalue))[:3]:
        print(f"  {t.name:<30} p={t.pvalue:.3g} adjusted p={t.adjusted_pvalue:.3g}")
    if figures:
        print(f"  figures: {', '.join(str(f) for f in figures)}")
    drawn = "" if report.permutations is None else f", {report.permutations} permutations"
    print(f"  {report.seconds:.1f} s{drawn}")
