"""The commands of `specverify`: each returns its outcome, "pass", "fail" or "error" (see specverify.cli)."""

from __future__ import annotations

import json
import sys
import time

from specverify.cli import check_stress, sharding
from specverify.cli.mutants import cmd_mutants
from specverify.cli.parser import MULTI_DRAFT, accept_lists, ours
from specverify.errors import UsageError


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

    from specverify.bridge import run_ours

    device = _device(args.device)
    dtype = getattr(torch, args.dtype)
    setup = build_problem(args)
    chain = setup.chain()
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    run = dict(problem=args.problem, dim=args.dim, steps=args.steps, chain=args.chain, schedule=args.schedule,
               prediction=args.prediction, sampler=args.sampler, n=args.n, seed=args.seed, device=str(device),
               dtype=args.dtype)
    t0 = time.perf_counter()
    with sharding.engine(args) as eng:
        x, st = sharding.sharded_samples(eng, args, setup, device) if eng is not None else (None, None)
    if x is not None:  # sharded: pooled samples and statistics
        x, stats = torch.from_numpy(x), _plain_stats(chain, args.n) if st is None else st.to_dict()
        run.update(sharding.report_fields(args))
    else:
        x, st = run_ours(setup, ours(args), args.n, args.seed, dtype=dtype, device=device, max_batch=args.max_batch,
                         progress=progress, chain=chain)
        stats = _plain_stats(chain, args.n) if st is None else st.to_dict()
    if args.sampler != "plain":
        run.update(ours(args).describe())
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


def _plain_stats(chain, n) -> dict:
    return dict(n_steps=chain.n_steps, rounds_mean=float(chain.n_steps), nfe_ratio=1.0,
                target_evaluations=n * chain.n_steps, rounds_total=chain.n_steps)


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
        if not args.terminal and (args.candidate is None or args.target):  # trajectories: no terminal reference
            return None, reference_name(setup)
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
        return make_candidate(setup, ours=ours(args), device=device, path=not args.terminal), what
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
            f"{len(report.tests)} tests (Bonferroni over {len(led['blocks'])} blocks, Holm within); smallest detectable per-step shift="
            f"{led['smallest_detectable_shift']:.4f} sd (power {1 - report.beta}); mean from {led['mean_from']}")


def _cmd_check_kernel(args, fn, context) -> int:
    from specverify.harness.coupling_check import check_coupling, markdown_kernel
    from specverify.harness.multidraft_check import check_multidraft

    if args.contract == "multidraft":
        r = check_multidraft(fn, n=args.n or 20000, alpha=args.alpha, seed=args.seed,
                             rule=args.verifier if args.verifier in MULTI_DRAFT else None)
    else:
        r = check_coupling(fn, n=args.n or 20000, alpha=args.alpha, seed=args.seed)
    out = {**context, **r.to_dict()}
    _write(args.json, json.dumps(out, indent=2) + "\n")
    _write(args.markdown, markdown_kernel(r, f"specverify check: coupling {args.candidate}"))
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
                   **({"policy": args.policy, "verifier": args.verifier, "drafts": args.drafts} if ours else {}),
                   alpha=args.alpha, n=args.n, seed=args.seed, stress=args.stress)
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
    if getattr(args, "shard_status", None):  # a sharded run: which shards finished, which failed and why
        partial["shards"] = args.shard_status
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
    from specverify.harness.shards import sharded
    from specverify.harness.stress_configs import STRESS, stress_split

    context = _context(args)
    if args.candidate and args.contract in ("auto", "kernel", "multidraft"):
        from specverify.harness.adapters import detect_contract, load

        fn = load(args.candidate)
        if args.contract in ("kernel", "multidraft") or detect_contract(fn) == "kernel":
            if args.stress:
                raise UsageError("--stress needs a chain-level candidate sampler(view, n, seed), not a coupling")
            return _cmd_check_kernel(args, fn, context)
    stages = _Stages(sys.stderr.isatty() if args.progress is None else args.progress)
    try:
        device = _device(args.device)
        bind = check_stress.binder(args, device) if args.stress else None  # a black box: usage error before the run
        split = stress_split(args.alpha) if args.stress else None
        alpha, alpha_each = (split["main"], split[STRESS[0].name]) if args.stress else (args.alpha, None)
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
            report = check(setup, stages.wrap(candidate, "candidate"), reference, alpha=alpha, beta=args.beta,
                           epsilon=args.epsilon, n=args.n, seed=args.seed, keep_samples=args.plots is not None,
                           terminal=args.terminal, target=_target(args), delta=args.delta,
                           lags=args.lags or args.window + 1)
    finally:
        stages.close()
    out = {**context, **report.to_dict(), **sharding.report_fields(args)}
    low_power = bool(report.warnings) and report.verdict == "pass" and not args.allow_low_power
    out["power_ok"] = not report.warnings
    _write(args.markdown, markdown(report, f"specverify check: {what}"))
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
    verdict = report.verdict
    if args.stress:
        with time_limit(args.timeout):
            out["stress"], stressed = check_stress.stress_block(args, bind, alpha, alpha_each)
        out.update(stress_alpha=alpha_each, main_alpha=alpha, alpha_split=split.to_dict(),
                   main_verdict=report.verdict, verdict="fail" if "fail" in (verdict, stressed) else "pass")
        verdict = out["verdict"]
    _write(args.json, json.dumps(out, indent=2) + "\n")
    if low_power:
        print("specverify check: error: the check passed, but n is too small for the declared power, so the pass "
              "is no evidence of exactness at --epsilon; use the n above (or leave --n out), or pass "
              "--allow-low-power", file=sys.stderr)
        return "error"
    return verdict


