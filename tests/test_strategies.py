"""The hypothesis strategies of :mod:`specverify.strategies`, used in real property tests.

Exact tests only (float64, injected noise, no statistical verdicts):
- gaussian_pairs: the drawn records keep their contract (shapes, |m_q - m_p| / sigma = distance), and the
  reflection coupling on them returns the draft when it accepts, keeps |z| in the whitened output when it
  rejects, accepts every row with distance 0, and reports acceptance probabilities 2 Phi(-distance / 2) in (0, 1].
- problems x drafters x windows: the speculative sampler under table noise returns finite (n, d) samples with
  consistent counters (accepted <= verified <= proposed; per-sample totals = per-position totals), and with
  the oracle drafter (or stress at delta = 0) it accepts everything and equals the plain sampler.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from specverify.sampler.coupling import acceptance_probability, log_acceptance_ratio, reflection_coupling
from specverify.sampler.noise import TableNoise
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import PROBLEMS
from specverify.sampler.speculative import plain_sample, speculative_sample
from specverify.strategies import (
    FAST_PROBLEMS,
    DrafterCase,
    GaussianPair,
    ProblemCase,
    drafters,
    gaussian_pairs,
    problems,
    windows,
)

EXACT = settings(max_examples=100, deadline=None)
SAMPLER = settings(max_examples=25, deadline=None)
EPS = np.finfo(np.float64).eps


def _noise(pair: GaussianPair, seed: int):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal(tuple(pair.mean_p.shape))
    u = rng.random(pair.mean_p.shape[0])
    return torch.from_numpy(z), torch.from_numpy(np.maximum(u, 1e-300))


@EXACT
@given(gaussian_pairs(backend="numpy"))
def test_gaussian_pairs_contract(pair):
    b, d = pair.mean_p.shape
    assert pair.mean_q.shape == (b, d) and pair.distance.shape == (b,) and pair.sigma > 0
    got = np.linalg.norm(pair.mean_q - pair.mean_p, axis=1) / pair.sigma
    # rounding of mean_q = mean_p + sigma * distance * v: a few ulps of the means' magnitude, over sigma
    tol = 8 * EPS * (np.abs(pair.mean_q).max(1) * math.sqrt(d) / pair.sigma + pair.distance)
    np.testing.assert_array_less(np.abs(got - pair.distance), tol + 1e-300)


@EXACT
@given(gaussian_pairs(), st.integers(0, 2**32 - 1))
def test_reflection_coupling_on_gaussian_pairs(pair, seed):
    z, u = _noise(pair, seed)
    x, accepted = reflection_coupling(pair.mean_p, pair.mean_q, pair.sigma, z, u)
    x, accepted, zn = x.numpy(), accepted.numpy(), z.numpy()
    mp, mq, s = pair.mean_p.numpy(), pair.mean_q.numpy(), pair.sigma
    assert accepted[pair.distance == 0].all()
    draft = mq + s * zn
    np.testing.assert_array_equal(x[accepted], draft[accepted])
    w = (x[~accepted] - mp[~accepted]) / s  # the reflected noise: same norm as z
    scale = np.abs(mp[~accepted]).max(1, initial=0.0) / s + np.linalg.norm(zn[~accepted], axis=1)
    np.testing.assert_array_less(np.abs(np.linalg.norm(w, axis=1) - np.linalg.norm(zn[~accepted], axis=1)),
                                 1e-12 * (1 + scale) + 1e-300)
    _, dist = log_acceptance_ratio(pair.mean_p, pair.mean_q, pair.sigma, z)
    p = acceptance_probability(dist).numpy()
    assert ((p > 0) & (p <= 1)).all() and (p[pair.distance == 0] == 1).all()


@SAMPLER
@given(problems(), drafters(names=("frozen-drift", "frozen-denoiser", "oracle", "stress", "independent")),
       windows(), st.integers(0, 2**16))
def test_sampler_counters_and_oracle_identity(problem, drafter, window, seed):
    chain = problem.chain()
    n = 6
    noise = TableNoise.draw(n, chain.n_steps, chain.shape, seed=seed, dtype=torch.float64)
    x0 = chain.prior(n, torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    out, stats = speculative_sample(chain, drafter.make(problem), n, window=window,
                                    options=SampleOptions(noise=noise, x0=x0, dtype=torch.float64))
    assert out.shape == (n, problem.dim) and torch.isfinite(out).all()
    assert (stats.accepted_per_position <= stats.verified_per_position).all()
    assert (stats.verified_per_position <= stats.proposed_per_position).all()
    assert stats.accepted_per_sample.sum() == stats.accepted_per_position.sum()
    assert stats.verified_per_sample.sum() == stats.verified_per_position.sum()
    if drafter.name == "oracle" or dict(drafter.options).get("delta") == 0.0:
        assert (stats.accepted_per_position == stats.verified_per_position).all()
        assert torch.equal(out, plain_sample(chain, n, options=SampleOptions(noise=noise, x0=x0, dtype=torch.float64)))


@given(problems(), windows(3), drafters())
def test_small_strategies_draw_valid_cases(problem, window, drafter):
    assert isinstance(problem, ProblemCase) and problem.name in FAST_PROBLEMS and problem.name in PROBLEMS
    assert 1 <= problem.dim <= 4 and 2 <= problem.steps <= 12
    assert 1 <= window <= 3
    assert isinstance(drafter, DrafterCase) and drafter.name != "independent"


def test_strategy_arguments_are_checked():
    with pytest.raises(ValueError, match="max_window"):
        windows(0)
    with pytest.raises(ValueError, match="backend"):
        gaussian_pairs(backend="jax")
