"""Per-node acceptance of the multi-draft verifiers as functions of (|D|, K) (``theory/multidraft.md``).

- D-GRS: 1 - G_{K+1} by its recursion (:func:`specverify.harness.predictions.dgrs_acceptance`).
- Rank selection (PAWS / RASS): A = int min(f, g), f(s) = phi(s - |D|), g(s) = phi(s) sum_r lambda_r
  Beta_{r, K - r + 1}(Phi(s)) the selected projection's density, by quadrature on QUAD_POINTS points. The weights:
  ``uniform`` (A = 2 Phi(-|D| / 2)), ``max`` (lambda_K = 1) or ``lp`` (the LP optimum at |D| rounded to
  2^(j / 64), as the rule defines them).

Deliberate twin of :mod:`specverify.sampler.rank` (torch): the judge solves its own LP and integrates its own
quadrature, sharing no code with the sampler. Numpy and scipy only.
"""

from __future__ import annotations

import functools

import numpy as np

from specverify._validate import positive_int
from specverify.errors import UsageError

__all__ = ["RANK_WEIGHTS", "rank_acceptance", "rank_lp_weights"]

RANK_WEIGHTS = ("lp", "max", "uniform")
KEY_STEPS, LP_POINTS, LP_REACH = 64, 241, 8.0  # the rule's weight grid (specverify.sampler.rank)
QUAD_POINTS, QUAD_REACH = 20001, 12.0


def _beta_densities(s, K):
    """phi(s) Beta_{r, K - r + 1}(Phi(s)) for r = 1 .. K, shape (*s.shape, K)."""
    from scipy import stats

    r = np.arange(1, K + 1)
    return stats.norm.pdf(s)[..., None] * stats.beta.pdf(stats.norm.cdf(s)[..., None], r, K - r + 1)


@functools.cache
def rank_lp_weights(key: int, K: int) -> tuple:
    """The weights maximising A on the LP grid at |D| = 2^(key / 64) (``scipy.optimize.linprog``, HiGHS)."""
    from scipy import stats
    from scipy.optimize import linprog

    if K == 1:
        return (1.0,)
    delta = 2.0 ** (key / KEY_STEPS)
    s = np.linspace(-LP_REACH, delta + LP_REACH, LP_POINTS)
    w = np.full(LP_POINTS, s[1] - s[0])
    w[[0, -1]] /= 2
    res = linprog(np.concatenate([np.zeros(K), -w]), A_ub=np.hstack([-_beta_densities(s, K), np.eye(LP_POINTS)]),
                  b_ub=np.zeros(LP_POINTS), A_eq=np.concatenate([np.ones(K), np.zeros(LP_POINTS)])[None],
                  b_eq=[1.0], bounds=[(0, None)] * K + [(0, v) for v in stats.norm.pdf(s - delta)], method="highs")
    lam = np.clip(res.x[:K], 0.0, None)
    return tuple(lam / lam.sum())


def _weights(delta: float, K: int, kind: str) -> np.ndarray:
    if kind == "uniform":
        return np.full(K, 1.0 / K)
    if kind == "max":
        return np.eye(K)[-1]
    return np.asarray(rank_lp_weights(int(np.round(KEY_STEPS * np.log2(delta))), K))


def rank_acceptance(dist, drafts: int, weights: str = "lp") -> np.ndarray:
    """A(|D|) = int min(f, g): the probability that rank selection with K = ``drafts`` i.i.d. drafts accepts the
    selected one, for each |D| in ``dist`` (|D| = 0: 1)."""
    from scipy import stats

    K = positive_int(drafts, "drafts")
    if weights not in RANK_WEIGHTS:
        raise UsageError(f"unknown rank weights {weights!r}; choose one of {', '.join(RANK_WEIGHTS)}")
    d = np.asarray(dist, dtype=np.float64)
    out = np.ones_like(d)
    for value in np.unique(d[d > 0]):
        s = np.linspace(-QUAD_REACH, value + QUAD_REACH, QUAD_POINTS)
        g = _beta_densities(s, K) @ _weights(value, K, weights)
        out[d == value] = np.trapezoid(np.minimum(stats.norm.pdf(s - value), g), s)
    return out
