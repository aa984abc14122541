"""The commands of `specverify`: each returns its outcome, "pass", "fail" or "error" (see specverify.cli)."""

from __future__ import annotations

import json
import sys
import time

from specverify.cli import sharding
from specverify.cli.check import cmd_check
from specverify.cli.common import build_problem, ours, torch_device, write
from specverify.cli.mutants import cmd_mutants
from specverify.cli.parser import accept_lists


def _cmd_sample(args) -> int:
    import numpy as np
    import torch

    from specverify.bridge import Built, run_ours
    from specverify.bridge.registry import SampleOptions

    device = torch_device(args.device)
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
        options = SampleOptions(device=device, dtype=dtype, max_batch=args.max_batch, progress=progress)
        x, st = run_ours(setup, ours(args), args.n, args.seed, options, Built(chain))
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
    write(args.json, json.dumps(report, indent=2) + "\n")
    _print_sample_report(report, samples)
    return "pass"


def _plain_stats(chain, n) -> dict:
    return dict(n_steps=chain.n_steps, rounds_mean=float(chain.n_steps), nfe_ratio=1.0,
                target_evaluations=n * chain.n_steps, rounds_total=chain.n_steps)


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
    import torch

    from specverify import study
    from specverify.bridge.registry import SampleOptions

    drafters, windows = accept_lists(args)
    device = torch_device(args.device)
    setup = build_problem(args)
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    with sharding.engine(args) as eng:
        grid = study.Study(drafters, windows, args.n, args.seed, args.policies, args.verifier, args.drafts)
        if eng is None:
            rows = study.run_study(setup, grid, SampleOptions(device=device, dtype=torch.float64, progress=progress))
        else:
            rows = sharding.sharded_study(eng, setup, grid, device=device)
    result = {"problem": args.problem, "dim": args.dim, "steps": args.steps, "n": args.n, "seed": args.seed,
              "confidence": study.CONFIDENCE, "rows": rows, **sharding.report_fields(args)}
    write(args.json, json.dumps(result, indent=2) + "\n")
    write(args.markdown, study.markdown(result, "specverify " + " ".join(sys.argv[1:])))
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


COMMANDS = {"sample": _cmd_sample, "check": cmd_check, "mutants": cmd_mutants, "accept": _cmd_accept,
             "problems": _cmd_problems, "drafters": _cmd_drafters}
