"""The independence block: the exact-duplicate count, the nearest-neighbour permutation test, seed hygiene,
and negative controls.

The controls are chain-level samplers written here against the third-party view of a built-in problem (its
(mean, sigma) transitions; N(0, I) start), with the independence bugs of real pipelines planted one at a time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from specverify import bridge
from specverify.harness.contracts import shared_rows
from specverify.harness.stats.independence import (
    MAX_POOL,
    _keep,
    duplicate_rows,
    exact_duplicate_test,
    nearest_neighbour_test,
)

ALPHA = 0.01  # level of the statistical checks and of the suite runs below


def test_nearest_neighbour_test_is_valid_under_h0():
    reps, alpha = 100, 0.1
    rng = np.random.default_rng(0)
    p = np.array([nearest_neighbour_test(rng.normal(size=(150, 2)), rng.normal(size=(150, 2)), alpha, seed=s).pvalue
                  for s in range(reps)])
    for u in (alpha, 0.5):
        assert stats.binomtest(int((p <= u).sum()), reps, u, alternative="greater").pvalue > ALPHA


def test_duplicates_and_near_duplicates_are_caught():
    rng = np.random.default_rng(1)
    y = rng.normal(size=(1000, 3))
    half = rng.normal(size=(500, 3))
    assert nearest_neighbour_test(np.concatenate([half, half]), y, ALPHA).pvalue <= ALPHA
    near = np.concatenate([half, half + 1e-3 * rng.normal(size=half.shape)])  # copies that moved a little
    assert nearest_neighbour_test(near, y, ALPHA).pvalue <= ALPHA
    assert nearest_neighbour_test(rng.normal(size=(1000, 3)), y, ALPHA).pvalue > ALPHA


def test_duplicate_rows_and_shared_rows_between_seeds():
    a = np.random.default_rng(2).normal(size=(10, 2))
    assert duplicate_rows(a) == 0 and duplicate_rows(np.concatenate([a, a[:3]])) == 3
    assert duplicate_rows(np.concatenate([a, a[:1] * (1 + 1e-13)])) == 1  # equal to float tolerance
    good = lambda n, s: np.random.default_rng(s).normal(size=(n, 2))  # noqa: E731
    assert not any(shared_rows(good, 5).values())
    modulo = lambda n, s: np.random.default_rng(s % 8).normal(size=(n, 2))  # noqa: E731
    assert any(shared_rows(modulo, 5).values())


# ---------------------------------------------------------------------------------------------------------
# Duplicated shares 1%..100%, d below and above 8 (the pool of 10000 points exceeds the d > 8 cap)

STRICT = 1e-3  # the regression tests' level


def _duplicated(share, d, n=5000, noise=0.0):
    """n candidate rows of which ``share`` are pairs of copies (moved by ``noise``), and n reference rows."""
    rng = np.random.default_rng([d, round(share * 100)])
    base = rng.normal(size=(round(share * n) // 2, d))
    x = np.concatenate([base, base + noise * rng.normal(size=base.shape), rng.normal(size=(n - 2 * len(base), d))])
    return x[rng.permutation(n)], rng.normal(size=(n, d))


@pytest.mark.parametrize("d", [2, 16])
@pytest.mark.parametrize("share", [0.01, 0.1, 0.5, 1.0])
def test_exact_duplicates_are_caught_at_every_share(share, d):
    x, y = _duplicated(share, d)
    assert exact_duplicate_test(x).pvalue == 0.0
    assert nearest_neighbour_test(x, y, STRICT).pvalue <= STRICT  # 100% at d = 16: p = 1 when thinning kept no y


@pytest.mark.parametrize("d", [2, 16])
@pytest.mark.parametrize("share", [0.1, 1.0])
def test_near_duplicates_are_caught_after_thinning(share, d):
    x, y = _duplicated(share, d, noise=1e-6)
    assert exact_duplicate_test(x).pvalue == 1.0  # no exact tie: the permutation test's case
    assert nearest_neighbour_test(x, y, STRICT).pvalue <= STRICT


@pytest.mark.parametrize("d", [2, 16])
def test_an_iid_sample_passes_both(d):
    rng = np.random.default_rng([5, d])
    x, y = rng.normal(size=(5000, d)), rng.normal(size=(5000, d))
    assert exact_duplicate_test(x).pvalue == 1.0
    assert nearest_neighbour_test(x, y, STRICT).pvalue > STRICT


def test_the_exact_count_applies_where_ties_have_probability_zero():
    rng = np.random.default_rng(6)
    x = rng.normal(size=(20000, 1))
    close = np.concatenate([x, x[:1] * (1 + 1e-13)])  # distinct floats: a duplicate on the grid, not exactly
    assert duplicate_rows(close) == 1 and exact_duplicate_test(close).pvalue == 1.0
    assert exact_duplicate_test(np.concatenate([x, x[:1]])).statistic == 1.0
    f32 = x.astype(np.float32).astype(np.float64)  # d = 1 in float32: ties by rounding
    assert "not applicable" in exact_duplicate_test(f32).method and exact_duplicate_test(f32).pvalue == 1.0
    bf16 = torch.as_tensor(rng.normal(size=(100, 8))).to(torch.bfloat16).double().numpy()
    assert "not applicable" in exact_duplicate_test(bf16).method
    f32_3 = rng.normal(size=(1000, 3)).astype(np.float32).astype(np.float64)
    assert exact_duplicate_test(f32_3).pvalue == 1.0
    assert exact_duplicate_test(np.concatenate([f32_3, f32_3[:1]])).pvalue == 0.0


@pytest.mark.parametrize("d", [2, 16])
def test_thinning_keeps_reference_points_when_every_candidate_row_is_copied(d):
    cap = MAX_POOL[d <= 8]
    half = np.random.default_rng(7).normal(size=(cap // 2 + 7, d))
    z = np.concatenate([half, half, np.random.default_rng(8).normal(size=(cap, d))])  # candidate, then reference
    keep = _keep(z, seed=0)
    assert len(keep) == cap and len(np.unique(keep)) == cap
    assert (keep >= 2 * len(half)).sum() == cap - cap // 2  # copied points fill at most half the pool


# ---------------------------------------------------------------------------------------------------------
# Negative controls, written against the third-party view (gaussian, d = 2, exact law)


STEPS, BATCH, WORKERS = 20, 256, 4


def _trajectories(view, x, noise):
    """Run the chain from x with noise(k) -> (len(x), d) standard normals at step k."""
    x = torch.as_tensor(x, dtype=torch.float64)
    for k in range(view.n_steps):
        kk = torch.full((len(x),), k, dtype=torch.long)
        x = view.mean(x, kk) + float(view.sigma[k]) * torch.as_tensor(noise(k), dtype=torch.float64)
    return x.numpy()


def _plain(view, n, rng):
    d = view.shape[0]
    return _trajectories(view, rng.normal(size=(n, d)), lambda k: rng.normal(size=(n, d)))


def _controls(view):
    d = view.shape[0]

    def correct(n, seed):
        return _plain(view, n, np.random.default_rng(seed))

    def duplicated_halves(n, seed):  # the batch is two copies of one half
        half = _plain(view, (n + 1) // 2, np.random.default_rng(seed))
        return np.concatenate([half, half])[:n]

    def seed_modulo(n, seed):  # the generator is seeded with seed % 4
        return _plain(view, n, np.random.default_rng(seed % 4))

    def shared_batch_noise(n, seed):  # each trajectory its own start, the step noise shared within a batch
        rng, out = np.random.default_rng(seed), []
        for b in range(0, n, BATCH):
            m = min(BATCH, n - b)
            steps = rng.normal(size=(view.n_steps, 1, d))
            out.append(_trajectories(view, rng.normal(size=(m, d)), lambda k, s=steps, m=m: np.repeat(s[k], m, 0)))
        return np.concatenate(out)

    def shards_by_worker_count(n, seed):  # every shard seeded with seed + the number of workers
        sizes = [len(c) for c in np.array_split(np.arange(n), WORKERS)]
        return np.concatenate([_plain(view, m, np.random.default_rng(seed + WORKERS)) for m in sizes])

    return {"correct": correct, "duplicated-halves": duplicated_halves, "seed-modulo": seed_modulo,
            "shared-batch-noise": shared_batch_noise, "shards-by-worker-count": shards_by_worker_count}


@pytest.fixture(scope="module")
def gaussian():
    setup = bridge.make_setup("gaussian", dim=2, steps=STEPS)
    return setup, _controls(setup.view())


@pytest.mark.parametrize("name", ["duplicated-halves", "seed-modulo", "shared-batch-noise", "shards-by-worker-count"])
def test_each_independence_control_fails_by_the_independence_block(gaussian, name):
    setup, controls = gaussian
    r = bridge.check(setup, controls[name], alpha=ALPHA)
    assert r.verdict == "fail" and r.exit_code == 1
    assert "independence" in r.caught_by
    assert {t.family for t in r.tests} == {"distribution", "independence"}


def test_the_correct_control_passes(gaussian):
    setup, controls = gaussian
    r = bridge.check(setup, controls["correct"], alpha=ALPHA)
    assert r.verdict == "pass" and r.caught_by == ()


@pytest.mark.slow
def test_the_correct_control_passes_across_20_seeds(gaussian):
    # each verdict has level ALPHA: more than the binomial allows at ALPHA would be a false-alarm excess
    setup, controls = gaussian
    fails = sum(bridge.check(setup, controls["correct"], plan=bridge.Plan(ALPHA, seed=s)).verdict == "fail"
                for s in range(20))
    assert stats.binomtest(fails, 20, ALPHA, alternative="greater").pvalue > ALPHA


def test_a_float32_candidate_is_not_taken_for_a_duplicating_one():
    rng = np.random.default_rng(4)  # d = 1 in float32: rows tie by rounding, as they would in the reference
    x = rng.normal(size=(20000, 1)).astype(np.float32).astype(np.float64)
    assert duplicate_rows(x) > 0
    assert nearest_neighbour_test(x, rng.normal(size=(20000, 1)), ALPHA).pvalue > ALPHA
