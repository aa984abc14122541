"""The black-box contract: ``candidate(n, seed) -> array (n, d)``, numpy, torch or JAX.

A candidate may instead return a mapping with the array under ``"samples"`` and its acceptance counts per
trajectory: ``"accepted"`` (accepted drafted steps), ``"predicted"`` (the sum of 2 Phi(-|D| / 2) over the steps
whose acceptance it decided) and optionally ``"verified"`` (those steps), ``"predicted_var"`` (the sum of p (1 - p)
over them, p = 2 Phi(-|D| / 2): the variance of accepted - predicted) and the per-window-position totals
``"accepted_per_position"``, ``"verified_per_position"``, ``"predicted_per_position"``; the suite then also tests
the acceptance rule against theory. Per-step records work too: ``"step_accepted"`` (n, T) with 1 for an accepted,
0 for a rejected and -1 for an unverified step, with ``"step_distance"`` (n, T) the |D| = |m_p - m_q| / sigma of
each verified step; the harness turns them into the per-trajectory counts.

A chain-level or black-box candidate may also return ``"trajectories"``: an array (numpy, torch or JAX) of shape
(n, T + 1, *shape), [:, 0] the initial states, [:, k] the committed state after k steps, [:, T] the samples
(``"samples"`` is then optional; if given it must equal [:, T]). :func:`run_paths` reads it
(``docs/contract-trajectories.md``).

Every sampler, ours included, is seen through this contract by the harness; this module is the one place
candidates are called. A candidate that returns something other than a float32/float64 (or torch bfloat16)
array of shape (n, d) (a list, a string, a number, a float16 array), the wrong shape or number of samples, NaN
or Inf, or different samples for the same seed gets a :class:`ContractError` that says what to fix; one that
raises, or runs past the time limit of :func:`time_limit`, gets a :class:`CandidateError` (also a
ContractError).

A callable with the attribute ``times_its_own_calls`` (a sharded candidate, :mod:`specverify.harness.shards`)
applies the time limit to each of its inner calls rather than getting one for the whole call.

Time limits use ``signal.setitimer`` and ``SIGALRM``: Unix only, and only in the main thread; elsewhere (Windows,
worker threads) calls run without a limit. The alarm interrupts Python code; a call stuck inside one long C
routine is stopped when it returns to Python.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import math
import signal
import threading
import time

import numpy as np

from specverify._validate import positive_int
from specverify.errors import CandidateError, ContractError, SpecverifyError, UsageError

__all__ = ["ACCEPTANCE_KEYS", "HYGIENE_SEEDS", "STEP_KEYS", "CandidateError", "ContractError", "Probe", "check_seeded",
           "draw", "probe", "probed", "run", "run_paths", "run_with_paths", "shared_rows", "time_limit"]

ACCEPTANCE_KEYS = ("accepted", "predicted", "verified", "predicted_var", "accepted_per_position",
                   "verified_per_position", "predicted_per_position")
STEP_KEYS = ("step_accepted", "step_distance")


def _to_numpy(out) -> np.ndarray:
    """A float64 array from numpy, torch (any device and dtype, bfloat16 included) or JAX; no shape checks."""
    if hasattr(out, "detach"):  # torch, without importing it
        out = out.detach().cpu().double().numpy()
    return np.asarray(out, dtype=np.float64)


_TIMEOUT: contextvars.ContextVar[float | None] = contextvars.ContextVar("specverify_timeout", default=None)


class _Timeout(BaseException):  # not an Exception: a candidate's own `except Exception` cannot swallow it
    pass


@contextlib.contextmanager
def time_limit(seconds: float | None):
    """Within this block every candidate or reference call made here may run at most ``seconds`` (None: no limit)."""
    if seconds is not None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds) \
                or seconds <= 0:
            raise UsageError(f"the time limit must be a finite number of seconds > 0, got {seconds!r}")
    token = _TIMEOUT.set(seconds)
    try:
        yield
    finally:
        _TIMEOUT.reset(token)


def _can_alarm() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


def _call(fn, n: int, seed: int, what: str, timeout: float | None):
    """``fn(n, seed)``, under a SIGALRM time limit when one is set and possible; errors as CandidateError."""
    call = f"{what}(n={n}, seed={seed})"
    if timeout is None or not _can_alarm():
        old = None
    else:
        def on_alarm(signum, frame):
            raise _Timeout

        old = signal.signal(signal.SIGALRM, on_alarm)
        start = time.monotonic()
        outer, _ = signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return fn(n, seed)
    except _Timeout:
        raise CandidateError(f"{call} ran past the time limit of {timeout:g} s; make it faster, use a smaller "
                             f"n, or raise --timeout") from None
    except SpecverifyError:
        raise
    except Exception as e:  # a third-party sampler may raise anything: report it, keep the cause
        raise CandidateError(f"{call} raised {type(e).__name__}: {e}") from e
    finally:
        if old is not None:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)
            if outer > 0:  # an enclosing timer (e.g. pytest-timeout): give it back what is left of it
                signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - start), 1e-3))


def _samples(out, what: str) -> np.ndarray:
    """The samples as float64, from a numpy, torch or JAX float array; anything else is a ContractError."""
    fix = "return a float32 or float64 array (numpy, torch or JAX) of shape (n, d)"
    if hasattr(out, "detach"):  # torch, without importing it
        kind = str(out.dtype).removeprefix("torch.")
        if kind not in ("float32", "float64", "bfloat16"):
            raise ContractError(f"{what} returned a torch {kind} tensor; {fix}")
        return _to_numpy(out)
    if not (hasattr(out, "__array__") and hasattr(out, "dtype") and hasattr(out, "shape")):
        raise ContractError(f"{what} returned {type(out).__name__}, not an array of numbers: {fix}")
    kind = np.dtype(out.dtype)
    if kind not in (np.float32, np.float64):
        raise ContractError(f"{what} returned a {kind} array; {fix}"
                            + (" (float16 is too coarse: ties and overflow past 65504)" if kind == np.float16 else ""))
    return _to_numpy(out)


def _from_steps(out: dict, n: int, what: str) -> dict:
    """Per-trajectory counts from per-step accept flags and distances."""
    from specverify.harness.predictions import acceptance_probability

    if set(STEP_KEYS) - set(out) or set(ACCEPTANCE_KEYS) & set(out):
        raise ContractError(f"{what}: give both {' and '.join(STEP_KEYS)} (and not the per-trajectory counts too)")
    flags, dist = _to_numpy(out["step_accepted"]), _to_numpy(out["step_distance"])
    if flags.ndim != 2 or flags.shape[0] != n or dist.shape != flags.shape:
        raise ContractError(f"{what}: step_accepted and step_distance must both have shape (n={n}, steps), got "
                            f"{flags.shape} and {dist.shape}")
    if not np.isin(flags, (-1, 0, 1)).all():
        raise ContractError(f"{what}: step_accepted holds values other than 1 (accepted), 0 (rejected) and -1 "
                            "(unverified)")
    ver = flags >= 0
    if not (np.isfinite(dist[ver]).all() and (dist[ver] >= 0).all()):
        raise ContractError(f"{what}: step_distance must be finite and >= 0 on every verified step")
    p = np.where(ver, acceptance_probability(np.where(ver, dist, 0)), 0)  # 2 Phi(-|D|/2)
    kept = {k: out[k] for k in ("samples", "trajectories") if k in out}
    return {**kept, "accepted": (flags == 1).sum(1), "predicted": p.sum(1), "verified": ver.sum(1),
            "predicted_var": (p * (1 - p)).sum(1)}


def _acceptance(out: dict, n: int, what: str) -> dict | None:
    if set(STEP_KEYS) & set(out):
        out = _from_steps(out, n, what)
    unknown = set(out) - {"samples", "trajectories", *ACCEPTANCE_KEYS}
    if unknown:
        raise ContractError(f"{what} returned unknown keys {sorted(unknown)}; the mapping may hold 'samples', "
                            f"'trajectories' and {', '.join(ACCEPTANCE_KEYS + STEP_KEYS)}")
    if "accepted" not in out and "predicted" not in out:
        return None
    if "accepted" not in out or "predicted" not in out:
        raise ContractError(f"{what} returned only one of 'accepted' and 'predicted': give both (per trajectory)")
    acc = {}
    for key in ACCEPTANCE_KEYS:
        if key in out:
            try:
                v = _to_numpy(out[key]).ravel()
            except (TypeError, ValueError) as e:
                raise ContractError(f"{what}[{key!r}] is not an array of numbers: {e}") from None
            if key in ("accepted", "predicted", "verified", "predicted_var") and v.shape != (n,):
                raise ContractError(f"{what}[{key!r}] has {v.size} values for n={n}: give one per trajectory")
            if not np.isfinite(v).all() or (v < 0).any():
                raise ContractError(f"{what}[{key!r}] has NaN, Inf or negative counts")
            acc[key] = v
    return acc


def run(fn, n: int, seed: int, *, dim: int | None = None, what: str = "candidate",
        timeout: float | None = None) -> tuple[np.ndarray, dict | None]:
    """Call ``fn(n, seed)``; return the checked (n, d) samples and the acceptance counts (or None).

    ``timeout``: seconds the call may run (default: the enclosing :func:`time_limit`, else none)."""
    return run_with_paths(fn, n, seed, dim=dim, what=what, timeout=timeout)[:2]


def run_with_paths(fn, n: int, seed: int, *, dim: int | None = None, what: str = "candidate",
                   timeout: float | None = None) -> tuple[np.ndarray, dict | None, np.ndarray | None, str | None]:
    """:func:`run`, plus the trajectories when the candidate returns them: float64 (n, T + 1, d) and the dtype
    they came in (None, None without)."""
    if not callable(fn):
        raise ContractError(f"{what} is a {type(fn).__name__}, not a callable (n, seed) -> samples")
    n = positive_int(n, "n", f" (the number of samples to ask the {what} for)", error=UsageError)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
        raise UsageError(f"seed must be an int, got {seed!r}")
    if getattr(fn, "times_its_own_calls", False):  # a sharded candidate: each shard has the limit, not the whole
        timeout = None
    else:
        timeout = _TIMEOUT.get() if timeout is None else timeout
    out = _call(fn, n, seed, what, timeout)
    acceptance = paths = kind = None
    if isinstance(out, dict):
        if "trajectories" in out:
            paths, kind = _path_array(out["trajectories"], n, what), _dtype_of(out["trajectories"])
            if "samples" not in out:
                out = {**out, "samples": paths[:, -1]}
        if "samples" not in out:
            raise ContractError(f"{what} returned a mapping without 'samples'; return the (n, d) array there")
        acceptance = _acceptance(out, n, what)
        out = out["samples"]
    try:
        x = _samples(out, what)
    except (TypeError, ValueError) as e:
        if isinstance(e, SpecverifyError):
            raise
        raise ContractError(f"{what} returned {type(out).__name__}, not an array of numbers: {e}") from None
    if x.ndim != 2:
        raise ContractError(f"{what} returned shape {x.shape}; the contract is (n, d): flatten each sample")
    if x.shape[0] != n:
        raise ContractError(f"{what} returned {x.shape[0]} samples for n={n}")
    if dim is not None and x.shape[1] != dim:
        raise ContractError(f"{what} returned dimension {x.shape[1]}; the problem has d={dim}")
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).any(1).sum())
        raise ContractError(f"{what} returned NaN or Inf in {bad} of {n} samples")
    return x, acceptance, paths, kind


def _path_array(paths, n: int, what: str) -> np.ndarray:
    """The trajectories as float64 (n, T + 1, d) (any dtype check as for samples)."""
    fix = "return 'trajectories' of shape (n, T + 1, *shape): [:, 0] the initial states, [:, T] the samples"
    try:
        p = _samples(paths, f"{what}['trajectories']")
    except (TypeError, ValueError) as e:
        if isinstance(e, SpecverifyError):
            raise
        raise ContractError(f"{what}['trajectories'] is not an array of numbers: {e}; {fix}") from None
    if p.ndim < 3 or p.shape[0] != n or p.shape[1] < 2:
        raise ContractError(f"{what}['trajectories'] has shape {p.shape} for n={n}; {fix}")
    return p.reshape(n, p.shape[1], -1)


def _dtype_of(a) -> str:
    return str(a.dtype).removeprefix("torch.")


def run_paths(fn, n: int, seed: int, target, *, what: str = "candidate",
              timeout: float | None = None) -> tuple[np.ndarray, dict | None, str]:
    """Call ``fn(n, seed)`` for trajectories of ``target``'s chain (a ``targets.Transition``: its ``n_steps`` and
    ``dim``): returns them as float64 (n, steps + 1, dim), the acceptance counts (or None) and the dtype they came
    in. A candidate without trajectories, with the wrong number of steps, NaN or Inf, or samples that differ from
    the trajectories' last states gets a ContractError."""
    steps, dim = target.n_steps, target.dim
    samples, acc, paths, kind = run_with_paths(fn, n, seed, dim=dim, what=what, timeout=timeout)
    if paths is None:
        raise ContractError(f"{what} returned no 'trajectories': return a mapping with 'trajectories' (n, T + 1, "
                            "*shape) for the transition-level check, or pass --terminal to judge samples alone")
    if paths.shape[1:] != (steps + 1, dim):
        raise ContractError(f"{what}['trajectories'] has {paths.shape[1]} states of dimension {paths.shape[2]} per "
                            f"trajectory; the target has {steps} steps (so {steps + 1} states) of dimension {dim}")
    bad = ~np.isfinite(paths).all(axis=(1, 2))
    if bad.any():
        raise ContractError(f"{what}['trajectories'] has NaN or Inf in {int(bad.sum())} of {n} trajectories")
    if not np.array_equal(paths[:, -1], samples):
        raise ContractError(f"{what}: 'samples' differ from trajectories[:, T] in "
                            f"{int((paths[:, -1] != samples).any(1).sum())} rows; return the same final states")
    return paths, acc, kind




