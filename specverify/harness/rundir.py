"""A run directory for sharded runs: a manifest with the run's signature and one file per finished shard.

Layout::

    RUN_DIR/manifest.json                      {"format": 1, "signature": {...}}
    RUN_DIR/<call>/shard-00003.npz             one finished shard: its arrays and its (index, size, seed)

``<call>`` names one call of a candidate (``candidate-n4000-seed0``): a run may make several (the seed probe, the
main draw). Every file is written to a temporary name in the same folder and moved into place with
``os.replace``, so a reader sees a whole shard or none, even after a SIGKILL mid-write.

Contract: :class:`RunDir` refuses a folder whose manifest holds another signature (the message names the
fields that differ), and a folder that already holds a run unless ``resume`` is set. A shard file whose
recorded (index, size, seed) differs from the plan is an error, never silently reused.
"""

from __future__ import annotations

import io
import json
import platform
from importlib import metadata
from pathlib import Path

import numpy as np

from specverify._files import atomic_bytes
from specverify.errors import UsageError

__all__ = ["RunDir", "package_versions"]

FORMAT = 1
_PACKAGES = ("specverify", "numpy", "scipy", "torch", "jax", "numpyro")


def package_versions() -> dict:
    """Python's and the numerical packages' versions (part of a run's signature: they change random streams)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def _differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    """The fields where two signatures differ, as ``name: old -> new``."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


class RunDir:
    """A run directory holding the shards of one run (see the module docstring)."""

    def __init__(self, path, signature: dict, *, resume: bool = False):
        self.path = Path(path)
        self.signature = json.loads(json.dumps(signature))  # plain JSON types, as they will be read back
        manifest = self.path / "manifest.json"
        if manifest.exists():
            self._check(manifest, resume)
        else:
            if self.path.exists() and not self.path.is_dir():
                raise UsageError(f"--run-dir {self.path} is a file; give a folder")
            body = json.dumps({"format": FORMAT, "signature": self.signature}, indent=2, sort_keys=True) + "\n"
            atomic_bytes(manifest, body.encode())

    def _check(self, manifest: Path, resume: bool) -> None:
        if not resume:
            raise UsageError(f"--run-dir {self.path} already holds a run; pass --resume to continue it (only its "
                             "missing shards are computed), or choose a new --run-dir")
        try:
            old = json.loads(manifest.read_text())
        except (OSError, ValueError) as e:
            raise UsageError(f"--run-dir {self.path}: cannot read manifest.json ({e}); choose a new --run-dir") \
                from None
        if old.get("format") != FORMAT or old.get("signature") != self.signature:
            diff = _differences(old.get("signature") or {}, self.signature) or [f"format {old.get('format')}"]
            raise UsageError(f"--resume refused: {self.path} holds a different run ({'; '.join(diff)}); rerun "
                             "with the same arguments and packages, or choose a new --run-dir")

    def shard_path(self, call: str, index: int) -> Path:
        return self.path / call / f"shard-{index:05d}.npz"

    def done(self, call: str) -> list[int]:
        """The indices of the finished shards of ``call``."""
        folder = self.path / call
        return sorted(int(p.stem.removeprefix("shard-")) for p in folder.glob("shard-*.npz")) if folder.is_dir() \
            else []

    def load(self, call: str, index: int, size: int, seed: int) -> dict | None:
        """The stored arrays of shard ``index`` (None if not finished); its plan must match."""
        path = self.shard_path(call, index)
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
        meta = tuple(int(data.pop(k)) for k in ("_index", "_size", "_seed"))
        if meta != (index, size, seed):
            raise UsageError(f"{path} holds shard (index, size, seed) = {meta}, not the planned "
                             f"{(index, size, seed)}; choose a new --run-dir")
        return data

    def save(self, call: str, index: int, size: int, seed: int, data: dict) -> Path:
        """Store one finished shard atomically."""
        buf = io.BytesIO()
        meta = {"_index": np.int64(index), "_size": np.int64(size), "_seed": np.uint64(seed)}
        np.savez(buf, **{k: np.asarray(v) for k, v in data.items()}, **meta)
        return atomic_bytes(self.shard_path(call, index), buf.getvalue())
