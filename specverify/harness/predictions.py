"""Closed-form predictions for the speculative sampler and the test sizes (derivations in ``theory/``).

Three groups, each formula written once:

- Windows and rounds (``theory/rounds.md``): expected accepted length of a window, the exact per-trajectory
  moments of the round count under the sampler's policy (a dynamic program over (step, anchor cached)), lower
  bounds on rounds (ours and the paper's with a bonus step).
- Sample sizes (``theory/sizing.md``): Hoeffding for a bounded mean, exact binomial for an acceptance rate.
  The DKW sizes for KS tests live in :mod:`specverify.harness.stats.sizing`.
- Acceptance against dimension (``theory/dimension.md``) lives in :mod:`specverify.harness.dimension` (it reads
  the reference schedules); per-node acceptance of the multi-draft rules beyond D-GRS in
  :mod:`specverify.harness.node_laws`.

Contract: pure functions of plain numbers and arrays; numpy only at import (scipy where used, never torch).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from specverify._validate import in_unit_interval, positive_int
from specverify.errors import StatsError, UsageError
from specverify.specs import ROUND_POLICIES

__all__ = ["RoundMoments", "acceptance_probability", "accepted_length_variance", "binomial_n", "binomial_power",
           "dgrs_acceptance",
           "expected_accepted_length", "expected_rounds", "first_zero_noise", "hoeffding_n", "hoeffding_radius",
           "round_moments", "rounds_lower_bound", "steps_per_round"]


def _rate(name, value):
    return in_unit_interval(value, name, StatsError)


def _probs(name, p):
    p = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise UsageError(f"{name} must be acceptance probabilities in [0, 1]")
    return p


def acceptance_probability(dist):
    """2 Phi(-|D| / 2) = 1 - TV: the acceptance probability of one coupled step, given |D| = |m_q - m_p| / sigma.

    erfc keeps relative accuracy in the tail. Deliberate twin of :func:`specverify.sampler.coupling.
    acceptance_probability` (torch): the harness recomputes what a sampler predicts, sharing no code with ours.
    """
    from scipy.special import erfc

    return erfc(np.asarray(dist, dtype=np.float64) / (2 * math.sqrt(2)))


def dgrs_acceptance(dist, drafts: int):
    """1 - G_{K+1}: the probability that D-GRS with K = ``drafts`` i.i.d. drafts accepts one of them, given |D|
    (``theory/multidraft.md``): lambda_0 = 0, G_1 = 1, lambda_k = lambda_{k-1} + G_k, tau_k = log(lambda_k) / |D|,
    G_{k+1} = Q(tau_k - |D| / 2) - lambda_k Q(tau_k + |D| / 2). K = 1 gives 2 Phi(-|D| / 2).

    Deliberate twin of the recursion in :func:`specverify.sampler.verifiers.dgrs_select` (torch)."""
    from scipy.stats import norm

    K = positive_int(drafts, "drafts")
    d = np.asarray(dist, dtype=np.float64)
    lam, g = np.zeros_like(d), np.ones_like(d)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(K):
            lam = lam + g
            tau = np.log(lam) / d
            g = np.clip(norm.sf(tau - d / 2) - lam * norm.sf(tau + d / 2), 0.0, g)
    return np.where(d > 0, 1 - g, 1.0)


# ---------------------------------------------------------------------------------------------------------
# Windows and rounds (theory/rounds.md)


def _reach(p, window: int) -> np.ndarray:
    """P(A >= j) for j = 1 .. window: the first j drafted steps of a window are all accepted."""
    window = positive_int(window, "window", error=UsageError)
    p = _probs("p", p)
    if p.ndim == 0:
        p = np.full(window, float(p))
    if p.ndim != 1 or p.size < window:
        raise UsageError(f"p must be a number or one probability per window position (at least {window})")
    return np.cumprod(p[:window])


def expected_accepted_length(p, window: int) -> float:
    """E[A], A the accepted drafted steps of a window of ``window`` steps: sum_j prod_{i<j} p_i.

    ``p``: one acceptance probability for every position (i.i.d.: p (1 - p^L) / (1 - p)) or one per position.
    """
    return float(_reach(p, window).sum())


def accepted_length_variance(p, window: int) -> float:
    """Var[A] for the window of :func:`expected_accepted_length` (E[A^2] = sum_j (2j - 1) P(A >= j))."""
    r = _reach(p, window)
    j = np.arange(1, r.size + 1)
    return float(((2 * j - 1) * r).sum() - r.sum() ** 2)


@dataclasses.dataclass(frozen=True)
class RoundMoments:
    """Per-trajectory moments of the sampler's counters, from :func:`round_moments`."""

    rounds_mean: float
    rounds_var: float
    windows_mean: float
    accepted_mean: float
    accepted_var: float

    @property
    def accepted_per_window(self) -> float:
        """Long-run accepted drafted steps per window (what ``SpecStats.mean_accepted_length`` estimates)."""
        return self.accepted_mean / self.windows_mean if self.windows_mean else float("nan")


