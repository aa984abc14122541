"""Closed-form predictions for the speculative sampler and the test sizes (derivations in ``theory/``).

Three groups, each formula written once:

- Windows and rounds (``theory/rounds.md``): expected accepted length of a window, the exact per-trajectory
  moments of the round count under the sampler's policy (a dynamic program over (step, anchor cached)), lower
  bounds on rounds (ours and the paper's with a bonus step).
- Sample sizes (``theory/sizing.md``): Hoeffding for a bounded mean, exact binomial for an acceptance rate.
  The DKW sizes for KS tests live in :mod:`specverify.harness.stats.sizing`.
- Acceptance against dimension (``theory/dimension.md``): the law of D for the frozen drafters on the
  linear-Gaussian ``gaussian`` problem and the predicted acceptance E[2 Phi(-|D| / 2)], computed exactly (Imhof).

Contract: pure functions of plain numbers and arrays; numpy only at import (scipy where used, never torch).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from specverify._validate import positive_int
from specverify.specs import GaussianSpec, beta_schedule

__all__ = ["AcceptancePrediction", "RoundMoments", "acceptance_probability", "accepted_length_variance", "binomial_n", "binomial_power",
           "expected_accepted_length", "expected_rounds", "gaussian_mean_acceptance", "hoeffding_n", "hoeffding_radius",
           "predicted_acceptance", "round_moments", "rounds_lower_bound", "steps_per_round"]


def _rate(name, value):
    value = float(value)
    if not 0 < value < 1:
        raise ValueError(f"{name} must be in (0, 1), got {value}")
    return value


def _probs(name, p):
    p = np.asarray(p, dtype=np.float64)
    if not np.all(np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError(f"{name} must be acceptance probabilities in [0, 1]")
    return p


def acceptance_probability(dist):
    """2 Phi(-|D| / 2) = 1 - TV: the acceptance probability of one coupled step, given |D| = |m_q - m_p| / sigma.

    erfc keeps relative accuracy in the tail. Deliberate twin of :func:`specverify.sampler.coupling.
    acceptance_probability` (torch): the harness recomputes what a sampler predicts, sharing no code with ours.
    """
    from scipy.special import erfc

    return erfc(np.asarray(dist, dtype=np.float64) / (2 * math.sqrt(2)))


# ---------------------------------------------------------------------------------------------------------
# Windows and rounds (theory/rounds.md)


def _reach(p, window: int) -> np.ndarray:
    """P(A >= j) for j = 1 .. window: the first j drafted steps of a window are all accepted."""
    window = positive_int(window, "window")
    p = _probs("p", p)
    if p.ndim == 0:
        p = np.full(window, float(p))
    if p.ndim != 1 or p.size < window:
        raise ValueError(f"p must be a number or one probability per window position (at least {window})")
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


def _first_zero(sigma: np.ndarray) -> np.ndarray:
    """stop[k]: the first zero-noise step at or after k (len(sigma) if none); stop has len(sigma) + 1 entries."""
    T = sigma.size
    stop = np.full(T + 1, T, dtype=np.int64)
    for k in range(T - 1, -1, -1):
        stop[k] = k if sigma[k] == 0 else stop[k + 1]
    return stop


def _moves(k, cached, stop, p, sigma, window, needs_anchor):
    """One sample's next moves from (step k, anchor cached): probabilities (m,), rewards (rounds, windows,
    accepted) (m, 3), next steps and next cached flags (m,)."""
    T = sigma.size
    if cached and sigma[k] == 0:
        return [1.0], [(0, 0, 0)], [k + 1], [0]  # zero-noise step from the cached output: free
    span = min(int(stop[k]) - k, window)
    if span == 0:
        return [1.0], [(1, 0, 0)], [k + 1], [0]  # zero-noise step, taken in this round's call
    if not cached and needs_anchor:
        return [1.0], [(1, 0, 0)], [k], [1]  # warm-up: the target at the window start alone
    call = int(not cached or k + 1 < T)  # cached at the last step: nothing to evaluate
    r = np.arange(span + 1)  # accepted drafted steps; r < span: rejected at r, the reflected draw commits too
    pw = p[k:k + span, :span].diagonal() if p.ndim == 2 else p[k:k + span]  # step k + j at window position j
    reach = np.concatenate([[1.0], np.cumprod(pw)])
    prob = reach * np.append(1 - pw, 1.0)
    rewards = np.stack([np.full(span + 1, call), np.ones(span + 1), r], axis=1)
    nxt = np.append(k + r[:-1] + 1, k + span)
    return prob, rewards, nxt, np.append(np.zeros(span, dtype=int), int(k + span < T))


def round_moments(p_steps, window: int, sigma, *, needs_anchor: bool = True) -> RoundMoments:
    """Exact moments of rounds (target calls), windows and accepted steps of one trajectory of
    :func:`specverify.sampler.speculative.speculative_sample`, by a dynamic program over (step, anchor cached).

    ``p_steps``: the acceptance probability of a drafted step at each chain step (a number or one per step),
    assumed to depend on the step only and to be independent across steps (the ``stress`` drafter; the oracle
    has p = 1); or a (steps, window) array, one per chain step and window position (the frozen drafters, whose
    acceptance falls along the window; still assumed independent given the position, an approximation).
    ``sigma``: the chain's noise scales (zero-noise steps are never drafted). ``needs_anchor``: the drafter needs
    the target at the window start (frozen drafters), so a window after a rejection costs a warm-up round.
    Policy: no bonus step; see ``theory/rounds.md``.
    """
    window = positive_int(window, "window")
    sigma = np.asarray(sigma, dtype=np.float64)
    if sigma.ndim != 1 or sigma.size == 0 or not np.all(np.isfinite(sigma)) or np.any(sigma < 0):
        raise ValueError("sigma must be a non-empty 1-D array of noise scales >= 0 (e.g. chain.sigma)")
    T = sigma.size
    p = _probs("p_steps", p_steps)
    if p.ndim == 2:  # per (chain step, window position), e.g. SpecStats.predicted_per_step / verified_per_step
        if p.shape[0] != T or p.shape[1] < min(window, T):
            raise ValueError(f"p_steps of shape {p.shape} needs one row per chain step ({T}) and a column per "
                             f"window position ({window})")
        p = np.pad(p, ((0, 0), (0, max(0, window - p.shape[1]))), constant_values=1.0)
    elif p.ndim > 1 or p.size not in (1, T):
        raise ValueError(f"p_steps must be a number, one probability per chain step ({T}), or a (steps, window) "
                         f"array")
    else:
        p = np.broadcast_to(p, (T,))
    stop = _first_zero(sigma)
    m1 = np.zeros((T + 1, 2, 3))  # first moments of (rounds, windows, accepted) from (k, cached)
    m2 = np.zeros((T + 1, 2, 3))  # second moments
    for k in range(T - 1, -1, -1):
        for c in (1, 0):  # (k, 0) may move to (k, 1) (warm-up)
            prob, rew, k2, c2 = (np.asarray(v) for v in _moves(k, c, stop, p, sigma, window, needs_anchor))
            nxt1, nxt2 = m1[k2, c2], m2[k2, c2]
            m1[k, c] = prob @ (rew + nxt1)
            m2[k, c] = prob @ (rew**2 + 2 * rew * nxt1 + nxt2)
    mean, second = m1[0, 0], m2[0, 0]
    return RoundMoments(float(mean[0]), float(second[0] - mean[0] ** 2), float(mean[1]), float(mean[2]),
                        float(second[2] - mean[2] ** 2))


def steps_per_round(p: float, window: int, *, needs_anchor: bool = True, bonus: bool = False) -> float:
    """Long-chain limit of n_steps / E[rounds] for i.i.d. acceptance p (renewal reward; E[rounds] =
    n_steps / steps_per_round + O(1)). A window commits c = (1 - p^L) / (1 - p) steps on average. Ours: c per call,
    and with ``needs_anchor`` a warm-up after each rejected window: c / (2 - p^L). The paper's (``bonus``): every
    call also commits the target's own step: (1 - p^(L+1)) / (1 - p)."""
    window = positive_int(window, "window")
    p = float(_probs("p", p))
    L = window + 1 if bonus else window
    c = L if p == 1 else (1 - p**L) / (1 - p)
    return c / (2 - p**window) if needs_anchor and not bonus else c


