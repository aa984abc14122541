"""`--shards K --workers W --ray-address ADDR --run-dir DIR --resume` for check, accept and sample.

The engine is :mod:`specverify.harness.shards` (Ray, the optional extra ``specverify[ray]``); this face builds it
from the command line, writes the run's signature (the arguments that change the result, and the package
versions; not --workers, which never does), and shards the sample and accept commands, whose full sampler
statistics (:class:`~specverify.sampler.speculative.SpecStats`) pool across shards by :func:`merge_stats`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import sys
from pathlib import Path

import numpy as np

from specverify.errors import UsageError

__all__ = ["add_shard_args", "check_shard_args", "engine", "merge_stats", "sharded_samples", "sharded_study",
           "signature"]

# the arguments that change a command's result (with the problem's): the run signature
_RESULT_ARGS = {
    "check": ("sampler", "drafter", "window", "policy", "verifier", "drafts", "mutant", "candidate", "contract",
              "reference", "alpha", "beta", "epsilon", "delta", "terminal", "target", "lags", "n", "seed", "device"),
    "sample": ("sampler", "drafter", "window", "policy", "verifier", "drafts", "n", "seed", "device", "dtype",
               "max_batch"),
    "accept": ("drafters", "windows", "policies", "verifier", "drafts", "n", "seed", "device"),
}
_PROBLEM_ARGS = ("problem", "dim", "steps", "chain", "eta", "schedule", "prediction", "components", "step_size")


def add_shard_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("sharded runs (Ray: pip install 'specverify[ray]')")
    g.add_argument("--shards", type=int, default=None, metavar="K",
                   help="split the samples into K shards seeded from (seed, shard index); any --workers gives the "
                        "same result")
    g.add_argument("--workers", type=int, default=None, metavar="W",
                   help="run the shards on a local Ray instance with W CPUs (default: one after the other here)")
    g.add_argument("--ray-address", default=None, metavar="ADDR", help="run the shards on the Ray cluster at ADDR")
    g.add_argument("--run-dir", type=Path, default=None, metavar="DIR",
                   help="store each finished shard here (with a manifest of the run's signature)")
    g.add_argument("--resume", action="store_true", help="continue the run in --run-dir: compute only missing shards")


def check_shard_args(args) -> None:
    """The shard flags, before the run starts: counts, combinations, and Ray when it is asked for."""
    from specverify.harness.shards import require_ray

    if args.workers is not None:
        require_ray("--workers")
    if args.ray_address is not None:
        require_ray("--ray-address")
    for flag in ("workers", "ray_address", "run_dir"):
        if getattr(args, flag) is not None and args.shards is None:
            raise UsageError(f"--{flag.replace('_', '-')} applies to sharded runs: give --shards K too")
    if args.resume and args.run_dir is None:
        raise UsageError("--resume needs --run-dir DIR (the run to continue)")
    if args.shards is not None and args.shards < 1:
        raise UsageError(f"--shards must be >= 1, got {args.shards}")
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    if args.workers is not None and args.ray_address is not None:
        raise UsageError("--workers starts a local Ray instance, --ray-address joins a cluster: give one")
    if args.run_dir is not None and args.run_dir.exists() and not args.run_dir.is_dir():
        raise UsageError(f"--run-dir {args.run_dir} is a file; give a folder")


def _candidate_id(target: str | None) -> str | None:
    """A third-party candidate by its target and, for a file, the hash of its text (an edit is another run)."""
    if not target:
        return target
    where = target.rpartition(":")[0]
    if where.endswith(".py") and Path(where).is_file():
        return f"{target} sha256:{hashlib.sha256(Path(where).read_bytes()).hexdigest()[:16]}"
    return target


def signature(args) -> dict:
    """What makes a run's result: the command, problem, its options, n, shards, seed, and package versions."""
    from specverify.harness.rundir import package_versions

    out = {"command": args.command, "shards": args.shards, "problem": {k: getattr(args, k) for k in _PROBLEM_ARGS}}
    out.update({k: getattr(args, k, None) for k in _RESULT_ARGS[args.command]})
    if args.command == "check":
        out["candidate"] = _candidate_id(args.candidate)
    out["versions"] = package_versions()
    return out