def first_zero_noise(sigma) -> np.ndarray:
    """stop[k]: the first zero-noise step (sigma = 0) at or after step k, len(sigma) if none; len(sigma) + 1 entries.

    Deliberate twin of :func:`specverify.sampler.chains.first_zero_noise` (torch side, written apart as a loop):
    the harness recomputes where the sampler's windows must stop, sharing no code with it.
    """
    sigma = np.asarray(sigma).ravel()
    T = sigma.size
    zero_at = np.where(sigma == 0, np.arange(T), T)
    return np.append(np.minimum.accumulate(zero_at[::-1])[::-1], T).astype(np.int64)


@dataclasses.dataclass(frozen=True)
class _Chain:
    """What the round dynamic program reads at every step: the first zero-noise step at or after each step
    (``first_zero_noise``), the acceptance probabilities ``p`` ((T,) or (T, window)), the noise scales, the
    window and whether the drafter needs an anchor."""

    stop: np.ndarray
    p: np.ndarray
    sigma: np.ndarray
    window: int
    needs_anchor: bool


def _moves(k, cached, chain: _Chain):
    """Window-start policy: one sample's next moves from (step k, anchor cached): probabilities (m,), rewards
    (rounds, windows, accepted) (m, 3), next steps and next cached flags (m,)."""
    stop, p, sigma, window, needs_anchor = chain.stop, chain.p, chain.sigma, chain.window, chain.needs_anchor
    T = sigma.size
    if cached and sigma[k] == 0:
        return [1.0], [(0, 0, 0)], [k + 1], [0]  # zero-noise step from the cached output: free
    span = min(int(stop[k]) - k, window)
    if span == 0:
        return [1.0], [(1, 0, 0)], [k + 1], [0]  # zero-noise step, taken in this round's call
    if not cached and needs_anchor:
        return [1.0], [(1, 0, 0)], [k], [1]  # warm-up: the target at the window start alone
    call = int(not cached or k + 1 < T)  # cached at the last step: nothing to evaluate
    r, prob = _window_outcomes(k, span, p)
    rewards = np.stack([np.full(span + 1, call), np.ones(span + 1), r], axis=1)
    nxt = np.append(k + r[:-1] + 1, k + span)
    return prob, rewards, nxt, np.append(np.zeros(span, dtype=int), int(k + span < T))


def _window_outcomes(k, span, p):
    """Accepted drafts r = 0 .. span of a window from step k, and their probabilities (r < span: rejected at r)."""
    pw = p[k:k + span, :span].diagonal() if p.ndim == 2 else p[k:k + span]  # step k + j at window position j
    reach = np.concatenate([[1.0], np.cumprod(pw)])
    return np.arange(span + 1), reach * np.append(1 - pw, 1.0)


def _moves_accepted_plus_one(k, anchored, chain: _Chain):
    """Accepted+1 policy: every round is one call and commits accepted + 1 steps (a bonus step after a full
    window, unless it reached the chain's end); a row with nothing to draft (no anchor yet, or a zero-noise
    step) takes one target step. Same outputs as :func:`_moves`; the flag is "anchored"."""
    T = chain.sigma.size
    span = min(int(chain.stop[k]) - k, chain.window)
    if span == 0 or (chain.needs_anchor and not anchored):
        return [1.0], [(1, 0, 0)], [k + 1], [1]
    r, prob = _window_outcomes(k, span, chain.p)
    rewards = np.stack([np.ones(span + 1), np.ones(span + 1), r], axis=1)
    return prob, rewards, np.minimum(k + r + 1, T), np.ones(span + 1, dtype=int)


def _check_policy(policy: str) -> str:
    if policy not in ROUND_POLICIES:
        raise UsageError(f"policy must be one of {', '.join(ROUND_POLICIES)}, got {policy!r}")
    return policy