def expected_rounds(p_steps, window: int, sigma, needs_anchor: bool = True) -> float:
    """Expected rounds per trajectory of our sampler (see :func:`round_moments`)."""
    return round_moments(p_steps, window, sigma, needs_anchor=needs_anchor).rounds_mean


def rounds_lower_bound(n_steps: int, window: int, *, needs_anchor: bool = True, n_zero_noise: int = 0,
                       bonus: bool = False) -> int:
    """Fewest rounds any trajectory can take, whatever the acceptances (``theory/rounds.md``).

    ``bonus=True``: the paper's policy, where a fully accepted window also yields the target's step at its last
    state, so a call commits at most L + 1 steps: ceil(n_steps / (L + 1)). It bounds our sampler too (a call
    commits at most L steps, plus at most one free step from its cached output) but is not tight. Ours (no bonus
    step): every committed step consumes the target output at its start state and a call yields at most L of them,
    bar the first call (and one per zero-noise step) for drafters without an anchor: 1 + ceil((n_steps - 1) / L)
    with ``needs_anchor``, else max(1, ceil((n_steps - 1 - n_zero_noise) / L)); the larger of ours and the paper's.
    """
    T, L = positive_int(n_steps, "n_steps"), positive_int(window, "window")
    paper = math.ceil(T / (L + 1))
    if bonus:
        return paper
    if needs_anchor:
        return 1 + math.ceil((T - 1) / L)
    return max(1, paper, math.ceil((T - 1 - int(n_zero_noise)) / L))


