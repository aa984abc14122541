"""Are the candidate's samples independent draws? A nearest-neighbour permutation test for (near) duplicates.

Every other statistic of the suite assumes i.i.d. samples; a sampler that repeats trajectories (two halves of a
batch sharing their noise, shards seeded alike) has the right marginal law and passes them. Against a reference
sample y of the same law (a reference sampler, or draws from the exact law), the test pools x and y and looks
at each point's nearest neighbour in the pool:

    T = #{candidate points whose nearest neighbour is a candidate point at distance <= r}

with r the ``CLOSE_QUANTILE`` quantile of all the pooled nearest-neighbour distances. Duplicated candidate rows
are each other's neighbours at distance 0, and near duplicates (shared noise that the chain does not forget)
are closer than independent points, so T is large. The neighbour graph and r are functions of the unordered
pool, so under H0 (the pooled points are i.i.d.) T's null law is its law under random relabelling: a
permutation test (``stats.sequential``), exact at any n. The reference is first rounded to the candidate's
precision (bfloat16 or float32 rows tie more often than float64 ones). Above ``MAX_POOL`` points the pool is
thinned before the neighbours are found, label-blind (from the pooled values, never from which side a point
came from): the points that have an exact copy in the whole pool, up to half the cap (a seeded random subset of
them if there are more), then a seeded random subset of the others up to the cap. The labels are then permuted
within the kept points, so the test stays exact, and at least half the kept points are not copied ones: a
candidate that duplicates more rows than the cap cannot crowd every reference point out of the pool.

Exact duplicates need no reference: two i.i.d. draws of a continuous law are never equal at float64 precision,
so ``exact_duplicate_test`` counts them and rejects (p = 0) at the first one. It has level 0 where it applies
(see its docstring); the permutation test covers the rest (near duplicates, and rows of a lower precision,
which tie by rounding).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from specverify.harness.stats.results import TestResult

__all__ = ["CLOSE_QUANTILE", "duplicate_rows", "exact_duplicate_test", "nearest_neighbour_test"]

CLOSE_QUANTILE = 0.01
MAX_POOL = {True: 20000, False: 4000}  # pooled points kept for the neighbour graph: d <= 8, d > 8
DUPLICATE_RTOL = 1e-9  # rows equal to this tolerance (relative to each coordinate's spread) are duplicates


def _grid(z: np.ndarray) -> np.ndarray:
    """Rows rounded to a grid of DUPLICATE_RTOL times each coordinate's spread (equal rows: equal grid rows)."""
    scale = np.where(z.std(0) > 0, z.std(0), 1.0) * DUPLICATE_RTOL
    return np.round(z / scale)


def duplicate_rows(x) -> int:
    """Rows of ``x`` equal (to DUPLICATE_RTOL of each coordinate's spread) to an earlier row."""
    x = np.asarray(x, dtype=np.float64)
    return len(x) - len(np.unique(_grid(x), axis=0))


def _precision(x: np.ndarray) -> str:
    """The precision the rows of ``x`` are exactly representable in: "bfloat16", "float32" or "float64"."""
    import torch

    for name, dtype in (("bfloat16", torch.bfloat16), ("float32", torch.float32)):
        if torch.equal(torch.as_tensor(x).to(dtype).double(), torch.as_tensor(x)):
            return name
    return "float64"


def _same_precision(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y rounded as x was: a candidate that returns bfloat16 or float32 rows has ties a float64 reference lacks."""
    import torch

    name = _precision(x)
    return y if name == "float64" else torch.as_tensor(y).to(getattr(torch, name)).double().numpy()


def exact_duplicate_test(x) -> TestResult:
    """Rows of ``x`` (n, d) exactly equal (as float values) to an earlier row; p = 0 if any, else p = 1.

    Under H0 (i.i.d. draws of a continuous law) a tie needs two draws to round alike in every coordinate. Let q
    be the chance that one coordinate of two draws rounds to the same value: q ~ E[ulp(X) f(X)] <= 2^-p E[|X| f(X)]
    (p = 23 in float32, 52 in float64), about 2e-8 in float32 and 4e-17 in float64 for a coordinate whose mean is
    within a few sd of 0 (q grows as |mean| / sd). For a law with a density on R^d, P(some tie) <= n^2 / 2 q^d:
    in float64, 2e-5 at d = 1 and n = 1e6; in float32 with d >= 3, 4e-12 at n = 1e6 (float32 at d = 1 ties about
    100 times at n = 1e5). So where it applies (float64 rows, or float32 rows with d >= 3) this is an exact test of
    level 0 (up to that bound): any exact tie rejects. Elsewhere (bfloat16, or float32 with d <= 2) ties by
    rounding are possible: not applicable, p = 1, and the permutation test (which rounds the reference alike)
    covers them. Exact equality, not ``duplicate_rows``' grid (which merges distinct float64 values at d = 1 and
    large n)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    precision, d = _precision(x), x.shape[1]
    if precision == "bfloat16" or (precision == "float32" and d <= 2):
        return TestResult("independence[exact duplicates]", 0.0, 1.0,
                          f"exact-duplicate count not applicable ({precision} rows, d = {d}: ties by rounding are "
                          "possible; the nearest-neighbour permutation test covers them)", len(x))
    s = x[np.lexsort(x.T[::-1])]
    ties = int(np.all(s[1:] == s[:-1], axis=1).sum())
    return TestResult("independence[exact duplicates]", float(ties), 0.0 if ties else 1.0,
                      f"exact-duplicate count ({precision} rows, d = {d}: i.i.d. draws of a continuous law never tie; "
                      "p = 0 if any row equals an earlier one, else 1; level 0)", len(x))