@contextlib.contextmanager
def engine(args):
    """The shard engine of the command line (None without --shards); its status lands on ``args.shard_status``."""
    if args.shards is None:
        yield None
        return
    from specverify.harness.rundir import RunDir
    from specverify.harness.shards import Engine, RayOptions

    run_dir = None if args.run_dir is None else RunDir(args.run_dir, signature(args), resume=args.resume)
    progress = getattr(args, "progress", None)
    ray = RayOptions(args.workers, args.ray_address, num_gpus=1 if str(args.device).startswith("cuda") else 0)
    eng = Engine(shards=args.shards, ray=ray, run_dir=run_dir,
                 progress=sys.stderr.isatty() if progress is None else progress)
    try:
        with eng:
            yield eng
    finally:
        args.shard_status = eng.status


def report_fields(args) -> dict:
    """What a sharded report says about its sharding (nothing that depends on workers, reuse or retries)."""
    if args.shards is None:
        return {}
    return {"sharding": {"shards": args.shards, "seeds": "numpy.random.SeedSequence(seed).spawn(shards)"}}


class _SampleTask:
    """Our sampler on ``setup`` for one shard: the samples and, when speculative, its statistics as arrays."""

    def __init__(self, setup, ours, device, dtype, max_batch=None, keep_samples=True):
        self.setup, self.ours = setup, ours
        self.device, self.dtype, self.max_batch, self.keep = str(device), dtype, max_batch, keep_samples

    def __call__(self, size: int, seed: int) -> dict:
        import torch

        from specverify.bridge import run_ours
        from specverify.bridge.registry import SampleOptions

        options = SampleOptions(device=self.device, dtype=getattr(torch, self.dtype), max_batch=self.max_batch)
        x, st = run_ours(self.setup, self.ours, size, seed, options)
        if st is None:
            return {"samples": x.cpu().numpy()}
        out = {f.name: np.asarray(getattr(st, f.name)) for f in dataclasses.fields(st)}
        if self.keep:
            out["samples"] = x.cpu().numpy()
        return out


def merge_stats(parts: list[dict]):
    """One SpecStats from the shards' statistics by each field's kind (``SpecStats.kind``): settings equal,
    trajectories stacked in shard order, counts and tables summed."""
    from specverify.bridge.registry import SpecStats

    fields = {}
    for f in dataclasses.fields(SpecStats):
        values = [p[f.name] for p in parts]
        kind = SpecStats.kind(f.name)
        if kind == "setting":
            if any(not np.array_equal(v, values[0]) for v in values):
                raise UsageError(f"shards disagree on {f.name}; the run directory mixes runs")
            fields[f.name] = values[0].item()
        elif kind == "sample":
            fields[f.name] = np.concatenate(values)
        else:
            total = np.sum(values, axis=0)
            fields[f.name] = total.item() if total.ndim == 0 else total
    return SpecStats(**fields)


def sharded_samples(eng, args, setup, device):
    """``sample`` through the shards: the pooled samples (numpy) and SpecStats (None for the plain sampler)."""
    from specverify.cli.common import ours

    task = _SampleTask(setup, ours(args), device, args.dtype, args.max_batch)
    parts = eng.map(task, args.n, args.seed, call=f"sample-n{args.n}-seed{args.seed}")
    x = np.concatenate([p.pop("samples") for p in parts])
    return x, None if args.sampler == "plain" else merge_stats(parts)


def sharded_study(eng, setup, study, *, device) -> list[dict]:
    """``accept`` through the shards: one row per (drafter, window, policy) of ``study`` (a
    :class:`specverify.study.Study`), as :func:`specverify.study.run_study`."""
    import time

    from specverify.bridge import make_builtin_drafter
    from specverify.study import acceptance_row

    chain, rows, n, seed = setup.chain(), [], study.n, study.seed
    for name in study.drafters:
        for window in study.windows:
            needs_anchor = make_builtin_drafter(setup, name, window).needs_anchor
            for policy in study.policies:
                t0 = time.perf_counter()
                task = _SampleTask(setup, study.ours(name, window, policy), device, "float64", keep_samples=False)
                call = f"accept-{name}-L{window}-{policy}-{study.verifier}-K{study.drafts}-n{n}-seed{seed}"
                st = merge_stats(eng.map(task, n, seed, call=call))
                row = acceptance_row(st, chain.sigma, needs_anchor=needs_anchor, confidence=study.confidence)
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
    return rows