# ---------------------------------------------------------------------------------------------------------
# Sample sizes (theory/sizing.md)


def hoeffding_radius(n: int, delta: float, *, width: float = 1.0) -> float:
    """Hoeffding: for n i.i.d. variables in an interval of length ``width``, P(mean - mu >= r) <= delta with
    r = width sqrt(log(1 / delta) / (2 n))."""
    n, delta = positive_int(n, "n"), _rate("delta", delta)
    return float(width) * math.sqrt(math.log(1 / delta) / (2 * n))


def hoeffding_n(alpha: float, beta: float, epsilon: float, *, width: float = 1.0, two_sided: bool = True) -> int:
    """Smallest n for which the Hoeffding test of a mean (reject when |mean - mu0| > hoeffding_radius(n, alpha/2),
    or mean - mu0 > hoeffding_radius(n, alpha) one-sided) detects a shift ``epsilon`` with power 1 - beta."""
    alpha, beta = _rate("alpha", alpha), _rate("beta", beta)
    if not 0 < epsilon <= width:
        raise ValueError(f"epsilon must be in (0, width={width}], got {epsilon}")
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
    n, alpha = positive_int(n, "n"), _rate("alpha", alpha)
    p0, p1 = _rate("p0", p0), _rate("p1", p1)
    if p0 == p1:
        raise ValueError("p1 must differ from p0")
    return float(_binomial_tail(n, p0, p1, alpha))


