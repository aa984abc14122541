"""Small input checks shared by both halves (pure Python: no torch, no jax)."""

import numpy as np

from specverify.errors import ChainError


def is_positive_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


def positive_int(v, name: str, context: str = "") -> int:
    if not is_positive_int(v):
        raise ChainError(f"{name} must be a positive int{context}, got {v!r}")
    return int(v)
