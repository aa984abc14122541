"""specverify.harness.predictions and .dimension against our sampler and simulation (theory/rounds.md, sizing.md,
dimension.md).

Exact checks first: the round-count dynamic program equals the sampler's expected rounds computed over every
acceptance pattern (noise tables that force each pattern); the oracle's rounds are deterministic. Then
statistical checks, each assertion at ALPHA with fixed seeds and a threshold from ALPHA (z-tests use the
trajectory as the unit; counts of simulated tests use exact binomial tails): for a fresh seed a correct
implementation fails one of the 35 assertions of the default run with probability at most 35 ALPHA.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from specverify.harness.dimension import (
    ChainOptions,
    _affine_gaussian_chain,
    gaussian_mean_acceptance,
    predicted_acceptance,
)
from specverify.harness.predictions import (
    accepted_length_variance,
    binomial_n,
    binomial_power,
    expected_accepted_length,
    expected_rounds,
    hoeffding_n,
    hoeffding_radius,
    round_moments,
    rounds_lower_bound,
    steps_per_round,
)
from specverify.harness.stats import ks_one_sample_n
from specverify.sampler.chains import gaussian_chain
from specverify.sampler.drafters import Oracle, Stress, make_drafter
from specverify.sampler.noise import TableNoise
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import make_problem
from specverify.sampler.speculative import speculative_sample
from specverify.specs import ROUND_POLICIES, GaussianSpec

ALPHA = 1e-3  # false-failure rate of each statistical assertion
Z_CRIT = stats.norm.isf(ALPHA / 2)  # two-sided z-test at ALPHA


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Small batches run much faster on one thread, and the CPU is shared."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class AnchoredStress(Stress):
    """The stress drafter that asks for the target at the window start, as the frozen drafters do."""

    name = "stress-anchored"
    needs_anchor = True


class AnchoredOracle(Oracle):
    name = "oracle-anchored"
    needs_anchor = True


def _chains():
    p = make_problem("gaussian", dim=2)
    zeros = np.array([0, 1, 0.5, 0, 0, 0.7, 0.6, 0.5, 0, 0.4, 0.3, 0.3])  # zero-noise steps inside the chain
    return {"ddpm9": p.chain(9), "ddim8": p.chain(8, sampler="ddim", eta=0.5),
            "zeros12": gaussian_chain(lambda x, k: 0.9 * x, zeros, (2,))}


def _z(mean, expected, var, n):
    return (mean - expected) / math.sqrt(var / n)


# ---------------------------------------------------------------------------------------------------------
# Windows and rounds


def test_accepted_length_closed_forms():
    for p, L in [(0.3, 1), (0.55, 4), (0.9, 16), (1.0, 7), (0.0, 3)]:
        geometric = L if p == 1 else p * (1 - p**L) / (1 - p)
        assert expected_accepted_length(p, L) == pytest.approx(geometric, abs=1e-12)
    # per-position probabilities against the enumerated law of A = number of leading accepts
    q = np.array([0.9, 0.5, 0.7, 0.2])
    pmf = [np.prod(q[:a]) * (1 - q[a]) for a in range(4)] + [np.prod(q)]
    mean = sum(a * w for a, w in enumerate(pmf))
    assert expected_accepted_length(q, 4) == pytest.approx(mean, abs=1e-12)
    assert accepted_length_variance(q, 4) == pytest.approx(sum(a * a * w for a, w in enumerate(pmf)) - mean**2)
    assert expected_accepted_length(q, 2) == pytest.approx(0.9 + 0.45)
    with pytest.raises(ValueError, match="per window position"):
        expected_accepted_length(q, 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        expected_accepted_length(1.5, 2)


def _forced_run(chain, drafter_cls, window, delta=1.0, policy="accepted+1"):
    """Run the sampler once per acceptance pattern of the noisy steps: z = 0 makes log ratio = -delta^2 / 2, and
    u below or above exp(-delta^2 / 2) forces accept or reject. Returns (patterns (n, T) bool, stats)."""
    T = chain.n_steps
    noisy = np.flatnonzero(chain.sigma > 0)
    bits = np.zeros((2 ** noisy.size, T), dtype=bool)
    bits[:, noisy] = list(itertools.product([False, True], repeat=noisy.size))
    thr = math.exp(-(delta**2) / 2)
    u = torch.where(torch.as_tensor(bits), thr / 2, (1 + thr) / 2).to(torch.float64)
    noise = TableNoise(torch.zeros((bits.shape[0], T, *chain.shape), dtype=torch.float64), u)
    _, st = speculative_sample(chain, drafter_cls(delta=delta), bits.shape[0], window=window, seed=0,
                               options=SampleOptions(noise=noise, dtype=torch.float64, policy=policy))
    return bits, st


@pytest.mark.parametrize("name", list(_chains()))
@pytest.mark.parametrize("window", [1, 2, 3, 16])
@pytest.mark.parametrize("drafter_cls", [Stress, AnchoredStress])
@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_round_moments_equal_the_sampler_over_all_acceptance_patterns(name, window, drafter_cls, policy):
    """Exact: every noisy step is verified at most once (window-start: exactly once; accepted+1 skips the bonus
    steps), so a trajectory is a function of its pattern of accept bits, and the expectation over independent
    bits with P(accept at step k) = p_k is a finite sum over the sampler's runs."""
    chain = _chains()[name]
    bits, st = _forced_run(chain, drafter_cls, window, policy=policy)
    p = np.random.default_rng(7).uniform(0.1, 0.95, chain.n_steps)  # a different probability at every step
    noisy = chain.sigma > 0
    w = np.prod(np.where(bits[:, noisy], p[noisy], 1 - p[noisy]), axis=1)
    m = round_moments(p, window, chain.sigma, needs_anchor=drafter_cls.needs_anchor, policy=policy)
    r, a = st.rounds.astype(float), st.accepted_per_sample.astype(float)
    assert w.sum() == pytest.approx(1, abs=1e-12)
    assert m.rounds_mean == pytest.approx(w @ r, rel=1e-12)
    assert m.rounds_var == pytest.approx(w @ r**2 - (w @ r) ** 2, rel=1e-9, abs=1e-12)
    assert m.accepted_mean == pytest.approx(w @ a, rel=1e-12)
    assert m.accepted_var == pytest.approx(w @ a**2 - (w @ a) ** 2, rel=1e-9, abs=1e-12)
    bound = rounds_lower_bound(chain.n_steps, window, needs_anchor=drafter_cls.needs_anchor,
                               n_zero_noise=int((~noisy).sum()), policy=policy)
    assert st.rounds.min() >= bound >= _universal_bound(chain.n_steps, window)