def draw(fn, n: int, seed: int, *, dim: int | None = None, what: str = "candidate",
         timeout: float | None = None) -> np.ndarray:
    """Call ``fn(n, seed)`` and check what comes back: a finite float array of shape (n, d)."""
    return run(fn, n, seed, dim=dim, what=what, timeout=timeout)[0]


@dataclasses.dataclass(frozen=True)
class Probe:
    """What :func:`probe` saw of ``fn(n, seed)``: its checked samples (n, d), whether it reports acceptance counts
    and whether it returns trajectories."""

    n: int
    seed: int
    samples: np.ndarray
    counts: bool
    trajectories: bool


def probe(fn, seed: int, *, n: int = 8, what: str = "candidate", timeout: float | None = None) -> Probe:
    """``fn(n, seed)`` twice: the same seed must give the same samples (reproducible verdicts depend on it); the
    first call also tells what the candidate returns (the check is chosen from it) and its samples are reused by
    the seed-hygiene test (:func:`shared_rows`)."""
    a, acc, paths, _ = run_with_paths(fn, n, seed, what=what, timeout=timeout)
    b = draw(fn, n, seed, what=what, timeout=timeout)
    if not np.array_equal(a, b):
        raise ContractError(f"{what} returned different samples for the same seed {seed}: it ignores its seed; "
                            "seed its generator from the seed argument")
    return Probe(int(n), int(seed), a, acc is not None, paths is not None)


