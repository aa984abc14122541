"""One formula, one place: the sampler's coupling parts compose to the coupling, and the formulas the two halves
write twice on purpose (declared twins) agree exactly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from specverify.harness import predictions as harness_predictions
from specverify.harness.coupling_check import reference_coupling
from specverify.sampler import chains, coupling


def _inputs(n=64, d=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    mp, mq, z = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(3))
    sigma = 0.2 + torch.rand(n, generator=g, dtype=torch.float64)
    u = torch.rand(n, generator=g, dtype=torch.float64).clamp_min(1e-12)
    return mp, mq, sigma, z, u


def test_couple_is_built_from_its_parts():
    mp, mq, sigma, z, u = _inputs()
    step = coupling.coupled_step(mp, mq, sigma, z)
    x, acc, dist = coupling.couple(mp, mq, sigma, z, u)
    assert 0 < int(acc.sum()) < acc.numel()  # both branches taken
    torch.testing.assert_close(acc, coupling.accept(u, step.log_ratio), rtol=0, atol=0)
    torch.testing.assert_close(x, coupling.select(acc, step.draft, step.reflected), rtol=0, atol=0)
    log_ratio, dist2 = coupling.log_acceptance_ratio(mp, mq, sigma, z)
    torch.testing.assert_close((step.log_ratio, step.dist), (log_ratio, dist2), rtol=0, atol=0)
    torch.testing.assert_close(dist, dist2, rtol=0, atol=0)


def test_reflection_keeps_the_noise_norm_and_flips_its_component_along_d():
    mp, mq, sigma, z, _ = _inputs()
    step = coupling.coupled_step(mp, mq, sigma, z)
    z_ref = (step.reflected - mp) / step.scale
    torch.testing.assert_close(z_ref.norm(dim=1), z.norm(dim=1))
    e = (mq - mp) / sigma[:, None] / step.dist[:, None]
    torch.testing.assert_close((z_ref * e).sum(1), -(z * e).sum(1))


def test_reflection_twins_agree():
    """Sampler side (torch) against the harness's reference_coupling (numpy): same flags, same outputs."""
    mp, mq, sigma, z, u = _inputs(seed=1)
    x, acc, _ = coupling.couple(mp, mq, sigma, z, u)
    x_ref, acc_ref = reference_coupling(*(t.numpy() for t in (mp, mq, sigma, z, u)))
    np.testing.assert_array_equal(acc.numpy(), acc_ref)
    np.testing.assert_allclose(x.numpy(), x_ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_first_zero_noise_twins_agree(seed):
    rng = np.random.default_rng(seed)
    for T in (1, 2, 7, 30):
        sigma = np.where(rng.random(T) < 0.3, 0.0, rng.random(T) + 0.1)
        stop = chains.first_zero_noise(sigma)
        np.testing.assert_array_equal(stop, harness_predictions.first_zero_noise(sigma))
        assert stop.shape == (T + 1,) and stop[T] == T
        for k in range(T):  # the definition, directly
            later = [j for j in range(k, T) if sigma[j] == 0]
            assert stop[k] == (later[0] if later else T)


def test_acceptance_probability_twins_agree():
    dist = np.array([0.0, 0.3, 1.0, 4.0, 20.0, 40.0])
    np.testing.assert_allclose(coupling.acceptance_probability(torch.tensor(dist)).numpy(),
                               harness_predictions.acceptance_probability(dist), rtol=1e-13, atol=0)