def round_moments(p_steps, window: int, sigma, *, needs_anchor: bool = True,
                  policy: str = "accepted+1") -> RoundMoments:
    """Exact moments of rounds (target calls), windows and accepted steps of one trajectory of
    :func:`specverify.sampler.speculative.speculative_sample`, by a dynamic program over (step, anchor held).

    ``p_steps``: the acceptance probability of a drafted step at each chain step (a number or one per step),
    assumed to depend on the step only and to be independent across steps (the ``stress`` drafter; the oracle
    has p = 1); or a (steps, window) array, one per chain step and window position (the frozen drafters, whose
    acceptance falls along the window; still assumed independent given the position, an approximation).
    ``sigma``: the chain's noise scales (zero-noise steps are never drafted). ``needs_anchor``: the drafter needs
    a target output (frozen drafters). ``policy`` (``theory/rounds.md``): ``"accepted+1"``, every round commits
    accepted + 1 steps, anchored drafters take their first step undrafted; ``"window-start"``, no bonus step and
    a warm-up round after each rejection for anchored drafters.
    """
    window = positive_int(window, "window", error=UsageError)
    moves = _moves_accepted_plus_one if _check_policy(policy) == "accepted+1" else _moves
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.ndim != 1 or sigma.size == 0 or not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise UsageError("sigma must be a non-empty 1-D array of noise scales >= 0 (e.g. chain.sigma)")
    T = sigma.size
    p = _probs("p_steps", p_steps)
    if p.ndim == 2:  # per (chain step, window position), e.g. SpecStats.predicted_per_step / verified_per_step
        if p.shape[0] != T or p.shape[1] < min(window, T):
            raise UsageError(f"p_steps of shape {p.shape} needs one row per chain step ({T}) and a column per "
                             f"window position ({window})")
        p = np.pad(p, ((0, 0), (0, max(0, window - p.shape[1]))), constant_values=1.0)
    elif p.ndim > 1 or p.size not in (1, T):
        raise UsageError(f"p_steps must be a number, one probability per chain step ({T}), or a (steps, window) "
                         f"array")
    else:
        p = np.broadcast_to(p, (T,))
    chain = _Chain(first_zero_noise(sigma), p, sigma, window, needs_anchor)
    m1 = np.zeros((T + 1, 2, 3))  # first moments of (rounds, windows, accepted) from (k, cached)
    m2 = np.zeros((T + 1, 2, 3))  # second moments
    for k in range(T - 1, -1, -1):
        for c in (1, 0):  # window-start: (k, 0) may move to (k, 1) (warm-up)
            prob, rew, k2, c2 = (np.asarray(v) for v in moves(k, c, chain))
            nxt1, nxt2 = m1[k2, c2], m2[k2, c2]
            m1[k, c] = prob @ (rew + nxt1)
            m2[k, c] = prob @ (rew**2 + 2 * rew * nxt1 + nxt2)
    mean, second = m1[0, 0], m2[0, 0]
    return RoundMoments(float(mean[0]), float(second[0] - mean[0] ** 2), float(mean[1]), float(mean[2]),
                        float(second[2] - mean[2] ** 2))


def steps_per_round(p: float, window: int, *, needs_anchor: bool = True, policy: str = "accepted+1") -> float:
    """Long-chain limit of n_steps / E[rounds] for i.i.d. acceptance p (renewal reward; E[rounds] =
    n_steps / steps_per_round + O(1)). Accepted+1: every call commits the accepted drafts plus one step,
    (1 - p^(L+1)) / (1 - p). Window-start: a window commits c = (1 - p^L) / (1 - p) steps per call, and with
    ``needs_anchor`` a warm-up follows each rejected window: c / (2 - p^L)."""
    window = positive_int(window, "window", error=UsageError)
    p = float(_probs("p", p))
    L = window + 1 if _check_policy(policy) == "accepted+1" else window
    c = L if p == 1 else (1 - p**L) / (1 - p)
    return c / (2 - p**window) if needs_anchor and policy == "window-start" else c


def expected_rounds(p_steps, window: int, sigma, needs_anchor: bool = True, *, policy: str = "accepted+1") -> float:
    """Expected rounds per trajectory of our sampler (see :func:`round_moments`)."""
    return round_moments(p_steps, window, sigma, needs_anchor=needs_anchor, policy=policy).rounds_mean


def rounds_lower_bound(n_steps: int, window: int, *, needs_anchor: bool = True, n_zero_noise: int = 0,
                       policy: str = "accepted+1") -> int:
    """Fewest rounds any trajectory can take, whatever the acceptances (``theory/rounds.md``).

    Accepted+1: a round commits at most L + 1 steps, and an anchored drafter's first round one:
    1 + ceil((n_steps - 1) / (L + 1)) with ``needs_anchor``, else ceil(n_steps / (L + 1)). Window-start (no bonus
    step): every committed step consumes the target output at its start state and a call yields at most L of
    them, bar the first call (and one per zero-noise step) for drafters without an anchor:
    1 + ceil((n_steps - 1) / L) with ``needs_anchor``, else max(1, ceil((n_steps - 1 - n_zero_noise) / L)); and
    never fewer than ceil(n_steps / (L + 1)).
    """
    T, L = positive_int(n_steps, "n_steps", error=UsageError), positive_int(window, "window", error=UsageError)
    if _check_policy(policy) == "accepted+1":
        return 1 + math.ceil((T - 1) / (L + 1)) if needs_anchor else math.ceil(T / (L + 1))
    if needs_anchor:
        return 1 + math.ceil((T - 1) / L)
    return max(1, math.ceil(T / (L + 1)), math.ceil((T - 1 - int(n_zero_noise)) / L))


