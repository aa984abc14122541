"""Sample sizes for KS tests from (alpha, beta, epsilon) by the DKW inequality, in the style of TFP's
``statistical_testing`` (``min_num_samples_for_dkwm_cdf_test`` and friends), and exact binomial intervals.

DKW (Massart 1990): P(sup_t |F_n(t) - F(t)| > t_n) <= 2 exp(-2 n t_n^2), so with probability at least 1 - delta
the empirical CDF of n iid draws stays within r(n, delta) = sqrt(log(2 / delta) / (2 n)) of the true CDF.

One sample (F_n against a known F0). Reject when D = sup|F_n - F0| > r(n, alpha): under H0 that happens with
probability <= alpha. If the truth F is at KS distance epsilon from F0, then D >= epsilon - sup|F_n - F|, so
D > r(n, alpha) whenever sup|F_n - F| <= epsilon - r(n, alpha), which has probability >= 1 - beta as soon as
epsilon >= r(n, alpha) + r(n, beta). Hence

    epsilon_min(n) = (sqrt(log(2/alpha) / 2) + sqrt(log(2/beta) / 2)) / sqrt(n),
    n(epsilon)     = ceil(((sqrt(log(2/alpha) / 2) + sqrt(log(2/beta) / 2)) / epsilon)^2).

Two samples (F_n against G_m). Each empirical CDF must stay within its DKW radius at confidence 1 - delta/2 (a
union bound over the two sides): reject when D = sup|F_n - G_m| > r(n, alpha/2) + r(m, alpha/2); that is
detected with probability >= 1 - beta when epsilon >= r(n, alpha/2) + r(m, alpha/2) + r(n, beta/2) + r(m, beta/2).
With n = m per side: n(epsilon) = ceil(4 ((sqrt(log(4/alpha) / 2) + sqrt(log(4/beta) / 2)) / epsilon)^2).

At alpha = beta = 1e-3 this gives 6081 (epsilon = 0.05) and 38005 (0.02) for one sample, 26541 and 165881 per
side for two samples (DESIGN.md's 6100, 38000, 26500, 166000). n grows with log(1/alpha): splitting alpha over
50 Holm-corrected tests raises the two-sample n by about a fifth.

Contract: the DKW bounds are distribution-free and non-asymptotic, so the sizes are sufficient (conservative)
for the KS tests of this package, whose thresholds at level alpha are no larger than the DKW ones; they are not
the smallest sufficient n.
"""

from __future__ import annotations

import dataclasses
import math
import warnings

import numpy as np

from specverify._validate import in_unit_interval, positive_int
from specverify.errors import PowerError, StatsError

__all__ = ["PowerTarget", "PowerWarning", "binomial_interval", "check_power", "ks_one_sample_n", "ks_two_sample_n",
           "min_detectable_ks_one_sample", "min_detectable_ks_two_sample"]


class PowerWarning(UserWarning):
    """Like PowerError, as a warning (``check_power(..., strict=False)``)."""


@dataclasses.dataclass(frozen=True)
class PowerTarget:
    """What a KS test must deliver: detect a KS distance ``epsilon`` with probability 1 - ``beta`` at level
    ``alpha`` (validated where it is used, with the messages of ``ks_two_sample_n`` and friends)."""

    alpha: float
    beta: float
    epsilon: float


def _rate(name: str, value: float) -> float:
    return in_unit_interval(value, name, StatsError)


def _epsilon(epsilon: float) -> float:
    return in_unit_interval(epsilon, "epsilon (a KS distance)", StatsError, upper_closed=True)


def _radius(delta: float) -> float:
    """sqrt(log(2 / delta) / 2): the DKW radius at confidence 1 - delta times sqrt(n)."""
    return math.sqrt(math.log(2.0 / delta) / 2.0)


def _ceil(v: float) -> int:
    return math.ceil(v * (1 - 1e-12))  # a hair of tolerance so that exact integers are not rounded up