def check_seeded(fn, seed: int, *, n: int = 8, what: str = "candidate", timeout: float | None = None) -> bool:
    """:func:`probe`; returns whether ``fn`` reports acceptance counts."""
    return probe(fn, seed, n=n, what=what, timeout=timeout).counts


def probed(fn, seed: int, given: Probe | None) -> Probe:
    """``given`` (a caller's probe of ``fn`` at ``seed``), else a new :func:`probe`."""
    if given is None:
        return probe(fn, seed)
    if given.seed != seed:
        raise UsageError(f"the probe was made at seed {given.seed}, the check runs at seed {seed}")
    return given


HYGIENE_SEEDS = (1, 720720)  # offsets of the second seeds: 720720 = lcm(1..16), so seed % m collides for m <= 16


def shared_rows(fn, seed: int, *, n: int = 64, what: str = "candidate", timeout: float | None = None,
                first: Probe | None = None) -> dict:
    """Seed hygiene: rows that ``fn(n, seed)`` shares with ``fn(n, seed + o)`` for each offset o of
    :data:`HYGIENE_SEEDS` (a sampler of a continuous law shares none; one that reduces its seed modulo a small
    number, or ignores part of it, repeats its samples). Returns {second seed: shared rows}. ``first``: a
    :func:`probe` of ``fn``; its samples stand for ``fn(n, seed)`` when it was made at the same n and seed."""
    from specverify.harness.stats.independence import duplicate_rows

    if first is not None and (first.n, first.seed) == (n, seed):
        a = first.samples
    else:
        a = draw(fn, n, seed, what=what, timeout=timeout)
    out = {}
    for offset in HYGIENE_SEEDS:
        b = draw(fn, n, seed + offset, what=what, timeout=timeout)
        out[seed + offset] = duplicate_rows(np.concatenate([a, b])) - duplicate_rows(a) - duplicate_rows(b)
    return out
