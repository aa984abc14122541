"""The permutation engine: one implementation of the +1-corrected permutation p-value, shared by every statistic.

Given a vectorised statistic ``statistic(perms)`` of a batch of index permutations ``perms`` (a ``(b, N)`` long
tensor; row ``i`` says that position ``j`` of the permuted pool holds original item ``perms[i, j]``), the engine
evaluates the identity (the observed statistic) and ``n_perm`` uniformly random permutations, and returns

    p = (1 + #{i : T_i >= T_obs}) / (1 + n_perm)

(Phipson & Smyth 2010, "Permutation p-values should never be zero"; scipy ``permutation_test`` does the same).

Contract
    - Under H0 (the pooled items are exchangeable) the observed statistic and the ``n_perm`` permuted ones are
      exchangeable, so P(p <= u) <= u for every u: the test has level alpha exactly up to the discreteness of p;
      without ties p is uniform on {1, ..., n_perm + 1} / (n_perm + 1).
    - ``combine`` maps the ``(n_perm + 1, k)`` matrix of raw statistics (observed first) to ``n_perm + 1`` values.
      It must treat rows symmetrically (e.g. standardise each column by its mean and standard deviation over all
      rows, then take a max): then exchangeability, and so validity, is kept without any multiplicity correction.
    - Near-ties count as extreme: ``T_i >= T_obs - tol`` with ``tol = tie_rtol * max_i |T_i|`` so that a
      permutation equivalent to the identity (within-group shuffles) is not lost to rounding. This can only make
      p larger (conservative).
    - Permutations are drawn one by one with ``torch.randperm`` from a CPU ``torch.Generator`` seeded with
      ``seed`` and then moved to ``device`` (the settings travel in one :class:`Permutations` record): the
      p-value depends on the seed only, not on the batch size or on the device (up to floating-point rounding of
      the statistic).
    - With ``alpha`` given, fewer than ceil(1/alpha) - 1 permutations is an error: the smallest attainable p-value
      1/(n_perm + 1) would exceed alpha and the test could never reject. About 20/alpha permutations make the
      decision stable (the Monte Carlo error of p near alpha is small against alpha).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import torch

from specverify.errors import PermutationError

__all__ = ["TIE_RTOL", "PermutationResult", "Permutations", "Pool", "draw_permutations", "evaluator",
           "group_indicator", "max_standardised", "min_permutations", "permutation_matrix", "permutation_pvalue",
           "permutation_test"]

TIE_RTOL = 1e-9
DEFAULT_BATCH = 256  # permutations evaluated at a time when the caller does not size the batch


@dataclasses.dataclass(frozen=True)
class Permutations:
    """The permutation engine's settings, shared by every test that calls it.

    ``n_perm``: the number of permutations (None: the test's default; the sequential engines read it as their
    cap); ``seed``: the CPU ``torch.Generator`` seed of the permutations (and of the test's other randomness);
    ``alpha``: the level the test must be able to reach (checked: at least ceil(1/alpha) - 1 permutations);
    ``batch_size``: permutations evaluated at a time (None: ``DEFAULT_BATCH``, or sized by memory in the kernel
    tests); ``device``: where the statistic runs (None: CPU, or the data's device in the kernel tests).
    Validated by the engine when it runs, with :class:`~specverify.errors.PermutationError`.
    """

    n_perm: int | None = None
    seed: int = 0
    alpha: float | None = None
    batch_size: int | None = None
    device: torch.device | str | None = None


@dataclasses.dataclass(frozen=True)
class Pool:
    """A pooled two-sample: rows of ``z`` (N, ...) with the first ``n`` from the first sample and the last ``m``
    from the second; the first n positions of a permutation of the pool form the first group."""

    z: torch.Tensor
    n: int
    m: int


@dataclasses.dataclass(frozen=True)
class PermutationResult:
    """Observed statistic, +1-corrected p-value, and the permutation null (combined statistics, observed excluded)."""

    statistic: float
    pvalue: float
    n_perm: int
    n_extreme: int
    null: np.ndarray = dataclasses.field(repr=False)


def min_permutations(alpha: float) -> int:
    """The fewest permutations whose smallest p-value 1/(n_perm + 1) is <= alpha: ceil(1/alpha) - 1.

    Evaluated in floating point as the p-value and Holm's thresholds are (one more where 1/(B + 1) rounds above
    an alpha that equals it exactly, e.g. alpha = 0.001/3).
    """
    if not 0 < alpha < 1:
        raise PermutationError(f"alpha must be in (0, 1), got {alpha}")
    # ceil(1/alpha) - 1 in exact arithmetic; in floating point 1/(B + 1) and alpha may differ by an ulp either way,
    # so settle on the smallest B whose smallest p-value, computed as the engine computes it, is <= alpha.
    b = max(1, math.floor(1.0 / alpha) - 2)
    while 1 / (1 + b) > alpha:
        b += 1
    return b


def _check_n_perm(n_perm: int, alpha: float | None) -> int:
    if n_perm is None or isinstance(n_perm, bool) or int(n_perm) != n_perm or n_perm < 1:
        raise PermutationError(f"n_perm must be a positive integer, got {n_perm!r}")
    n_perm = int(n_perm)
    if alpha is not None:
        need = min_permutations(alpha)
        if n_perm < need:
            raise PermutationError(
                f"with n_perm={n_perm} the smallest attainable p-value is 1/{n_perm + 1} = {1 / (n_perm + 1):.3g} > "
                f"alpha={alpha:.3g}, so this test cannot reject at alpha; use n_perm >= ceil(1/alpha) - 1 = {need} "
                f"(about 20/alpha = {math.ceil(20 / alpha)} for a stable decision)")
    return n_perm


def permutation_pvalue(observed: float, null, *, tie_rtol: float = TIE_RTOL) -> tuple[float, int]:
    """(1 + #{null >= observed - tol}) / (1 + len(null)) and the count; tol = tie_rtol * max |statistic|."""
    null = np.asarray(null, dtype=np.float64).ravel()
    if null.size == 0:
        raise PermutationError("the permutation null is empty; use n_perm >= 1")
    if not (np.isfinite(observed) and np.isfinite(null).all()):
        raise PermutationError("the statistic is NaN or infinite; check the data for NaN/Inf and constant samples")
    if not 0 <= tie_rtol < 1:
        raise PermutationError(f"tie_rtol must be in [0, 1), got {tie_rtol}")
    tol = tie_rtol * max(abs(float(observed)), float(np.abs(null).max()))
    b = int(np.count_nonzero(null >= observed - tol))
    return (1 + b) / (1 + null.size), b


def group_indicator(perms: torch.Tensor, n_first: int, dtype=torch.float64) -> torch.Tensor:
    """(b, N) 0/1 matrix: row i marks the items that permutation i puts in the first group (its first n_first)."""
    a = torch.zeros(perms.shape, dtype=dtype, device=perms.device)
    return a.scatter_(1, perms[:, :n_first], 1.0)


def draw_permutations(gen: torch.Generator, n_items: int, b: int) -> torch.Tensor:
    """The next ``b`` permutations of ``n_items`` from ``gen``, drawn one by one (a (b, n_items) long tensor)."""
    return torch.stack([torch.randperm(n_items, generator=gen) for _ in range(b)])


def evaluator(statistic: Callable[[torch.Tensor], torch.Tensor], device=None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``perms -> (b, k)`` float64 CPU statistics of ``statistic`` evaluated on ``device``; checks the row count."""
    device = torch.device(device) if device is not None else torch.device("cpu")

    def evaluate(perms: torch.Tensor) -> torch.Tensor:
        s = statistic(perms.to(device))
        s = s.reshape(s.shape[0], -1) if s.ndim > 1 else s[:, None]
        if s.shape[0] != perms.shape[0]:
            raise PermutationError(f"the statistic returned {s.shape[0]} rows for {perms.shape[0]} permutations")
        return s.detach().to("cpu", torch.float64)

    return evaluate


def permutation_matrix(statistic: Callable[[torch.Tensor], torch.Tensor], n_items: int,
                       perm: Permutations) -> torch.Tensor:
    """The raw ``(n_perm + 1, k)`` float64 CPU matrix of ``statistic`` (observed row first, then the permutations).

    ``perm``: n_perm (required), seed, alpha, batch_size and device (:class:`Permutations`). The rows are
    exchangeable under H0; ``permutation_test`` and ``stats.omnibus`` turn them into p-values.
    """
    n_perm = _check_n_perm(perm.n_perm, perm.alpha)
    batch_size = DEFAULT_BATCH if perm.batch_size is None else perm.batch_size
    if int(n_items) != n_items or n_items < 2:
        raise PermutationError(f"a permutation test needs at least 2 items, got {n_items}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise PermutationError(f"batch_size must be a positive integer, got {batch_size!r}")
    n_items, batch_size = int(n_items), int(batch_size)
    evaluate = evaluator(statistic, perm.device)
    gen = torch.Generator(device="cpu").manual_seed(int(perm.seed))
    rows = [evaluate(torch.arange(n_items).unsqueeze(0))]
    done = 0
    while done < n_perm:
        b = min(batch_size, n_perm - done)
        rows.append(evaluate(draw_permutations(gen, n_items, b)))
        done += b
    return torch.cat(rows)


def permutation_test(statistic: Callable[[torch.Tensor], torch.Tensor], n_items: int, perm: Permutations, *,
                     combine: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     tie_rtol: float = TIE_RTOL) -> PermutationResult:
    """Permutation p-value of ``statistic`` over ``n_items`` exchangeable items (larger = more extreme).

    ``statistic`` takes a ``(b, n_items)`` long tensor of permutations on ``perm.device`` and returns ``(b,)`` or
    ``(b, k)`` statistics; with ``k > 1`` a ``combine`` is required (see the module docstring). ``perm``
    (:class:`Permutations`): ``n_perm`` permutations (required) seeded by ``seed``, evaluated ``batch_size`` at a
    time, so memory stays bounded whatever ``n_perm`` is; with ``alpha``, too few to reach it is an error.
    ``tie_rtol`` should cover the rounding of the statistic (the default suits float64 arithmetic).
    """
    raw = permutation_matrix(statistic, n_items, perm)  # (n_perm + 1, k), observed first
    n_perm = raw.shape[0] - 1
    if combine is not None:
        stats = combine(raw).reshape(-1)
        if stats.shape[0] != n_perm + 1:
            raise PermutationError(f"combine returned {stats.shape[0]} values for {n_perm + 1} rows")
    elif raw.shape[1] == 1:
        stats = raw[:, 0]
    else:
        raise PermutationError(f"the statistic has {raw.shape[1]} columns; pass combine= to reduce them to one "
                               f"(e.g. max_standardised)")
    stats = stats.numpy()
    p, b = permutation_pvalue(float(stats[0]), stats[1:], tie_rtol=tie_rtol)
    return PermutationResult(float(stats[0]), p, n_perm, b, stats[1:].copy())


def max_standardised(raw: torch.Tensor) -> torch.Tensor:
    """max_j (T_ij - mean_j) / sd_j with column moments over all rows (observed included): symmetric in rows.

    A column with zero spread (the statistic is the same under every permutation) carries no evidence and is
    left out; when every column is constant the result is 0 for all rows (p = 1).
    """
    mean = raw.mean(0, keepdim=True)
    sd = raw.std(0, unbiased=False, keepdim=True)
    scale = torch.clamp(raw.abs().amax(0, keepdim=True), min=torch.finfo(raw.dtype).tiny)
    ok = sd > TIE_RTOL * scale
    if not bool(ok.any()):
        return torch.zeros(raw.shape[0], dtype=raw.dtype)
    z = (raw - mean) / torch.where(ok, sd, torch.ones_like(sd))
    return torch.where(ok, z, torch.full_like(z, -math.inf)).amax(1)