def _universal_bound(T, window):
    """ceil(T / (L + 1)): no round of either policy commits more than L + 1 steps."""
    return rounds_lower_bound(T, window, needs_anchor=False, policy="accepted+1")


def _stress_chain(kind, steps):
    p = make_problem("gaussian", dim=2)
    return p.chain(steps, sampler="ddim", eta=0.5) if kind == "ddim" else p.chain(steps)


@pytest.mark.parametrize(("kind", "steps", "window", "delta", "drafter_cls"), [
    ("ddpm", 20, 4, 1.2, Stress),
    ("ddpm", 20, 4, 1.2, AnchoredStress),
    ("ddpm", 20, 1, 0.5, Stress),
    ("ddpm", 10, 16, 0.8, Stress),  # a window longer than the chain
    ("ddpm", 10, 16, 0.8, AnchoredStress),
    ("ddim", 30, 5, 1.6, Stress),
    ("ddim", 30, 5, 1.6, AnchoredStress),
    ("ddpm", 12, 3, 2.5, Stress),
])
@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_rounds_and_accepted_length_match_simulation(kind, steps, window, delta, drafter_cls, policy):
    """The stress drafter accepts each step independently with probability 2 Phi(-delta / 2). Three z-tests at
    ALPHA: mean rounds and mean accepted steps per trajectory against round_moments (exact null variance), and
    the accepted length per window (a martingale over windows given their spans) against expected_accepted_length."""
    chain, n = _stress_chain(kind, steps), 4000
    drafter = drafter_cls(delta=delta)
    p = drafter.acceptance
    _, st = speculative_sample(chain, drafter, n, window=window, seed=11,
                               options=SampleOptions(dtype=torch.float64, policy=policy))
    m = round_moments(p, window, chain.sigma, needs_anchor=drafter.needs_anchor, policy=policy)
    assert m.rounds_mean == expected_rounds(p, window, chain.sigma, needs_anchor=drafter.needs_anchor, policy=policy)
    z_rounds = _z(st.rounds.mean(), m.rounds_mean, m.rounds_var, n)
    z_acc = _z(st.accepted_per_sample.mean(), m.accepted_mean, m.accepted_var, n)
    spans = np.append(st.proposed_per_position, 0)
    count = spans[:-1] - spans[1:]  # windows of span exactly s = 1 .. L
    assert count.sum() == st.windows
    pred = sum(c * expected_accepted_length(p, s) for s, c in enumerate(count, 1))
    var = sum(c * accepted_length_variance(p, s) for s, c in enumerate(count, 1))
    z_len = (st.mean_accepted_length * st.windows - pred) / math.sqrt(var)
    assert abs(z_rounds) < Z_CRIT, (z_rounds, st.rounds_mean, m.rounds_mean)
    assert abs(z_acc) < Z_CRIT, (z_acc, st.accepted_per_sample.mean(), m.accepted_mean)
    assert abs(z_len) < Z_CRIT, (z_len, st.mean_accepted_length, pred / st.windows, m.accepted_per_window)
    noisy = chain.sigma > 0
    assert st.rounds.min() >= rounds_lower_bound(steps, window, needs_anchor=drafter.needs_anchor,
                                                 n_zero_noise=int((~noisy).sum()), policy=policy)