def ks_one_sample_n(alpha: float, beta: float, epsilon: float) -> int:
    """Smallest n for which the DKW one-sample KS test at level alpha detects a KS distance epsilon w.p. 1 - beta."""
    alpha, beta, epsilon = _rate("alpha", alpha), _rate("beta", beta), _epsilon(epsilon)
    return _ceil(((_radius(alpha) + _radius(beta)) / epsilon) ** 2)


def ks_two_sample_n(alpha: float, beta: float, epsilon: float) -> int:
    """Smallest n per side (n = m) for the DKW two-sample KS test: level alpha, power 1 - beta at distance epsilon."""
    alpha, beta, epsilon = _rate("alpha", alpha), _rate("beta", beta), _epsilon(epsilon)
    return _ceil((2 * (_radius(alpha / 2) + _radius(beta / 2)) / epsilon) ** 2)


def min_detectable_ks_one_sample(n: int, alpha: float, beta: float) -> float:
    """The smallest KS distance that n draws detect with probability 1 - beta at level alpha (DKW, one sample)."""
    n, alpha, beta = positive_int(n, "n", error=StatsError), _rate("alpha", alpha), _rate("beta", beta)
    return (_radius(alpha) + _radius(beta)) / math.sqrt(n)


def min_detectable_ks_two_sample(n: int, m: int, alpha: float, beta: float) -> float:
    """The smallest KS distance that samples of sizes n and m tell apart w.p. 1 - beta at level alpha (DKW)."""
    n, m = positive_int(n, "n", error=StatsError), positive_int(m, "m", error=StatsError)
    alpha, beta = _rate("alpha", alpha), _rate("beta", beta)
    return (_radius(alpha / 2) + _radius(beta / 2)) * (1 / math.sqrt(n) + 1 / math.sqrt(m))


def check_power(n: int, target: PowerTarget, *, two_sample: bool = True, m: int | None = None,
                strict: bool = True) -> float:
    """Check that sizes (n, m) deliver power 1 - beta against a KS distance epsilon at level alpha (``target``).

    Returns the smallest detectable KS distance. When it exceeds epsilon, raises ``PowerError`` (``strict``) or
    warns ``PowerWarning``, with a message that names the n needed. ``m`` defaults to n (two samples).
    Example: ``check_power(1000, PowerTarget(alpha=1e-3, beta=1e-3, epsilon=0.05))``.
    """
    alpha, beta = target.alpha, target.beta
    epsilon = _epsilon(target.epsilon)
    if two_sample:
        m = n if m is None else m
        eps_min = min_detectable_ks_two_sample(n, m, alpha, beta)
        need = ks_two_sample_n(alpha, beta, epsilon)
        sizes, what = f"n={n}, m={m} per side", f"n >= {need} per side"
    else:
        eps_min = min_detectable_ks_one_sample(n, alpha, beta)
        need = ks_one_sample_n(alpha, beta, epsilon)
        sizes, what = f"n={n}", f"n >= {need}"
    if eps_min > epsilon:
        msg = (f"{sizes} cannot deliver power {1 - beta:.6g} against a KS distance of {epsilon:g} at alpha={alpha:g}: "
               f"the smallest detectable distance is {eps_min:.4g}; use {what} (DKW bound), or accept a larger "
               f"epsilon or beta")
        if strict:
            raise PowerError(msg)
        warnings.warn(msg, PowerWarning, stacklevel=2)
    return eps_min


def binomial_interval(k: int, n: int, confidence: float) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval for a binomial proportion, via scipy ``binomtest``."""
    from scipy import stats

    n = positive_int(n, "n", error=StatsError)
    if not (isinstance(k, int | np.integer) and not isinstance(k, bool) and 0 <= k <= n):
        raise StatsError(f"k must be an integer in [0, n={n}], got {k!r}")
    confidence = _rate("confidence", confidence)
    ci = stats.binomtest(int(k), n).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)
