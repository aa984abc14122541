"""Small input checks shared by both halves (pure Python: no torch, no jax)."""

import numpy as np

from specverify.errors import ChainError


def is_positive_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


def positive_int(v, name: str, context: str = "", error: type[Exception] = ChainError) -> int:
    """``v`` as an int if it is a Python or numpy int >= 1 (not a bool, not a float); else raise ``error``."""
    if not is_positive_int(v):
        raise error(f"{name} must be a positive int{context}, got {v!r}")
    return int(v)


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
