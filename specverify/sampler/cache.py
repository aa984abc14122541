"""Where trained models are cached, and how a cache file is written.

The cache root is ``$SPECVERIFY_CACHE`` when set, else the platform's user cache folder: ``$XDG_CACHE_HOME/specverify``
(default ``~/.cache/specverify``) on Linux and other POSIX systems, ``~/Library/Caches/specverify`` on macOS,
``%LOCALAPPDATA%\\specverify\\Cache`` on Windows. It never depends on the working directory. The root is looked up at
each call (not at import), so setting the variable later takes effect.

A cache file is written by the suite's one atomic write, :func:`specverify._files.atomic_write`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["ENV", "cache_dir", "resolve"]

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
