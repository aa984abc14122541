"""Where trained models are cached, and how a cache file is written.

The cache root is ``$SPECVERIFY_CACHE`` when set, else the platform's user cache folder: ``$XDG_CACHE_HOME/specverify``
(default ``~/.cache/specverify``) on Linux and other POSIX systems, ``~/Library/Caches/specverify`` on macOS,
``%LOCALAPPDATA%\\specverify\\Cache`` on Windows. It never depends on the working directory. The root is looked up at
each call (not at import), so setting the variable later takes effect.

Contract: :func:`atomic_write` either leaves the complete new file at ``path`` or leaves ``path`` as it was; the
temporary file it writes next to ``path`` is removed when writing fails.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["ENV", "atomic_write", "cache_dir", "resolve"]

ENV = "SPECVERIFY_CACHE"


def _user_cache_root() -> Path:
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "specverify" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "specverify"
    base = os.environ.get("XDG_CACHE_HOME") or ""
    return (Path(base) if Path(base).is_absolute() else Path.home() / ".cache") / "specverify"


def cache_dir(*parts: str) -> Path:
    """The cache folder ``<root>/<parts...>`` (not created): root ``$SPECVERIFY_CACHE``, else the user cache."""
    root = os.environ.get(ENV)
    return (Path(root).expanduser() if root else _user_cache_root()).joinpath(*parts)


def resolve(cache: Path | str | bool | None, *parts: str) -> Path | None:
    """A ``cache=`` argument as a folder: True is :func:`cache_dir` (parts), None or False is no cache."""
    if cache is None or cache is False:
        return None
    if cache is True:
        return cache_dir(*parts)
    return Path(cache)


def atomic_write(path: Path | str, write: Callable[[Path], None]) -> Path:
    """Write ``path`` through ``write(tmp)`` on a temporary file in the same folder, then ``os.replace`` it into
    place: readers (other processes included) see the old file or the whole new one, never a partial file; the
    temporary file is flushed to disk first (fsync), so a crash leaves no empty file in place. Deliberate twin of
    ``specverify.harness.rundir.atomic_write`` (the halves share no code)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
