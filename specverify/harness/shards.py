"""Sharded, resumable, fault-tolerant candidate calls, on Ray (the optional extra ``specverify[ray]``).

A call ``fn(n, seed)`` is split into K shards: shard i draws ``size_i`` samples (sizes differ by at most one)
with its own seed from ``numpy.random.SeedSequence(seed).spawn(K)[i]``. The plan depends on (n, seed, K) only,
never on the number of workers, and no two shards share a seed. :func:`sharded` wraps a candidate into one with
the same contract (``(n, seed) -> samples and counts``, :mod:`specverify.harness.contracts`) whose calls run
shard by shard through an :class:`Engine`: so the suite, and every face that goes through it, gets sharding
without knowing.

Contract of :class:`Engine`:
- without ``workers`` or ``address`` the shards run one after the other in this process; with them, as Ray
  tasks (``ray.init(num_cpus=workers)``, or joining the cluster at ``address``), one CPU (and ``num_gpus``)
  each. Each shard runs with torch's thread count pinned (``threads``), so the pooled result is bitwise the
  same for any number of workers (a candidate with other thread pools should pin its own);
- a Ray worker that dies mid-shard is retried (``retries`` times, Ray task retries); a shard whose candidate
  raises fails for good: the other shards still finish (and are stored), then :class:`ShardError` names the
  shard and why;
- with a :class:`~specverify.harness.rundir.RunDir`, each finished shard is stored atomically as it arrives,
  and a later run (``resume``) computes only the missing ones. Within one process a call repeated with the same
  (n, seed) is recomputed, not read back, so the harness's seed check stays a real recomputation.
"""

from __future__ import annotations

import dataclasses
import sys
import uuid

import numpy as np

from specverify.errors import ShardError, SpecverifyError, UsageError

__all__ = ["Engine", "RayOptions", "Shard", "pool", "require_ray", "shard_plan", "sharded"]

CONCATENATED = ("samples", "trajectories", "accepted", "predicted", "verified", "predicted_var")  # one per trajectory
SUMMED = ("accepted_per_position", "verified_per_position", "predicted_per_position")  # totals
RAY_EXTRA = "pip install 'specverify[ray]'"
_TALLY: dict = {}  # (Ray session, job) -> the actor counting attempts (held here: an unheld one is collected)


@dataclasses.dataclass(frozen=True)
class Shard:
    index: int
    size: int
    seed: int