def binomial_n(alpha: float, beta: float, p0: float, p1: float, *, n_max: int = 10**8) -> int:
    """Smallest n whose exact one-sided binomial test of p0 at level alpha has power >= 1 - beta at p1.

    The power of a discrete test is not monotone in n (a saw-tooth): a slightly larger n can fall short again.
    """
    from scipy import stats

    alpha, beta, p0, p1 = _rate("alpha", alpha), _rate("beta", beta), _rate("p0", p0), _rate("p1", p1)
    if p0 == p1:
        raise ValueError("p1 must differ from p0")
    z = stats.norm.isf(alpha) * math.sqrt(p0 * (1 - p0)) + stats.norm.isf(beta) * math.sqrt(p1 * (1 - p1))
    hi = max(64, int(2 * (z / (p1 - p0)) ** 2) + 64)  # twice the normal approximation
    lo = 1
    while lo <= n_max:
        n = np.arange(lo, min(hi, n_max) + 1)
        ok = np.flatnonzero(_binomial_tail(n, p0, p1, alpha) >= 1 - beta)
        if ok.size:
            return int(n[ok[0]])
        lo, hi = hi + 1, 2 * hi
    raise ValueError(f"no n <= {n_max} reaches power {1 - beta} at p1 = {p1} against p0 = {p0}")


# ---------------------------------------------------------------------------------------------------------
# Acceptance against dimension (theory/dimension.md)


def _affine_gaussian_chain(spec: GaussianSpec, betas, sampler, eta, prediction):
    """The `gaussian` problem's chain in the eigenbasis of its covariance, one coordinate at a time.

    Returns per-step (a, b, sigma) (T,) and the model output f(x, k) = phi[k] c + gamma[k] in eigen-coordinates
    c = Q^T x, (T, d) each: mean(x, k) = a_k x + b_k f(x, k). Written from Ho et al. eq. 11 and Song et al. eq. 12
    with the conventions of the chains' contract (chain step k runs the model at time t = T - 1 - k).
    """
    lam, m = spec.eigvals, spec.eigvecs.T @ spec.mean
    abar_all = np.cumprod(1 - betas)
    t = np.arange(betas.size)[::-1]
    abar = abar_all[t]
    abar_prev = np.concatenate([abar_all[t[1:]], [1.0]])
    sa, sb = np.sqrt(abar), np.sqrt(1 - abar)
    # x0 = p x + q f and eps = r x + s f, by parametrisation of f
    one, zero = np.ones_like(abar), np.zeros_like(abar)
    p, q, r, s = {"eps": (1 / sa, -sb / sa, zero, one), "x0": (zero, one, 1 / sb, -sa / sb),
                  "v": (sa, -sb, sb, sa)}[prediction]
    if sampler == "ddpm":
        beta = betas[t]
        sigma = np.sqrt(beta * (1 - abar_prev) / (1 - abar))
        c_x0, c_xt = np.sqrt(abar_prev) * beta / (1 - abar), np.sqrt(1 - beta) * (1 - abar_prev) / (1 - abar)
        a, b = c_x0 * p + c_xt, c_x0 * q
    else:  # ddim
        sigma = eta * np.sqrt((1 - abar_prev) / (1 - abar) * (1 - abar / abar_prev))
        c_eps = np.sqrt(np.maximum(1 - abar_prev - sigma**2, 0.0))
        a, b = np.sqrt(abar_prev) * p + c_eps * r, np.sqrt(abar_prev) * q + c_eps * s
    # exact denoiser in eigen-coordinates: x0 = g c + (1 - g sa) m, g = sa lam / (abar lam + 1 - abar)
    g = sa[:, None] * lam / (abar[:, None] * lam + (1 - abar[:, None]))
    x0_lin, x0_off = g, (1 - g * sa[:, None]) * m
    eps_lin, eps_off = (1 - sa[:, None] * x0_lin) / sb[:, None], -sa[:, None] * x0_off / sb[:, None]
    phi, gamma = {"x0": (x0_lin, x0_off), "eps": (eps_lin, eps_off),
                  "v": (sa[:, None] * eps_lin - sb[:, None] * x0_lin, sa[:, None] * eps_off - sb[:, None] * x0_off)
                  }[prediction]
    return a, b, sigma, phi, gamma


