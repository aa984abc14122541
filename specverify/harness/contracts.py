"""The black-box contract: ``candidate(n, seed) -> array (n, d)``, numpy, torch or JAX.

A candidate may instead return a mapping with the array under ``"samples"`` and its acceptance counts per
trajectory: ``"accepted"`` (accepted drafted steps), ``"predicted"`` (the sum of 2 Phi(-|D| / 2) over the steps
whose acceptance it decided) and optionally ``"verified"`` (those steps) and the per-window-position totals
``"accepted_per_position"``, ``"verified_per_position"``, ``"predicted_per_position"``; the suite then also tests
the acceptance rule against theory. Per-step records work too: ``"step_accepted"`` (n, T) with 1 for an accepted,
0 for a rejected and -1 for an unverified step, with ``"step_distance"`` (n, T) the |D| = |m_p - m_q| / sigma of
each verified step; the harness turns them into the per-trajectory counts.

Every sampler, ours included, is seen through this contract by the harness. A candidate that raises, returns
the wrong shape or number of samples, NaN or Inf, or different samples for the same seed gets a
:class:`ContractError` that says what to fix.
"""

from __future__ import annotations

import numpy as np

from specverify.errors import ContractError, SpecverifyError

__all__ = ["ACCEPTANCE_KEYS", "STEP_KEYS", "ContractError", "check_seeded", "draw", "run"]

ACCEPTANCE_KEYS = ("accepted", "predicted", "verified", "accepted_per_position", "verified_per_position",
                   "predicted_per_position")
STEP_KEYS = ("step_accepted", "step_distance")


def _to_numpy(out) -> np.ndarray:
    """A float64 array from numpy, torch (any device and dtype, bfloat16 included) or JAX; no shape checks."""
    if hasattr(out, "detach"):  # torch, without importing it
        out = out.detach().cpu().double().numpy()
    return np.asarray(out, dtype=np.float64)


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
    predicted = np.where(ver, acceptance_probability(np.where(ver, dist, 0)), 0).sum(1)  # 2 Phi(-|D|/2)
    return {"samples": out["samples"], "accepted": (flags == 1).sum(1), "predicted": predicted,
            "verified": ver.sum(1)}


def _acceptance(out: dict, n: int, what: str) -> dict | None:
    if set(STEP_KEYS) & set(out):
        out = _from_steps(out, n, what)
    unknown = set(out) - {"samples", *ACCEPTANCE_KEYS}
    if unknown:
        raise ContractError(f"{what} returned unknown keys {sorted(unknown)}; the mapping may hold 'samples' and "
                            f"{', '.join(ACCEPTANCE_KEYS + STEP_KEYS)}")
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
            if key in ("accepted", "predicted", "verified") and v.shape != (n,):
                raise ContractError(f"{what}[{key!r}] has {v.size} values for n={n}: give one per trajectory")
            if not np.isfinite(v).all() or (v < 0).any():
                raise ContractError(f"{what}[{key!r}] has NaN, Inf or negative counts")
            acc[key] = v
    return acc


def run(fn, n: int, seed: int, *, dim: int | None = None, what: str = "candidate") -> tuple[np.ndarray, dict | None]:
    """Call ``fn(n, seed)``; return the checked (n, d) samples and the acceptance counts (or None)."""
    try:
        out = fn(n, seed)
    except SpecverifyError:
        raise
    except Exception as e:  # a third-party sampler may raise anything: report it, keep the cause
        raise ContractError(f"{what}(n={n}, seed={seed}) raised {type(e).__name__}: {e}") from e
    acceptance = None
    if isinstance(out, dict):
        if "samples" not in out:
            raise ContractError(f"{what} returned a mapping without 'samples'; return the (n, d) array there")
        acceptance = _acceptance(out, n, what)
        out = out["samples"]
    try:
        x = _to_numpy(out)
    except (TypeError, ValueError) as e:
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
    return x, acceptance


def draw(fn, n: int, seed: int, *, dim: int | None = None, what: str = "candidate") -> np.ndarray:
    """Call ``fn(n, seed)`` and check what comes back: a finite float array of shape (n, d)."""
    return run(fn, n, seed, dim=dim, what=what)[0]


def check_seeded(fn, seed: int, *, n: int = 8, what: str = "candidate") -> bool:
    """The same seed must give the same samples (reproducible verdicts depend on it).

    Returns whether ``fn`` reports acceptance counts."""
    (a, acc), b = run(fn, n, seed, what=what), draw(fn, n, seed, what=what)
    if not np.array_equal(a, b):
        raise ContractError(f"{what} returned different samples for the same seed {seed}: it ignores its seed; "
                            "seed its generator from the seed argument")
    return acc is not None
