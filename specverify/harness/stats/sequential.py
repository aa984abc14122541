"""Sequential Monte Carlo permutation p-values: stop once the decision at alpha is settled (testing by betting).

The engine draws permutations in batches and, for each one, records whether it is at least as extreme as the
observed data (Z_t = 1) under a fixed score (smaller = more extreme). Under H0 the observed row and the permuted
rows are i.i.d. draws from the permutation law of the data, so with ties broken by independent uniform marks
the permutation p-value p* = P(Z_t = 1 | data) is uniform on (0, 1) and, given p*, the Z_t are i.i.d.
Bernoulli(p*). The null law of Z_1..Z_t is therefore the uniform mixture m(k, t) = B(k + 1, t - k + 1) for k
exceedances in t draws (Laplace's rule: P(Z_{t+1} = 1 | k) = (k + 1) / (t + 2)).

The wealth W_t = q(Z_1..t) / m(Z_1..t), with q a fixed mixture of Bernoulli laws whose rate c is small (a
mixture of Beta(a, b / alpha) priors on c, :data:`PRIOR`), is a likelihood ratio against the exact null law:
a nonnegative martingale with W_0 = 1 under H0. By Ville's inequality P(sup_t W_t >= 1/alpha) <= alpha, so

    reject as soon as W_t >= 1/alpha;   p = min(1, 1 / max_{s <= t} W_s)

is a test of level alpha and a p-value valid under ANY stopping rule (P(p <= u) <= u for every u; Fischer &
Ramdas 2024, "Sequential Monte Carlo testing by betting", arXiv 2401.07365, section 3's binomial mixture
strategy; Besag & Clifford 1991 is the curtailed special case that can only stop early to accept). The engine
stops early to accept once W can no longer reach 1/alpha within the cap even if no further permutation is
extreme (this only lowers the rejection probability), and at the cap of ceil(20 / alpha) permutations.

Cost and power, from the choice of :data:`PRIOR` (the design check of ``tests/harness/test_sequential.py``
asserts them at alpha = 1e-3): a clear pass stops after a median of at most 50 permutations; a clear rejection
within 1.7 / alpha (the least any valid test can use is 1 / alpha - 1); a bug whose permutation p-value is
alpha / 2 is rejected with probability at least 0.8 (a fixed B = 1/alpha - 1 rejects it with probability
(1 - alpha / 2)^B, about 0.61). Ville's bound is an inequality: under H0 the rule rejects less often than alpha.

The score may be built from a pilot batch of permutations (e.g. to standardise statistics by their permutation
moments): the pilot rows are drawn first and never counted, so the score is a fixed function when the counted
rows are drawn and the argument above holds conditionally on the pilot.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Callable

import numpy as np
import torch

from specverify.harness.stats.permutation import (
    DEFAULT_BATCH,
    PermutationError,
    Permutations,
    draw_permutations,
    evaluator,
)

__all__ = ["PRIOR", "PilotScore", "SequentialResult", "futility_limits", "log_wealth", "max_permutations",
           "sequential_minp_counts"]

PRIOR = ((0.5, 1.0, 5.0), (0.5, 10.0, 20.0))  # (weight, a, b * alpha): the rate c ~ mixture of Beta(a, b / alpha)
CAP_FACTOR = 20  # at most ceil(CAP_FACTOR / alpha) counted permutations
KEY_STEP = 1e-4  # scores are compared on a grid of log(score) (rounding of equivalent permutations ties)
FIRST_BATCH = 32
N_PILOT = 32


@dataclasses.dataclass(frozen=True)
class PilotScore:
    """How a row of raw statistics is scored: ``tail_map(pilot)`` gets the ``(n_pilot, k)`` raw statistics of
    ``n_pilot`` pilot permutations (drawn first, never counted) and returns the map from raw rows ``(b, k)`` to
    tail areas ``(b, k)`` (smaller = more extreme); a row's score is its minimum."""

    tail_map: Callable[[np.ndarray], Callable[[np.ndarray], np.ndarray]]
    n_pilot: int = N_PILOT


@dataclasses.dataclass(frozen=True)
class SequentialResult:
    """The sequential test of a battery: anytime-valid p-value, decision, permutations used and why it stopped.

    ``extreme``: per column, the counted rows whose combined score is at most that column's observed score (the
    single-step minP counts); ``above`` and ``tied``: per column, the counted rows whose raw statistic is above
    (tied with) the observed one, for marginal p-values. ``stop``: "reject", "accept" (W can no longer reach
    1/alpha) or "cap". ``observed_tails``: the observed row's tail areas."""

    pvalue: float
    reject: bool
    n_perm: int
    n_pilot: int
    n_extreme: int
    stop: str
    observed: np.ndarray = dataclasses.field(repr=False)
    observed_tails: np.ndarray = dataclasses.field(repr=False)
    extreme: np.ndarray = dataclasses.field(repr=False)
    above: np.ndarray = dataclasses.field(repr=False)
    tied: np.ndarray = dataclasses.field(repr=False)


def max_permutations(alpha: float) -> int:
    """The cap on counted permutations, ceil(20 / alpha)."""
    return math.ceil(CAP_FACTOR / alpha)