def _dist_law(a, b, sigma, phi, gamma, mx, vx, n, j, drafter):
    """D at drafted position j of a window that starts at step n, x_n ~ N(mx, vx) per eigen-coordinate, the
    drafts following the draft chain: D = alpha x_n + const + (noise), returned as per-coordinate (mean, var)."""
    A, C = a[:, None] + b[:, None] * phi, b[:, None] * gamma  # target mean: A_k c + C_k
    k, s = n + j, sigma[n + j]
    if drafter == "frozen-drift":  # y_j = (1 + j (A_n - 1)) x + j C_n + sum_i s_{n+i} z_i
        alpha = ((1 - A[k]) * (1 + j * (A[n] - 1)) + A[n] - 1) / s
        const = ((1 - A[k]) * j * C[n] + C[n] - C[k]) / s
        noise = (1 - A[k]) ** 2 * (sigma[n:k] ** 2).sum() / s**2
    else:  # frozen-denoiser: y_{i+1} = a y_i + b f(x_n, n) + s z, D = b_k (f(x_n, n) - f(y_j, k)) / s_k
        P, Q, V = np.ones_like(mx), np.zeros_like(mx), 0.0
        for i in range(n, k):
            P, Q, V = a[i] * P + b[i] * phi[n], a[i] * Q + b[i] * gamma[n], a[i] ** 2 * V + sigma[i] ** 2
        alpha = b[k] * (phi[n] - phi[k] * P) / s
        const = b[k] * (gamma[n] - phi[k] * Q - gamma[k]) / s
        noise = (b[k] * phi[k]) ** 2 * V / s**2
    return alpha * mx + const, alpha**2 * vx + noise


def gaussian_mean_acceptance(mu, var) -> float:
    """E[2 Phi(-|D| / 2)] for D ~ N(mu, diag(var)), independent coordinates.

    2 Phi(-|D| / 2) = P(|G| > |D| / 2) with G ~ N(0, 1) independent, so the expectation is P(Q < 0) for the
    generalised chi-square Q = sum_i (D_i)^2 - 4 G^2, computed by Imhof's (1961) inversion formula (a 1-D integral,
    absolute error about 1e-10). With all var = 0 it is 2 Phi(-|mu| / 2).
    """
    from scipy import integrate

    mu, v = (np.asarray(t, dtype=np.float64).ravel() for t in (mu, var))
    if mu.shape != v.shape or not (np.all(np.isfinite(mu)) and np.all(np.isfinite(v)) and np.all(v >= 0)):
        raise ValueError("mu and var must be finite arrays of the same shape, var >= 0")
    mu2 = mu**2
    if not np.any(v > 0):
        return float(acceptance_probability(math.sqrt(mu2.sum())))
    scale = float(mu2.sum() + v.sum() + 4.0)

    def f(t):  # sin(theta(u)) / (u rho(u)) du with u = t / scale (the du / u is scale free)
        if t == 0:
            return (0.5 * (v.sum() + mu2.sum()) - 2.0) / scale
        u = t / scale
        vu2 = (v * u) ** 2
        theta = 0.5 * (np.arctan(v * u) + mu2 * u / (1 + vu2)).sum() - 0.5 * math.atan(4 * u)
        log_rho = 0.25 * np.log1p(vu2).sum() + 0.5 * (mu2 * v * u * u / (1 + vu2)).sum() + 0.25 * math.log1p(16 * u * u)
        return math.sin(theta) / t * math.exp(-log_rho)

    val, _ = integrate.quad(f, 0, np.inf, limit=1000, epsabs=1e-13, epsrel=1e-11)
    return float(min(1.0, max(0.0, 0.5 - val / math.pi)))