# ---------------------------------------------------------------------------------------------------------
# Sample sizes (theory/sizing.md)


def hoeffding_radius(n: int, delta: float, *, width: float = 1.0) -> float:
    """Hoeffding: for n i.i.d. variables in an interval of length ``width``, P(mean - mu >= r) <= delta with
    r = width sqrt(log(1 / delta) / (2 n))."""
    n, delta = positive_int(n, "n", error=StatsError), _rate("delta", delta)
    return float(width) * math.sqrt(math.log(1 / delta) / (2 * n))


def hoeffding_n(alpha: float, beta: float, epsilon: float, *, width: float = 1.0, two_sided: bool = True) -> int:
    """Smallest n for which the Hoeffding test of a mean (reject when |mean - mu0| > hoeffding_radius(n, alpha/2),
    or mean - mu0 > hoeffding_radius(n, alpha) one-sided) detects a shift ``epsilon`` with power 1 - beta."""
    alpha, beta = _rate("alpha", alpha), _rate("beta", beta)
    if not 0 < epsilon <= width:
        raise StatsError(f"epsilon must be in (0, width={width}], got {epsilon}")
    a = alpha / 2 if two_sided else alpha
    c = math.sqrt(math.log(1 / a) / 2) + math.sqrt(math.log(1 / beta) / 2)
    return math.ceil((width * c / epsilon) ** 2 * (1 - 1e-12))


def _binomial_tail(n, p0, p1, alpha):
    """Power at p1 of the exact one-sided test of p0 (reject K >= c for p1 > p0), vectorised over n."""
    from scipy import stats

    n = np.asarray(n, dtype=np.int64)
    if p1 < p0:  # count failures instead: the same test on n - K
        p0, p1 = 1 - p0, 1 - p1
    k = stats.binom.isf(alpha, n, p0).astype(np.int64)  # smallest k with P0(K > k) <= alpha
    k = np.where(stats.binom.sf(k, n, p0) > alpha, k + 1, k)  # guard against rounding in isf
    k = np.where((k > 0) & (stats.binom.sf(k - 1, n, p0) <= alpha), k - 1, k)
    return stats.binom.sf(k, n, p1)


def binomial_power(n: int, p0: float, p1: float, alpha: float) -> float:
    """Power at p1 of the exact one-sided binomial test of H0: p = p0 at level alpha (alternative side of p1)."""
    n, alpha = positive_int(n, "n", error=StatsError), _rate("alpha", alpha)
    p0, p1 = _rate("p0", p0), _rate("p1", p1)
    if p0 == p1:
        raise StatsError("p1 must differ from p0")
    return float(_binomial_tail(n, p0, p1, alpha))


def binomial_n(alpha: float, beta: float, p0: float, p1: float, *, n_max: int = 10**8) -> int:
    """Smallest n whose exact one-sided binomial test of p0 at level alpha has power >= 1 - beta at p1.

    The power of a discrete test is not monotone in n (a saw-tooth): a slightly larger n can fall short again.
    """
    from scipy import stats

    alpha, beta, p0, p1 = _rate("alpha", alpha), _rate("beta", beta), _rate("p0", p0), _rate("p1", p1)
    if p0 == p1:
        raise StatsError("p1 must differ from p0")
    z = stats.norm.isf(alpha) * math.sqrt(p0 * (1 - p0)) + stats.norm.isf(beta) * math.sqrt(p1 * (1 - p1))
    hi = max(64, int(2 * (z / (p1 - p0)) ** 2) + 64)  # twice the normal approximation
    lo = 1
    while lo <= n_max:
        n = np.arange(lo, min(hi, n_max) + 1)
        ok = np.flatnonzero(_binomial_tail(n, p0, p1, alpha) >= 1 - beta)
        if ok.size:
            return int(n[ok[0]])
        lo, hi = hi + 1, 2 * hi
    raise StatsError(f"no n <= {n_max} reaches power {1 - beta} at p1 = {p1} against p0 = {p0}")