def log_wealth(k, t, alpha: float) -> np.ndarray:
    """log W after k extreme permutations in t: log of q(k, t) / m(k, t) (mixture of Beta-Bernoulli laws over
    the uniform mixture, the exact null law); W = 1 at t = 0."""
    from scipy.special import betaln, logsumexp

    k, t = np.asarray(k, dtype=np.float64), np.asarray(t, dtype=np.float64)
    parts = [math.log(w) + betaln(k + a, t - k + b / alpha) - betaln(a, b / alpha) for w, a, b in PRIOR]
    return logsumexp(np.stack(parts), axis=0) - betaln(k + 1, t - k + 1)


@functools.lru_cache(maxsize=16)
def _limits(alpha: float, cap: int) -> tuple[int, ...]:
    return tuple(futility_limits(alpha, cap))


def futility_limits(alpha: float, cap: int) -> np.ndarray:
    """limit[k]: the last t <= cap at which W could still reach 1/alpha with k extreme permutations and no more
    (0: never); past it the decision is settled as "accept". The last entry covers every larger k."""
    t = np.arange(1, cap + 1)
    out = []
    for k in range(cap + 1):
        ok = np.flatnonzero(log_wealth(k, np.maximum(t, k), alpha) >= math.log(1 / alpha))
        out.append(int(ok[-1]) + 1 if ok.size else 0)
        if not ok.size:
            break
    return np.array(out)


def _keys(g: np.ndarray) -> np.ndarray:
    """Row scores on a grid of log(score) (0 maps to -inf, the most extreme)."""
    if np.isnan(g).any():
        raise PermutationError("the statistic is NaN; check the data for NaN/Inf and constant samples")
    with np.errstate(divide="ignore"):
        return np.floor(np.log(np.clip(g, 0, 1)) / KEY_STEP)


def _batch_sizes(cap: int, largest: int):
    done, b = 0, FIRST_BATCH
    while done < cap:
        size = min(b, largest, cap - done)
        yield size
        done += size
        b *= 2


def sequential_minp_counts(statistic: Callable[[torch.Tensor], torch.Tensor], n_items: int, perm: Permutations,
                           score: PilotScore, *, rtol, futility: bool = True) -> SequentialResult:
    """The sequential minP test of the columns of ``statistic`` (see the module docstring).

    ``perm`` (:class:`~specverify.harness.stats.permutation.Permutations`): ``alpha`` (required), ``seed``,
    ``n_perm`` the cap on counted permutations (None: ceil(20 / alpha)), ``batch_size`` the largest batch (None:
    256), ``device``. ``score`` (:class:`PilotScore`): the tail map built from the pilot permutations.
    ``rtol``: per-column relative tie tolerance of the raw statistics (marginal counts only).
    Permutations come from ``permutation.draw_permutations`` (seeded as the fixed-B engine); tie marks from
    numpy's generator seeded ``[seed, 11]``. ``futility=False``: no early stop to accept (draw up to the cap
    unless W reaches 1/alpha), for descriptive p-values when the decision is made elsewhere.
    """
    alpha, seed = perm.alpha, perm.seed
    if alpha is None or not 0 < alpha < 1:
        raise PermutationError(f"alpha must be in (0, 1), got {alpha}")
    cap = max_permutations(alpha) if perm.n_perm is None else int(perm.n_perm)
    batch_size = DEFAULT_BATCH if perm.batch_size is None else perm.batch_size
    evaluate = evaluator(statistic, perm.device)
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    marks = np.random.default_rng([int(seed), 11])
    obs = evaluate(torch.arange(n_items).unsqueeze(0)).numpy()
    pilot = np.concatenate([evaluate(draw_permutations(gen, n_items, b)).numpy()
                            for b in _batch_sizes(score.n_pilot, batch_size)])
    tails = score.tail_map(pilot)
    g0 = np.asarray(tails(obs), dtype=np.float64)[0]
    key0, mark0 = _keys(g0.min(keepdims=True))[0], marks.uniform()
    col_keys = _keys(g0 * (1 + 1e-6))
    tol = np.broadcast_to(np.asarray(rtol, np.float64), g0.shape) * np.maximum(np.abs(obs[0]), np.abs(pilot).max(0))
    limits, threshold = np.array(_limits(float(alpha), cap)), math.log(1 / alpha)
    k = t = 0
    best, stop = 0.0, "cap"
    extreme, above, tied = (np.zeros(g0.size, np.int64) for _ in range(3))
    for b in _batch_sizes(cap, batch_size):
        raw = evaluate(draw_permutations(gen, n_items, b)).numpy()
        keys = _keys(np.asarray(tails(raw), dtype=np.float64).min(1))
        u = marks.uniform(size=b)
        z = (keys < key0) | ((keys == key0) & (u <= mark0))
        ks, ts = k + np.cumsum(z), t + np.arange(1, b + 1)
        lw = log_wealth(ks, ts, alpha)
        settled = lw >= threshold
        if futility:
            settled |= ts > limits[np.minimum(ks, len(limits) - 1)]
        end = int(np.argmax(settled)) + 1 if settled.any() else b
        raw, keys = raw[:end], keys[:end]
        extreme += (keys[:, None] <= col_keys[None, :]).sum(0)
        up = raw > obs[0] + tol
        above += up.sum(0)
        tied += ((raw >= obs[0] - tol) & ~up).sum(0)
        best = max(best, float(lw[:end].max()))
        k, t = int(ks[end - 1]), int(ts[end - 1])
        if settled.any():
            stop = "reject" if lw[end - 1] >= threshold else "accept"
            break
    reject = stop == "reject"
    p = min(1.0, math.exp(-best))
    return SequentialResult(min(p, alpha) if reject else p, reject, t, len(pilot), k, stop, obs[0], g0, extreme,
                            above, tied)
