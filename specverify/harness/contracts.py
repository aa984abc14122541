"""The black-box contract: ``candidate(n, seed) -> array (n, d)``, numpy, torch or JAX.

Every sampler, ours included, is seen through this contract by the harness. A candidate that raises, returns
the wrong shape or number of samples, NaN or Inf, or different samples for the same seed gets a
:class:`ContractError` that says what to fix.
"""

from __future__ import annotations

import numpy as np

from specverify.errors import SpecverifyError

__all__ = ["ContractError", "check_seeded", "draw"]


class ContractError(SpecverifyError, ValueError):
    """A candidate or reference breaks the black-box contract."""


def _to_numpy(out) -> np.ndarray:
    if hasattr(out, "detach"):  # torch, without importing it
        out = out.detach().cpu().numpy()
    return np.asarray(out, dtype=np.float64)


def draw(fn, n: int, seed: int, *, dim: int | None = None, what: str = "candidate") -> np.ndarray:
    """Call ``fn(n, seed)`` and check what comes back: a finite float array of shape (n, d)."""
    try:
        out = fn(n, seed)
    except SpecverifyError:
        raise
    except Exception as e:  # a third-party sampler may raise anything: report it, keep the cause
        raise ContractError(f"{what}(n={n}, seed={seed}) raised {type(e).__name__}: {e}") from e
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
    return x


def check_seeded(fn, seed: int, *, n: int = 8, what: str = "candidate") -> None:
    """The same seed must give the same samples (reproducible verdicts depend on it)."""
    a, b = draw(fn, n, seed, what=what), draw(fn, n, seed, what=what)
    if not np.array_equal(a, b):
        raise ContractError(f"{what} returned different samples for the same seed {seed}: it ignores its seed; "
                            "seed its generator from the seed argument")