def shard_plan(n: int, seed: int, shards: int) -> tuple[Shard, ...]:
    """min(shards, n) shards of sizes n // k or n // k + 1, seeded from SeedSequence(seed).spawn(k).

    Seeds have 31 bits, which every common seeding API takes whole (JAX's 32-bit mode silently keeps only the low
    32 bits of a bigger seed, so 64-bit seeds could collide unseen). Shard i takes the first of its child's words
    that no earlier shard took: all seeds differ, and shard i's seed depends on (seed, i) only, not on K."""
    k, seeds = min(int(shards), int(n)), []
    taken = set()
    for child in np.random.SeedSequence(int(seed)).spawn(k):
        free = [int(w) for w in child.generate_state(8, np.uint32) >> np.uint32(1) if int(w) not in taken]
        if not free:  # eight collisions in a row: about (k / 2^31)^8, never in practice
            raise UsageError(f"seed {seed} leaves shard {len(seeds)} without a seed of its own; choose another --seed")
        seeds.append(free[0])
        taken.add(free[0])
    return tuple(Shard(i, n // k + (i < n % k), s) for i, s in enumerate(seeds))


def pool(results: list[dict]) -> dict:
    """One contract output from the shards' outputs, in shard order: trajectories stacked, totals summed."""
    out = {}
    for key in results[0]:
        parts = [r[key] for r in results]
        if key in CONCATENATED:
            out[key] = np.concatenate(parts)
        elif key in SUMMED:
            out[key] = np.sum(parts, axis=0)
        else:
            raise UsageError(f"cannot pool {key!r} across shards")
    return out


class _Checked:
    """``fn(size, seed)`` through the contract (shape, dtype, counts, time limit), returned as plain arrays.

    Pickled (for Ray), ``fn`` travels as bytes and is unpickled after importing the ``preload`` modules: a module
    that sets process-wide state (``specverify.harness.reference`` turns on JAX's 64-bit mode) must come first,
    or arrays in ``fn``'s closure come back in the wrong precision."""

    def __init__(self, fn, what: str, dim: int | None, timeout: float | None, preload: tuple = ()):
        self.fn, self.what, self.dim, self.timeout, self.preload = fn, what, dim, timeout, tuple(preload)

    def __getstate__(self):
        from ray import cloudpickle

        return {**self.__dict__, "fn": cloudpickle.dumps(self.fn)}

    def __setstate__(self, state):
        import importlib
        import pickle

        for name in state["preload"]:
            importlib.import_module(name)
        self.__dict__.update(state, fn=pickle.loads(state["fn"]))

    def __call__(self, size: int, seed: int) -> dict:
        from specverify.harness.contracts import run_with_paths

        x, acc, paths, kind = run_with_paths(self.fn, size, seed, dim=self.dim, what=self.what, timeout=self.timeout)
        if paths is not None:  # kept at the candidate's precision (the zero-noise tolerance follows it)
            acc = {**(acc or {}), "trajectories": paths if kind == "float64" else paths.astype(np.float32)}
        return {"samples": x, **(acc or {})}


def sharded(fn, engine: Engine, *, what: str = "candidate", dim: int | None = None, preload: tuple = ()):
    """``fn`` with the same contract, its calls run as shards by ``engine`` and pooled; a time limit in force
    (:func:`~specverify.harness.contracts.time_limit`) applies to each shard. ``preload``: modules a worker
    imports before it unpickles ``fn``."""
    from specverify.harness.contracts import _TIMEOUT

    def call(n, seed):
        task = _Checked(fn, what, dim, _TIMEOUT.get(), preload)
        return pool(engine.map(task, int(n), int(seed), call=f"{what}-n{int(n)}-seed{int(seed)}"))

    call.engine, call.times_its_own_calls = engine, True
    return call


def require_ray(flag: str = "--workers"):
    """The ray module, or a UsageError that names the extra to install."""
    try:
        import ray
    except ImportError:
        raise UsageError(f"{flag} runs shards on Ray, which is not installed: {RAY_EXTRA}") from None
    return ray


def _pin_threads(threads: int) -> None:
    """The candidate's thread count: torch's reductions depend on it (no torch import if it is not loaded)."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def _ray_task(task, call: str, shard: Shard, threads: int, tally):
    """One shard in a Ray worker: count the attempt, pin the threads, run."""
    import ray

    ray.get(tally.start.remote(call, shard.index))
    _pin_threads(threads)
    return task(shard.size, shard.seed)


class _Tally:
    """A Ray actor counting each shard's attempts (for the progress bar: running and retried)."""

    def __init__(self):
        self.attempts = {}

    def start(self, call, index):
        self.attempts[call, index] = self.attempts.get((call, index), 0) + 1

    def snapshot(self, call):
        return {i: a for (c, i), a in self.attempts.items() if c == call}


def _tally(ray):
    context = ray.get_runtime_context()
    job = (context.get_session_name(), context.get_job_id())  # job ids repeat across Ray instances
    if job not in _TALLY:
        _TALLY.clear()  # a handle from an earlier Ray instance is dead
        _TALLY[job] = ray.remote(num_cpus=0)(_Tally).remote()
    return _TALLY[job]


@dataclasses.dataclass(frozen=True)
class RayOptions:
    """Where an :class:`Engine`'s shards run on Ray: a local instance with ``workers`` CPUs, or the cluster at
    ``address`` (one or the other; neither: in this process), each shard a task with one CPU and ``num_gpus``
    GPUs, retried ``retries`` times when its worker dies."""

    workers: int | None = None
    address: str | None = None
    num_gpus: float = 0
    retries: int = 3

    def __post_init__(self):
        w = self.workers
        if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1):
            raise UsageError(f"--workers must be an integer >= 1, got {w!r}")
        if w is not None and self.address is not None:
            raise UsageError("--workers starts a local Ray instance, --ray-address joins a cluster: give one")


@dataclasses.dataclass(frozen=True)
class _Call:
    """One :meth:`Engine.map` in progress: its name, the shards' results and status (filled in place as they
    arrive), the run directory that stores them and the progress bar (None: none)."""

    name: str
    results: dict
    status: dict
    store: object
    bar: object


class Engine:
    """Runs the shards of a call in this process, or on Ray (``ray``: :class:`RayOptions`; module docstring)."""

    def __init__(self, *, shards: int, ray: RayOptions | None = None, run_dir=None, threads: int = 1,
                 progress: bool = False):
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise UsageError(f"--shards must be an integer >= 1, got {shards!r}")
        self.on = on = RayOptions() if ray is None else ray
        self.shards, self.run_dir, self.threads, self.progress = shards, run_dir, threads, progress
        self.use_ray = on.workers is not None or on.address is not None
        self._ray = require_ray("--workers" if on.workers is not None else "--ray-address") if self.use_ray else None
        self._started = False
        self._served: set[str] = set()
        self.status = {"shards": shards, "run_dir": None if run_dir is None else str(run_dir.path), "calls": {}}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Shut down the Ray instance this engine started (one it joined or found running is left alone)."""
        if self._started:
            self._ray.shutdown()
            self._started = False

    def _init_ray(self):
        ray = self._ray
        if not ray.is_initialized():
            kw = {"address": self.on.address} if self.on.address else {"num_cpus": self.on.workers}
            ray.init(**kw, include_dashboard=False, log_to_driver=False, configure_logging=False)
            self._started = True
        return ray

    def map(self, task, n: int, seed: int, *, call: str) -> list[dict]:
        """``task(size, seed)`` of every shard of (n, seed), in shard order; stored ones are read back."""
        plan = shard_plan(n, seed, self.shards)
        fresh = call in self._served  # a repeated call is recomputed (see the module docstring)
        self._served.add(call)
        results = {} if fresh or self.run_dir is None else self._stored(call, plan)
        status = {"planned": len(plan), "reused": len(results), "computed": 0, "retried": 0, "failed": {}}
        self.status["calls"][call] = status
        todo = [s for s in plan if s.index not in results]
        store = None if fresh else self.run_dir
        job = _Call(call, results, status, store, _bar(self.progress, len(plan), len(results), call))
        try:
            if self.use_ray:
                self._run_ray(task, todo, job)
            else:
                self._run_here(task, todo, job)
        finally:
            if job.bar is not None:
                job.bar.close()
        if status["failed"]:
            raise self._failure(call, plan, status)
        return [results[s.index] for s in plan]

    def _stored(self, call, plan) -> dict:
        loaded = {s.index: self.run_dir.load(call, s.index, s.size, s.seed) for s in plan}
        return {i: data for i, data in loaded.items() if data is not None}

    def _finish(self, s: Shard, data: dict, job: _Call) -> None:
        if job.store is not None:
            job.store.save(job.name, s.index, s.size, s.seed, data)
        job.results[s.index] = data
        job.status["computed"] += 1
        if job.bar is not None:
            job.bar.update(1)

    def _run_here(self, task, todo, job: _Call) -> None:
        torch = sys.modules.get("torch")
        before = None if torch is None else torch.get_num_threads()
        try:
            for s in todo:
                _pin_threads(self.threads)
                try:
                    data = task(s.size, s.seed)
                except Exception as e:  # noqa: BLE001 - a failed shard is reported after the others finish
                    job.status["failed"][s.index] = _describe(e)
                    continue
                self._finish(s, data, job)
        finally:
            if before is not None:
                torch.set_num_threads(before)

    def _run_ray(self, task, todo, job: _Call) -> None:
        if not todo:
            return
        ray, status, bar = self._init_ray(), job.status, job.bar
        tally = _tally(ray)
        key = f"{job.name}/{uuid.uuid4().hex}"  # counts this map's attempts only
        remote = ray.remote(_ray_task).options(num_cpus=1, num_gpus=self.on.num_gpus, max_retries=self.on.retries)
        ref = ray.put(task)
        pending = {remote.remote(ref, key, s, self.threads, tally): s for s in todo}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
            for r in ready:
                s = pending.pop(r)
                try:
                    data = ray.get(r)
                except Exception as e:  # noqa: BLE001 - RayTaskError (the candidate raised) or a dead worker
                    status["failed"][s.index] = _why(e, self.on.retries)
                    continue
                self._finish(s, data, job)
            attempts = ray.get(tally.snapshot.remote(key))
            status["retried"] = sum(a - 1 for a in attempts.values())
            if bar is not None:
                running = sum(1 for s in pending.values() if s.index in attempts)
                bar.set_postfix_str(f"running {running}, retried {status['retried']}", refresh=False)

    def _failure(self, call, plan, status) -> ShardError:
        (index, why), more = sorted(status["failed"].items())[0], len(status["failed"]) - 1
        s = plan[index]
        kept = (f"the {len(plan) - len(status['failed'])} finished shards are kept in {self.run_dir.path}; once the "
                "cause is fixed, rerun with --resume to compute only the missing shards") if self.run_dir is not None \
            else "pass --run-dir to keep finished shards across runs"
        self.status["failed"] = {"call": call, "shard": index, "size": s.size, "seed": s.seed, "error": why,
                                 "other_failed_shards": sorted(status["failed"])[1:]}
        return ShardError(f"shard {index} of {len(plan)} ({call}, size {s.size}, seed {s.seed}) failed: {why}"
                          f"{f' (and {more} more shards)' if more else ''}; {kept}", self.status)


def _why(e: BaseException, retries: int) -> str:
    """Why a Ray shard failed, in words: the candidate's own error, or a worker that kept dying."""
    cause = getattr(e, "cause", None)
    if cause is not None:
        return _describe(cause)
    if type(e).__name__ == "WorkerCrashedError":
        return f"its worker died {retries + 1} times (Ray retried it {retries} times)"
    return f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"


def _describe(e: BaseException) -> str:
    """An error in one line: specverify's own say what happened; others get their type."""
    return str(e) if isinstance(e, SpecverifyError) else f"{type(e).__name__}: {e}"


def _bar(enabled: bool, total: int, done: int, call: str):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=done, desc=f"shards of {call}", unit="shard", leave=False,
                mininterval=0.5)