def _keep(z: np.ndarray, seed: int) -> np.ndarray:
    """Label-blind thinning to the cap: the points with an exact copy in ``z`` (a seeded random subset of them
    beyond half the cap), then a seeded random subset of the others."""
    cap = MAX_POOL[z.shape[1] <= 8]
    if len(z) <= cap:
        return np.arange(len(z))
    _, inverse, counts = np.unique(_grid(z), axis=0, return_inverse=True, return_counts=True)
    copied = np.flatnonzero(counts[inverse.ravel()] > 1)
    rest = np.setdiff1d(np.arange(len(z)), copied)
    rng = np.random.default_rng([seed, 13])
    if len(copied) > cap // 2:
        copied = rng.choice(copied, size=cap // 2, replace=False)
    extra = rng.choice(rest, size=min(len(rest), cap - len(copied)), replace=False)
    return np.sort(np.concatenate([copied, extra]))


def nearest_neighbour_test(x, y, alpha: float, *, seed: int = 0) -> TestResult:
    """The permutation test of an excess of close candidate-candidate neighbours (see the module docstring).

    ``x`` (n, d): the candidate's sample, ``y`` (m, d): a reference sample of the same law; ``alpha``: the level
    the sequential engine decides at (its p-value is valid at every level). The statistic reported is T minus
    its mean under relabelling."""
    import torch
    from scipy.spatial import cKDTree

    from specverify.harness.stats.permutation import Permutations
    from specverify.harness.stats.sequential import PilotScore, sequential_minp_counts

    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    z = np.concatenate([x, _same_precision(x, y)])
    keep = _keep(z, seed)
    label = keep < len(x)  # True: a candidate point (the observed labelling)
    pts = z[keep] / np.where(z.std(0) > 0, z.std(0), 1.0)
    dist, idx = cKDTree(pts).query(pts, k=2)
    close = dist[:, 1] <= np.quantile(dist[:, 1], CLOSE_QUANTILE)
    order = np.concatenate([np.flatnonzero(label), np.flatnonzero(~label)])  # observed row = identity
    src, nbr = torch.as_tensor(close[order]), torch.as_tensor(np.argsort(order)[idx[order, 1]])
    n_x = int(label.sum())

    def statistic(perms):  # position j holds item perms[:, j]; the first n_x positions are the candidate
        first = torch.zeros(perms.shape, dtype=torch.bool).scatter_(1, perms[:, :n_x], True)
        return (first & first[:, nbr] & src).sum(1).double()

    def tail_map(pilot):
        mean, sd = pilot.mean(0), max(float(pilot.std()), 0.5)  # counts: a spread below 1/2 is rounding
        return lambda raw: stats.norm.sf((raw - mean) / sd)

    r = sequential_minp_counts(statistic, len(keep), Permutations(seed=seed, alpha=alpha), PilotScore(tail_map),
                               rtol=0.0)
    expected = float(close.sum()) * n_x * (n_x - 1) / (len(keep) * (len(keep) - 1))
    method = (f"nearest-neighbour-perm (candidate neighbours within the {CLOSE_QUANTILE:.0%} quantile of pooled "
              f"NN distances, {len(keep)} pooled points; sequential, stopped ({r.stop}) after {r.n_perm} "
              f"permutations + {r.n_pilot} pilot, seed={seed})")
    return TestResult("independence[near duplicates]", float(r.observed[0]) - expected, r.pvalue, method, len(x))