def _print_sample_report(r: dict, samples) -> None:
    head = f"{r['sampler']} sampling: problem={r['problem']} d={r['dim']} steps={r['steps']} n={r['n']}"
    if r["sampler"] == "speculative":
        head += f" drafter={r['drafter']} window={r['window']} policy={r['policy']}"
    print(head)
    rows = [("n_steps", r["n_steps"]), ("rounds_mean", r["rounds_mean"]), ("nfe_ratio", r["nfe_ratio"]),
            ("target_evaluations", r["target_evaluations"])]
    if r["sampler"] == "speculative":
        rows += [("acceptance_rate", r["acceptance_rate"]), ("predicted_acceptance", r["predicted_acceptance_rate"]),
                 ("mean_accepted_length", r["mean_accepted_length"]), ("draft_evaluations", r["draft_evaluations"]),
                 ("warmup_evaluations", r["warmup_evaluations"]), ("bonus_steps", r["bonus_steps"])]
    rows += [("wall_seconds", r["wall_seconds"])]
    for name, v in rows:
        print(f"  {name:<22}{v:.4g}" if isinstance(v, float) else f"  {name:<22}{v}")
    if r["sampler"] == "speculative":
        acc, ver = r["accepted_per_position"], r["verified_per_position"]
        per = " ".join(f"{a / v:.2f}" if v else "-" for a, v in zip(acc, ver, strict=True))
        print(f"  {'acceptance/position':<22}{per}")
    print(f"  {'sample mean':<22}{samples.reshape(len(samples), -1).mean(0)[:4].round(4).tolist()}"
          f"{' ...' if samples[0].size > 4 else ''}")


def _cmd_accept(args) -> str:
    from specverify import study

    drafters, windows = accept_lists(args)
    device = _device(args.device)
    setup = build_problem(args)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    with sharding.engine(args) as eng:
        if eng is None:
            rows = study.run_study(setup, drafters, windows, n=args.n, seed=args.seed, device=device,
                                   progress=progress, policies=args.policies, verifier=args.verifier,
                                   drafts=args.drafts)
        else:
            rows = sharding.sharded_study(eng, setup, drafters, windows, n=args.n, seed=args.seed, device=device,
                                          policies=args.policies, verifier=args.verifier, drafts=args.drafts)
    result = {"problem": args.problem, "dim": args.dim, "steps": args.steps, "n": args.n, "seed": args.seed,
              "confidence": study.CONFIDENCE, "rows": rows, **sharding.report_fields(args)}
    _write(args.json, json.dumps(result, indent=2) + "\n")
    _write(args.markdown, study.markdown(result, "specverify " + " ".join(sys.argv[1:])))
    figures = study.plots(result, args.plots) if args.plots is not None else []
    print(f"acceptance study: {args.problem} d={args.dim} steps={args.steps} n={args.n} verifier={args.verifier} "
          f"K={args.drafts} "
          f"(intervals {study.CONFIDENCE:.0%}; * = prediction outside)")
    print(f"  {'drafter':<16}{'L':>3} {'policy':<13} {'acceptance':>10} {'pred':>7}  {'rounds':>8} {'pred':>8}  "
          f"{'nfe':>6} {'pred':>6}")
    for r in rows:
        print(f"  {r['drafter']:<16}{r['window']:>3} {r['policy']:<13} {r['acceptance_rate']:>10.4f} "
              f"{r['predicted_acceptance_rate']:>7.4f}{' ' if r['acceptance_inside'] else '*'} "
              f"{r['rounds_mean']:>8.2f} {r['predicted_rounds_mean']:>8.2f}"
              f"{' ' if r['rounds_inside'] else '*'} {r['nfe_ratio']:>6.3f} {r['predicted_nfe_ratio']:>6.3f}")
    if figures:
        print(f"  figures: {', '.join(str(f) for f in figures)}")
    return "pass"


def _cmd_problems(args) -> str:
    from specverify.bridge.registry import PROBLEMS

    for name, cls in PROBLEMS.items():
        summary = (cls.__doc__ or "").strip().splitlines()[0].split(": ", 1)[-1]
        print(f"{name}  [exact law: {'yes' if cls.exact_law else 'no'}]\n    {summary}\n    reference: {cls.reference}")
        for p, desc in cls.params.items():
            print(f"      {p:<14}{desc}")
    return "pass"


def _cmd_drafters(args) -> str:
    from specverify.bridge.registry import DRAFTERS

    for name, (cls, desc) in DRAFTERS.items():
        print(f"{name:<17}{desc}{'  [needs the target at the window start]' if cls.needs_anchor else ''}")
    return "pass"


COMMANDS = {"sample": _cmd_sample, "check": _cmd_check, "mutants": cmd_mutants, "accept": _cmd_accept,
             "problems": _cmd_problems, "drafters": _cmd_drafters}