@pytest.mark.parametrize(("policy", "wrong"), [("window-start", dict(needs_anchor=True, policy="window-start")),
                                               ("accepted+1", dict(needs_anchor=False, policy="window-start")),
                                               ("window-start", dict(needs_anchor=False, policy="accepted+1"))])
def test_round_test_has_power_against_the_wrong_policy(policy, wrong):
    """The same z-test rejects the prediction for another policy (a warm-up after each rejection; no bonus step)."""
    chain, n = _stress_chain("ddpm", 20), 4000
    _, st = speculative_sample(chain, Stress(delta=1.2), n, window=4, seed=11,
                               options=SampleOptions(dtype=torch.float64, policy=policy))
    m = round_moments(Stress(delta=1.2).acceptance, 4, chain.sigma, **wrong)
    assert abs(_z(st.rounds.mean(), m.rounds_mean, m.rounds_var, n)) > Z_CRIT


@pytest.mark.parametrize("name", ["ddpm20", "ddim15", "zeros12", "noisy13"])
@pytest.mark.parametrize("window", [1, 3, 7, 50])
@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_oracle_rounds_are_exact(name, window, policy):
    """p = 1: every trajectory takes expected_rounds rounds. Window-start: anchored, that is the lower bound
    1 + ceil((T-1)/L); without an anchor and without zero-noise steps, max(1, ceil((T-1)/L)). Accepted+1 without
    zero-noise steps: 1 + ceil((T-1)/(L+1)) anchored, ceil(T/(L+1)) without."""
    p = make_problem("gaussian", dim=2)
    chain = {"ddpm20": p.chain(20), "ddim15": p.chain(15, sampler="ddim", eta=0.3), "zeros12": _chains()["zeros12"],
             "noisy13": gaussian_chain(lambda x, k: 0.9 * x, np.linspace(1, 0.2, 13), (2,))}[name]
    T, zeros = chain.n_steps, int((chain.sigma == 0).sum())
    for drafter in (Oracle(), AnchoredOracle()):
        _, st = speculative_sample(chain, drafter, 8, window=window, seed=0,
                                   options=SampleOptions(dtype=torch.float64, policy=policy))
        m = round_moments(1.0, window, chain.sigma, needs_anchor=drafter.needs_anchor, policy=policy)
        assert (st.rounds == m.rounds_mean).all() and m.rounds_var == pytest.approx(0, abs=1e-9)
        assert st.mean_accepted_length == pytest.approx(m.accepted_per_window, rel=1e-12)
        bound = rounds_lower_bound(T, window, needs_anchor=drafter.needs_anchor, n_zero_noise=zeros, policy=policy)
        assert m.rounds_mean >= bound >= _universal_bound(T, window)
        tight = zeros == 0 if policy == "accepted+1" else (drafter.needs_anchor and name != "zeros12") or zeros == 0
        if tight:
            assert m.rounds_mean == bound
        # acceptance never helps less: fewer accepts, more rounds
        for q in (0.9, 0.5, 0.1):
            assert expected_rounds(q, window, chain.sigma, drafter.needs_anchor, policy=policy) >= m.rounds_mean


