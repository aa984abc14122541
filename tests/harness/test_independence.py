"""The independence block: the nearest-neighbour permutation test, seed hygiene, and negative controls.

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
from specverify.harness.stats.independence import duplicate_rows, nearest_neighbour_test

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
    r = bridge.check(setup, controls[name], alpha=ALPHA, seed=0)
    assert r.verdict == "fail" and r.exit_code == 1
    assert "independence" in r.caught_by
    assert {t.family for t in r.tests} == {"distribution", "independence"}


def test_the_correct_control_passes(gaussian):
    setup, controls = gaussian
    r = bridge.check(setup, controls["correct"], alpha=ALPHA, seed=0)
    assert r.verdict == "pass" and r.caught_by == ()


@pytest.mark.slow
def test_the_correct_control_passes_across_20_seeds(gaussian):
    # each verdict has level ALPHA: more than the binomial allows at ALPHA would be a false-alarm excess
    setup, controls = gaussian
    fails = sum(bridge.check(setup, controls["correct"], alpha=ALPHA, seed=s).verdict == "fail" for s in range(20))
    assert stats.binomtest(fails, 20, ALPHA, alternative="greater").pvalue > ALPHA


def test_a_float32_candidate_is_not_taken_for_a_duplicating_one():
    rng = np.random.default_rng(4)  # d = 1 in float32: rows tie by rounding, as they would in the reference
    x = rng.normal(size=(20000, 1)).astype(np.float32).astype(np.float64)
    assert duplicate_rows(x) > 0
    assert nearest_neighbour_test(x, rng.normal(size=(20000, 1)), ALPHA).pvalue > ALPHA