@dataclasses.dataclass(frozen=True)
class AcceptancePrediction:
    """Predicted acceptance of drafted position ``position`` of a window that starts at chain step n.

    ``accept[n]``: E[2 Phi(-|D| / 2)], exact for position 1 (its draft is an exact target step); for later
    positions the drafts follow the draft chain without conditioning on earlier acceptances (an approximation).
    ``mean_sq_dist[n]``: E|D|^2. ``concentrated[n]``: 2 Phi(-sqrt(E|D|^2) / 2), the large-d limit. NaN where the
    window cannot reach the position (a zero-noise step or the chain's end is in the way).
    """

    dim: int
    drafter: str
    position: int
    sigma: np.ndarray
    accept: np.ndarray
    mean_sq_dist: np.ndarray
    concentrated: np.ndarray

    @property
    def window2_starts(self) -> np.ndarray:
        """Window starts with window 2: frozen drafters always accept position 0, so every window commits
        min(span, 2) steps and the starts do not depend on the acceptances. Only those with a position 1."""
        stop, k, starts = _first_zero(self.sigma), 0, []
        while k < self.sigma.size:
            span = min(int(stop[k]) - k, 2)
            if span == 2:
                starts.append(k)
            k += max(span, 1)
        return np.asarray(starts, dtype=np.int64)

    @property
    def window2_rate(self) -> float:
        """Expected acceptance rate at position 1 of a run with window 2 (accepted / verified at position 1)."""
        if self.position != 1:
            raise ValueError("window2_rate is the rate at position 1; predict with position=1")
        return float(self.accept[self.window2_starts].mean())


def predicted_acceptance(dim, drafter: str = "frozen-drift", *, position: int = 1, steps: int = 100,
                         sampler: str = "ddpm", schedule: str = "linear", prediction: str = "eps", eta: float = 1.0,
                         seed: int = 0) -> AcceptancePrediction:
    """Predicted acceptance of a frozen drafter on ``make_problem("gaussian", dim=dim, seed=seed).chain(steps,
    schedule=..., sampler=..., prediction=..., eta=...)`` at every window start (see AcceptancePrediction).

    ``dim``: an int, or a :class:`GaussianSpec`. For a list of dimensions:
    ``[predicted_acceptance(d).window2_rate for d in dims]``.
    """
    spec = dim if isinstance(dim, GaussianSpec) else GaussianSpec.default(positive_int(dim, "dim"), seed)
    if drafter not in ("frozen-drift", "frozen-denoiser"):
        raise ValueError(f"drafter must be 'frozen-drift' or 'frozen-denoiser', got {drafter!r}")
    if sampler not in ("ddpm", "ddim") or prediction not in ("eps", "x0", "v"):
        raise ValueError("sampler must be 'ddpm' or 'ddim' and prediction 'eps', 'x0' or 'v'")
    if isinstance(position, bool) or not isinstance(position, int) or position < 0:
        raise ValueError(f"position must be an int >= 0, got {position!r}")
    a, b, sigma, phi, gamma = _affine_gaussian_chain(spec, beta_schedule(schedule, steps), sampler, eta, prediction)
    T = sigma.size
    stop = _first_zero(sigma)
    accept, msd = np.full(T, np.nan), np.full(T, np.nan)
    mx, vx = np.zeros(spec.dim), np.ones(spec.dim)  # x_0 ~ N(0, I), isotropic: N(0, I) in eigen-coordinates too
    for n in range(T):
        if n + position < stop[n]:
            mu, var = _dist_law(a, b, sigma, phi, gamma, mx, vx, n, position, drafter)
            accept[n], msd[n] = gaussian_mean_acceptance(mu, var), float((mu**2 + var).sum())
        A, C = a[n] + b[n] * phi[n], b[n] * gamma[n]
        mx, vx = A * mx + C, A**2 * vx + sigma[n] ** 2
    conc = acceptance_probability(np.sqrt(msd))
    for arr in (sigma, accept, msd, conc):
        arr.setflags(write=False)
    return AcceptancePrediction(spec.dim, drafter, position, sigma, accept, msd, conc)
