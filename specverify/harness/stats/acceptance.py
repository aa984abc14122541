"""Acceptance against theory: accepted steps against the predicted sum of 2 Phi(-|D_i| / 2) over visited steps.

The sampling unit is the trajectory. For trajectory i let A_i be its accepted drafted steps and P_i the sum of
p = 2 Phi(-|D| / 2) over the steps whose acceptance it decided (each p is the acceptance probability of that
step given the path so far). Then A_i - P_i is a sum of martingale differences over a bounded number of steps,
so E[A_i - P_i] = 0 for an exact coupling, Var[A_i - P_i] = E[W_i] with W_i the sum of p (1 - p) over the same
steps, and the trajectories are independent: a two-sided one-sample t-test of the differences tests the
acceptance rule. Its variance is the larger of the sample variance and a floor from theory: the mean of W_i
when the candidate reports it, else the mean of P_i (v_i - P_i) / v_i over its v_i verified steps (an upper
bound of W_i by Jensen, tight when a trajectory's p are alike). Without the floor, a sample in which acceptance
is rare (or certain) shows almost no spread and the t-test rejects an exact sampler (accepted 0 of 9000 steps
with 1e-6 predicted gave p = 1e-154). The Clopper-Pearson intervals of the summary are for the pooled per-step
rates (a descriptive figure: steps within a trajectory are not independent trials).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import stats

from specverify.errors import SampleSizeError, StatsError
from specverify.harness.stats.one_sample import MIN_SAMPLES
from specverify.harness.stats.results import TestResult
from specverify.harness.stats.sizing import binomial_interval

__all__ = ["PerPosition", "acceptance_summary", "acceptance_test"]


@dataclasses.dataclass(frozen=True)
class PerPosition:
    """Counts per window position j (sequences of one length): drafts ``accepted`` and ``verified`` there, and
    the ``predicted`` sum of acceptance probabilities over the verified ones."""

    accepted: object
    verified: object
    predicted: object


def _per_trajectory(accepted, predicted) -> tuple[np.ndarray, np.ndarray]:
    try:
        a = np.asarray(accepted, dtype=np.float64).ravel()
        p = np.asarray(predicted, dtype=np.float64).ravel()
    except (TypeError, ValueError) as e:
        raise StatsError(f"accepted and predicted must be arrays of numbers: {e}") from None
    if a.shape != p.shape:
        raise StatsError(f"accepted has {a.size} trajectories and predicted {p.size}: give one value per trajectory")
    if not (np.isfinite(a).all() and np.isfinite(p).all()):
        raise StatsError("accepted or predicted counts contain NaN or Inf")
    if (a < 0).any() or (p < 0).any():
        raise StatsError("accepted and predicted counts must be >= 0")
    return a, p


def _variance_floor(p, verified, predicted_var) -> float:
    """The variance of A_i - P_i from theory: mean W_i, or its Jensen bound from the verified counts (else 0)."""
    if predicted_var is not None:
        return float(np.mean(np.asarray(predicted_var, dtype=np.float64)))
    if verified is None:
        return 0.0
    v = np.asarray(verified, dtype=np.float64).ravel()
    if v.shape != p.shape:
        raise StatsError(f"verified has {v.size} trajectories and predicted {p.size}: give one value per trajectory")
    return float(np.mean(np.where(v > 0, p * np.clip(v - p, 0, None) / np.maximum(v, 1), 0.0)))


def acceptance_test(accepted, predicted, verified=None, predicted_var=None, *,
                    name: str = "acceptance[trajectory t-test]") -> TestResult:
    """Two-sided t-test that the per-trajectory accepted-minus-predicted counts have mean 0 (variance floored
    from theory: see the module docstring)."""
    a, p = _per_trajectory(accepted, predicted)
    if a.size < MIN_SAMPLES:
        raise SampleSizeError(f"{a.size} trajectories are too few for the acceptance test; use n >= {MIN_SAMPLES}")
    diff, n = a - p, a.size
    var = max(float(np.var(diff, ddof=1)), _variance_floor(p, verified, predicted_var))
    scale = max(1.0, float(np.abs(p).max()))
    if var <= (1e-12 * scale) ** 2:  # no spread and none predicted (e.g. the oracle drafter: every step certain)
        t, pv = (0.0, 1.0) if abs(diff.mean()) <= 1e-9 * scale else (np.copysign(np.inf, diff.mean()), 0.0)
    else:
        t = float(diff.mean() / np.sqrt(var / n))
        pv = float(2 * stats.t.sf(abs(t), df=n - 1))
    return TestResult(name, t, pv, "t-test of accepted - predicted per trajectory, variance floored by theory",
                      int(n))


def acceptance_summary(accepted, predicted, verified, *, confidence: float = 0.99,
                       per_position: PerPosition | None = None) -> dict:
    """Pooled and per-position acceptance with exact (Clopper-Pearson) intervals next to the predictions.

    ``accepted``, ``predicted``, ``verified``: per trajectory; ``per_position`` (:class:`PerPosition`, optional):
    the rows of ``out["per_position"]``."""
    a, p = _per_trajectory(accepted, predicted)
    v = np.asarray(verified, dtype=np.int64).ravel()
    a_tot, v_tot = int(round(a.sum())), int(v.sum())
    out = {"trajectories": int(a.size), "accepted": a_tot, "predicted_accepted": float(p.sum()), "verified": v_tot,
           "acceptance_rate": a_tot / v_tot if v_tot else None,
           "predicted_acceptance_rate": float(p.sum() / v_tot) if v_tot else None,
           "confidence": confidence, "ci_low": None, "ci_high": None, "per_position": []}
    if v_tot:
        out["ci_low"], out["ci_high"] = binomial_interval(a_tot, v_tot, confidence)
    if per_position is not None:
        for j, (aj, vj, pj) in enumerate(zip(per_position.accepted, per_position.verified, per_position.predicted,
                                             strict=True)):
            row = {"position": j, "accepted": int(aj), "verified": int(vj),
                   "rate": int(aj) / int(vj) if vj else None, "predicted": float(pj) / int(vj) if vj else None,
                   "ci_low": None, "ci_high": None}
            if vj:
                row["ci_low"], row["ci_high"] = binomial_interval(int(aj), int(vj), confidence)
            out["per_position"].append(row)
    return out
