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
thinned before the neighbours are found, label-blind: every point that has an exact copy in the whole pool is
kept, then a seeded random subset of the others (the labels are then permuted within the kept points; still
exact).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from specverify.harness.stats.results import TestResult

__all__ = ["CLOSE_QUANTILE", "duplicate_rows", "nearest_neighbour_test"]

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


def _same_precision(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """y rounded as x was: a candidate that returns bfloat16 or float32 rows has ties a float64 reference lacks."""
    import torch

    for dtype in (torch.bfloat16, torch.float32):
        if torch.equal(torch.as_tensor(x).to(dtype).double(), torch.as_tensor(x)):
            return torch.as_tensor(y).to(dtype).double().numpy()
    return y


def _keep(z: np.ndarray, seed: int) -> np.ndarray:
    """Label-blind thinning: indices of the points with an exact copy in ``z``, then random others, up to the cap."""
    cap = MAX_POOL[z.shape[1] <= 8]
    if len(z) <= cap:
        return np.arange(len(z))
    _, inverse, counts = np.unique(_grid(z), axis=0, return_inverse=True, return_counts=True)
    copied = np.flatnonzero(counts[inverse.ravel()] > 1)
    rest = np.setdiff1d(np.arange(len(z)), copied)
    rng = np.random.default_rng([seed, 13])
    extra = rng.choice(rest, size=max(0, min(len(rest), cap - len(copied))), replace=False)
    return np.sort(np.concatenate([copied, extra]))


def nearest_neighbour_test(x, y, alpha: float, *, seed: int = 0) -> TestResult:
    """The permutation test of an excess of close candidate-candidate neighbours (see the module docstring).

    ``x`` (n, d): the candidate's sample, ``y`` (m, d): a reference sample of the same law; ``alpha``: the level
    the sequential engine decides at (its p-value is valid at every level). The statistic reported is T minus
    its mean under relabelling."""
    import torch
    from scipy.spatial import cKDTree

    from specverify.harness.stats.sequential import sequential_minp_counts

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

    r = sequential_minp_counts(statistic, len(keep), alpha=alpha, seed=seed, tail_map=tail_map, rtol=0.0)
    expected = float(close.sum()) * n_x * (n_x - 1) / (len(keep) * (len(keep) - 1))
    method = (f"nearest-neighbour-perm (candidate neighbours within the {CLOSE_QUANTILE:.0%} quantile of pooled "
              f"NN distances, {len(keep)} pooled points; sequential, stopped ({r.stop}) after {r.n_perm} "
              f"permutations + {r.n_pilot} pilot, seed={seed})")
    return TestResult("independence[near duplicates]", float(r.observed[0]) - expected, r.pvalue, method, len(x))