@pytest.mark.parametrize("needs_anchor", [False, True])
@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_steps_per_round_is_the_long_chain_limit(needs_anchor, policy):
    """Renewal reward: E[rounds] = T / steps_per_round + O(1); the O(1) (first step or warm-up, last window) < 2."""
    T = 1000
    for sigma in (np.ones(T), np.append(np.ones(T - 1), 0.0)):
        for p, L in itertools.product([0.05, 0.55, 0.9, 1.0], [1, 2, 5, 16, 64]):
            rate = steps_per_round(p, L, needs_anchor=needs_anchor, policy=policy)
            assert abs(expected_rounds(p, L, sigma, needs_anchor, policy=policy) - T / rate) < 2, (p, L)


def test_steps_per_round_closed_forms():
    assert steps_per_round(1.0, 8) == 9 and steps_per_round(1.0, 8, policy="window-start") == 8
    assert steps_per_round(0.5, 3) == pytest.approx(1 + 0.5 + 0.25 + 0.125)
    assert steps_per_round(0.5, 3, policy="window-start") == pytest.approx(1.75 / (2 - 0.125))
    with pytest.raises(ValueError, match="policy must be one of"):
        steps_per_round(0.5, 3, policy="paper")


def test_lower_bounds_closed_forms():
    assert rounds_lower_bound(100, 8, needs_anchor=False) == 12  # ceil(100 / 9)
    assert rounds_lower_bound(100, 8) == 1 + 11  # the first step, then 99 at 9 per call
    ws = dict(policy="window-start")
    assert rounds_lower_bound(100, 8, **ws) == 1 + 13  # warm-up, then 99 outputs at 8 per call
    assert rounds_lower_bound(100, 8, needs_anchor=False, **ws) == 13
    assert rounds_lower_bound(100, 8, needs_anchor=False, n_zero_noise=3, **ws) == 12
    assert rounds_lower_bound(100, 8, needs_anchor=False, n_zero_noise=20, **ws) == 12  # never below ceil(100 / 9)
    assert rounds_lower_bound(5, 10, needs_anchor=False) == 1 and rounds_lower_bound(1, 3) == 1
    with pytest.raises(ValueError, match="sigma"):
        round_moments(0.5, 3, [0.1, -1.0])
    with pytest.raises(ValueError, match="one probability per chain step"):
        round_moments([0.5, 0.5], 3, [0.1, 0.2, 0.3])


# ---------------------------------------------------------------------------------------------------------
# Sample sizes


def _misses_ok(misses, reps, beta):
    """H0: the miss rate is <= beta; rejected at ALPHA when `misses` is in the upper binomial tail."""
    return stats.binom.sf(misses - 1, reps, beta) > ALPHA


def _size_ok(rejections, reps, alpha):
    return stats.binom.sf(rejections - 1, reps, alpha) > ALPHA


def test_dkw_one_sample_size_delivers_its_power():
    """KS one-sample test (DKW threshold) against N(mu, 1) at KS distance epsilon from N(0, 1): with
    n = ks_one_sample_n, the miss rate is at most beta and the false-alarm rate at most alpha."""
    alpha, beta, eps, reps = 0.01, 0.1, 0.1, 2000
    n = ks_one_sample_n(alpha, beta, eps)
    mu = 2 * stats.norm.ppf((1 + eps) / 2)  # sup |Phi(t - mu) - Phi(t)| = 2 Phi(mu / 2) - 1, at t = mu / 2
    radius = math.sqrt(math.log(2 / alpha) / (2 * n))
    assert stats.kstwo.isf(alpha, n) <= radius  # the exact KS threshold is below the DKW one: at least this power
    rng = np.random.default_rng(3)
    grid = np.arange(1, n + 1) / n

    def ks(x):
        f = stats.norm.cdf(np.sort(x, axis=1))
        return np.maximum((grid - f).max(1), (f - grid + 1 / n).max(1))

    misses = int((ks(rng.normal(mu, 1, (reps, n))) <= radius).sum())
    alarms = int((ks(rng.normal(0, 1, (reps, n))) > radius).sum())
    assert _misses_ok(misses, reps, beta), (misses, reps, n)
    assert _size_ok(alarms, reps, alpha), (alarms, reps, n)


