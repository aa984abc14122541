"""Third-party samplers as harness callables.

A target names a callable as ``package.module:attr`` (importable) or ``path/to/file.py:attr`` (loaded from the
file; its folder goes on ``sys.path`` while it loads, so sibling imports work). ``attr`` may be dotted
(``module:Class.method``). Three contracts (``docs/contracts.md``):

- ``black-box``: ``candidate(n, seed)`` returns an (n, d) array (numpy, torch or JAX), or a mapping with it
  under ``"samples"`` and optional acceptance counts (see ``specverify.harness.contracts``).
- ``chain``: ``sampler(view, n, seed)`` runs on a built-in problem's third-party view
  (``specverify.contract.ThirdPartyView``: ``eps_model(x, t)`` + betas, or ``mean(x, k)`` + ``sigma``) and
  returns the same as a black box. :func:`chain_candidate` turns it into a black box for one problem.
- ``kernel``: ``coupling(mean_p, mean_q, sigma, z, u) -> (x, accepted)``, or ``(mean_p, mean_q, sigma, seed)``
  (``specverify.harness.coupling_check``).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import sys
from pathlib import Path

from specverify.errors import CandidateError, ContractError, UsageError

__all__ = ["CONTRACTS", "chain_candidate", "detect_contract", "load", "load_object"]

CONTRACTS = ("black-box", "chain", "kernel")


def _attr(obj, dotted: str, target: str, where: str):
    for part in dotted.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"{target}: {where} has no attribute {part!r}") from None
    return obj


def load(target: str):
    """The callable named by ``module:attr`` or ``file.py:attr``."""
    obj = load_object(target)
    if not callable(obj):
        raise UsageError(f"{target} is a {type(obj).__name__}, not a callable")
    return obj


def load_object(target: str):
    """The object named by ``module:attr`` or ``file.py:attr`` (a callable, or e.g. a target chain)."""
    if not isinstance(target, str) or ":" not in target:
        raise UsageError(f"cannot read target {target!r}: write package.module:attr or path/to/file.py:attr")
    where, _, attr = target.rpartition(":")
    if not where or not attr:
        raise UsageError(f"cannot read target {target!r}: write package.module:attr or path/to/file.py:attr")
    if where.endswith(".py"):
        path = Path(where).expanduser().resolve()
        if not path.is_file():
            raise UsageError(f"{target}: no such file {path}")
        name = f"specverify_target_{abs(hash(str(path)))}"
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.path.insert(0, str(path.parent))
        try:
            spec.loader.exec_module(module)
        except Exception as e:
            raise CandidateError(f"{target}: loading {path.name} raised {type(e).__name__}: {e}") from e
        finally:
            sys.path.remove(str(path.parent))
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as e:
            raise UsageError(f"{target}: cannot import {where!r} ({e}); is it installed, or did you mean a "
                                  f"path to a .py file?") from e
    return _attr(module, attr, target, where)


def detect_contract(fn) -> str:
    """'black-box' for fn(n, seed), 'chain' for fn(view, n, seed), 'kernel' for a coupling
    fn(mean_p, mean_q, sigma, z, u) or fn(mean_p, mean_q, sigma, seed)."""
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    except (TypeError, ValueError):
        return "black-box"
    by_count = {2: "black-box", 3: "chain", 4: "kernel", 5: "kernel"}
    if len(params) not in by_count:
        raise ContractError(f"{getattr(fn, '__name__', fn)} takes {len(params)} required positional arguments; "
                              f"the contracts take 2 (n, seed), 3 (view, n, seed), 4 (mean_p, mean_q, sigma, seed) "
                              f"or 5 (mean_p, mean_q, sigma, z, u): pass --contract if it is one of them")
    return by_count[len(params)]


def chain_candidate(sampler, view):
    """A chain-level sampler bound to one problem's third-party view: a black box (n, seed) -> output."""

    def candidate(n, seed):
        return sampler(view, n, seed)

    candidate.__name__ = getattr(sampler, "__name__", "sampler")
    return candidate
