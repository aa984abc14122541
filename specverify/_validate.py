"""Small input checks shared by both halves (pure Python: no torch, no jax)."""

import math

import numpy as np

from specverify.errors import ChainError


def is_positive_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


def positive_int(v, name: str, context: str = "", error: type[Exception] = ChainError) -> int:
    """``v`` as an int if it is a Python or numpy int >= 1 (not a bool, not a float); else raise ``error``."""
    if not is_positive_int(v):
        raise error(f"{name} must be a positive int{context}, got {v!r}")
    return int(v)


def real(v, name: str, error: type[Exception] = ChainError) -> float:
    """``v`` as a finite float (not a bool, not NaN or Inf); else raise ``error``."""
    if isinstance(v, bool):
        raise error(f"{name} must be a number, got {v!r}")
    try:
        f = float(v)
    except (TypeError, ValueError):
        raise error(f"{name} must be a number, got {v!r}") from None
    if not math.isfinite(f):
        raise error(f"{name} must be finite, got {v!r}")
    return f


def in_unit_interval(v, name: str, error: type[Exception] = ChainError, *, upper_closed: bool = False) -> float:
    """``v`` as a float in (0, 1) (or (0, 1] with ``upper_closed``); else raise ``error``."""
    f = real(v, name, error)
    if not (0 < f < 1 or (upper_closed and f == 1)):
        raise error(f"{name} must be in (0, 1{']' if upper_closed else ')'}, got {v!r}")
    return f


def readonly(*arrays) -> None:
    """Mark numpy arrays read-only (frozen records hold them)."""
    for a in arrays:
        a.setflags(write=False)


def set_frozen(record, **arrays) -> None:
    """Store validated arrays on a frozen dataclass, read-only (for use in ``__post_init__``)."""
    readonly(*arrays.values())
    for name, a in arrays.items():
        object.__setattr__(record, name, a)


def step_sizes(step_size, n_steps) -> np.ndarray:
    """A positive step size per step from a float or an array of n_steps values (Langevin chains)."""
    positive_int(n_steps, "n_steps")
    try:
        h = np.broadcast_to(np.asarray(step_size, dtype=np.float64), (int(n_steps),)).copy()
    except ValueError:
        raise ChainError(f"step_size must be a float or one value per step ({n_steps}), "
                         f"got shape {np.shape(step_size)}") from None
    if not np.all(h > 0):
        raise ChainError("step_size must be > 0 at every step")
    return h