def test_hoeffding_size_delivers_its_power():
    """Two-sided Hoeffding test of a mean in [0, 1] against a shift epsilon, Bernoulli (the extreme law) and a
    Beta law: miss rate at most beta, false-alarm rate at most alpha, with n = hoeffding_n."""
    alpha, beta, eps, mu0, reps = 0.01, 0.1, 0.1, 0.5, 4000
    n = hoeffding_n(alpha, beta, eps)
    assert n == math.ceil(((math.sqrt(math.log(2 / alpha) / 2) + math.sqrt(math.log(1 / beta) / 2)) / eps) ** 2)
    r = hoeffding_radius(n, alpha / 2)
    assert r + hoeffding_radius(n, beta) <= eps < hoeffding_radius(n - 1, alpha / 2) + hoeffding_radius(n - 1, beta)
    rng = np.random.default_rng(5)
    laws = {"bernoulli": lambda m: rng.binomial(n, m, reps) / n,
            "beta": lambda m: rng.beta(10 * m, 10 * (1 - m), (reps, n)).mean(1)}
    for draw in laws.values():
        misses = int((np.abs(draw(mu0 + eps) - mu0) <= r).sum())
        alarms = int((np.abs(draw(mu0) - mu0) > r).sum())
        assert _misses_ok(misses, reps, beta) and _size_ok(alarms, reps, alpha), (misses, alarms, n)


@pytest.mark.parametrize(("alpha", "beta", "p0", "p1"), [(0.01, 0.1, 0.5, 0.7), (0.05, 0.2, 0.55, 0.4),
                                                          (1e-3, 1e-3, 0.9, 0.8)])
def test_binomial_size_is_exact(alpha, beta, p0, p1):
    """Exact: at n = binomial_n the one-sided test (p-values from scipy's binomtest) has size <= alpha and power
    >= 1 - beta; every smaller n falls short of the power."""
    n = binomial_n(alpha, beta, p0, p1)
    side = "greater" if p1 > p0 else "less"
    k = np.arange(n + 1)
    reject = np.array([stats.binomtest(int(i), n, p0, alternative=side).pvalue <= alpha for i in k])
    assert stats.binom.pmf(k, n, p0)[reject].sum() <= alpha
    power = stats.binom.pmf(k, n, p1)[reject].sum()
    assert power >= 1 - beta and binomial_power(n, p0, p1, alpha) == pytest.approx(power, abs=1e-12)
    for m in range(1, n):  # the smallest: an independent scan with the p-value route
        km = np.arange(m + 1)
        pv = stats.binom.sf(km - 1, m, p0) if p1 > p0 else stats.binom.cdf(km, m, p0)
        assert stats.binom.pmf(km, m, p1)[pv <= alpha].sum() < 1 - beta


# ---------------------------------------------------------------------------------------------------------
# Acceptance against dimension


@pytest.mark.parametrize("d", [1, 2, 64])
def test_gaussian_mean_acceptance_against_chi_square(d):
    """With equal variances |D|^2 / v is (noncentral) chi-square: E[2 Phi(-|D|/2)] is a 1-D integral."""
    v = 0.7 / d
    for mu in (np.zeros(d), np.full(d, 0.9 / math.sqrt(d))):
        lam = float((mu**2).sum() / v)
        law = stats.ncx2(d, lam) if lam else stats.chi2(d)
        ref, _ = integrate.quad(lambda x, pdf=law.pdf: math.erfc(math.sqrt(v * x) / (2 * math.sqrt(2))) * pdf(x), 0,
                                np.inf, limit=500, epsabs=1e-12)
        assert gaussian_mean_acceptance(mu, np.full(d, v)) == pytest.approx(ref, abs=1e-8)
    assert gaussian_mean_acceptance([1.2, 0.0], [0.0, 0.0]) == pytest.approx(math.erfc(1.2 / (2 * math.sqrt(2))))


def test_gaussian_mean_acceptance_against_monte_carlo():
    rng = np.random.default_rng(1)
    mu, var, n = rng.normal(0, 0.3, 8), rng.uniform(0, 0.4, 8), 200_000
    a = stats.norm.sf(np.linalg.norm(mu + np.sqrt(var) * rng.standard_normal((n, 8)), axis=1) / 2) * 2
    z = _z(a.mean(), gaussian_mean_acceptance(mu, var), a.var(), n)
    assert abs(z) < Z_CRIT, z


@pytest.mark.parametrize(("sampler", "prediction", "schedule"), [("ddpm", "eps", "linear"), ("ddim", "x0", "linear"),
                                                                 ("ddpm", "v", "cosine")])
