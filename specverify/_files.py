"""How the suite writes a file that another process may read: one atomic write, shared by both halves (the model
cache of the sampler, the run directory of the judge's shards). Plain Python, no torch.

Contract: :func:`atomic_write` either leaves the complete new file at ``path`` or leaves ``path`` as it was; the
temporary file it writes next to ``path`` is removed when writing fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

__all__ = ["atomic_bytes", "atomic_write"]


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(tmp)`` on a hidden temporary file in the same folder, flush it to disk (fsync)
    and ``os.replace`` it into place: readers (other processes included) see the old file or the whole new one,
    never a partial one, and a crash leaves no empty file in place. ``atomic_bytes`` below for plain bytes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def atomic_bytes(path: Path | str, data: bytes) -> Path:
    """:func:`atomic_write` of ``data`` (bytes; anything else raises TypeError and leaves ``path`` as it was)."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"atomic_bytes writes bytes, got {type(data).__name__}")
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))
