"""What the commands share: the device and the problem from the command line, the report they write (whole,
or what is known when a command stops with an error)."""

from __future__ import annotations

import json

from specverify.errors import UsageError

__all__ = ["build_problem", "ours", "report_context", "torch_device", "write", "write_partial"]


def torch_device(name: str):
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
    from specverify.bridge import ProblemChain, make_setup

    chain = ProblemChain(args.chain, args.schedule, args.prediction, args.eta, args.step_size)
    return make_setup(args.problem, dim=args.dim, steps=args.steps, chain=chain, components=args.components)


def write(path, text):
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def ours(args):
    """Our sampler's options (bridge.Ours) from a command's arguments."""
    from specverify.bridge import Ours

    return Ours(args.sampler, args.drafter, args.window, args.policy, args.verifier, args.drafts,
                mutant=getattr(args, "mutant", None))


def report_context(args) -> dict:
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


def write_partial(args, error: str) -> None:
    """Write what is known when check, mutants or accept stops with an error: JSON and Markdown, verdict "error".
    A report that cannot be written is left out (its path was checked before the run; the error is the news)."""
    from specverify.harness.report import markdown

    partial = {**report_context(args), "verdict": "error", "error": error}
    if getattr(args, "shard_status", None):  # a sharded run: which shards finished, which failed and why
        partial["shards"] = args.shard_status
    for path, text in ((args.json, lambda: json.dumps(partial, indent=2) + "\n"),
                       (args.markdown, lambda: markdown(partial, f"specverify {args.command}"))):
        try:
            write(path, text())
        except Exception:  # noqa: BLE001, S110 - the error being reported matters more than its report
            pass