def test_affine_model_of_the_gaussian_problem(sampler, prediction, schedule):
    """The theory's eigen-coordinate chain is the problem's chain: same (a, b, sigma), same model outputs."""
    prob = make_problem("gaussian", dim=5)
    chain = prob.chain(30, schedule=schedule, sampler=sampler, prediction=prediction, eta=0.5).to(dtype=torch.float64)
    affine = _affine_gaussian_chain(prob.spec, 30, ChainOptions(sampler, schedule, prediction, eta=0.5))
    a, b, sigma, phi, gamma = affine.a, affine.b, affine.sigma, affine.phi, affine.gamma
    np.testing.assert_allclose(np.stack([a, b, sigma]), np.stack([chain.a, chain.b, chain.sigma]), rtol=1e-12,
                               atol=1e-14)
    x = torch.randn(30, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    f = chain.evaluate(x, torch.arange(30)).numpy()
    q = prob.spec.eigvecs
    np.testing.assert_allclose((phi * (x.numpy() @ q) + gamma) @ q.T, f, rtol=1e-10, atol=1e-10)


def test_isotropic_distance_grows_like_sqrt_d():
    """Isotropic data (equal eigenvalues, zero mean): every coordinate of D has the same law, so E|D|^2 is d times
    one coordinate's, and the acceptance is E[2 Phi(-sqrt(v chi2_d) / 2)]."""
    def iso(d):
        return GaussianSpec(np.zeros(d), np.full(d, 0.5), eigvecs=np.eye(d))

    for drafter in ("frozen-drift", "frozen-denoiser"):
        small, big = (predicted_acceptance(iso(d), drafter, steps=40) for d in (4, 64))
        ok = np.isfinite(small.mean_sq_dist)
        np.testing.assert_allclose(big.mean_sq_dist[ok], 16 * small.mean_sq_dist[ok], rtol=1e-12)
        assert (big.accept[ok] < small.accept[ok]).all()


def _dimension_check(dim, drafter, n, seed=0):
    """Window 2: position 0 is always accepted (D = 0), so the window starts are fixed and position 1's draft is an
    exact target step from x_n, whose law is the chain's: E[accepted at position 1] = sum_n accept[n] exactly.
    Returns (z, per-trajectory counts X, the prediction)."""
    chain = make_problem("gaussian", dim=dim).chain(100)
    pred = predicted_acceptance(dim, drafter, steps=100)
    _, st = speculative_sample(chain, make_drafter(drafter), n, window=2, seed=seed,
                               options=SampleOptions(dtype=torch.float64, policy="window-start"))
    starts = pred.window2_starts
    assert st.windows % n == 0 and st.verified_per_position[1] == n * starts.size
    x = st.accepted_per_sample - st.windows // n  # accepted at position 1, per trajectory
    expected = pred.accept[starts].sum()
    # rounds: the anchored oracle's count plus one warm-up per rejection, so E[rounds] is expected_rounds
    p_steps = np.ones(chain.n_steps)
    p_steps[starts + 1] = pred.accept[starts]
    ws = dict(policy="window-start")
    oracle = rounds_lower_bound(chain.n_steps, 2, **ws)
    assert (st.rounds == oracle + starts.size - x).all()
    assert expected_rounds(p_steps, 2, chain.sigma, **ws) == pytest.approx(oracle + starts.size - expected, rel=1e-12)
    return _z(x.mean(), expected, x.var(ddof=1), n), x, pred


@pytest.mark.parametrize("drafter", ["frozen-drift", "frozen-denoiser"])
@pytest.mark.parametrize("dim", [2, 64])
def test_predicted_acceptance_matches_the_sampler(dim, drafter):
    z, x, pred = _dimension_check(dim, drafter, 2000)
    assert abs(z) < Z_CRIT, (z, x.mean(), pred.accept[pred.window2_starts].sum())
    if dim == 64:  # power: the d = 2 prediction (no sqrt(d) growth of |D|) is rejected
        low = predicted_acceptance(2, drafter, steps=100)
        assert abs(_z(x.mean(), low.accept[low.window2_starts].sum(), x.var(ddof=1), x.size)) > Z_CRIT


@pytest.mark.slow
@pytest.mark.parametrize("drafter", ["frozen-drift", "frozen-denoiser"])
def test_predicted_acceptance_matches_the_sampler_d3072(drafter):
    z, x, pred = _dimension_check(3072, drafter, 1000)
    assert abs(z) < Z_CRIT, (z, x.mean(), pred.accept[pred.window2_starts].sum())
