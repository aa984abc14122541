"""The harness writes the DDPM / DDIM coefficients once, in :mod:`specverify.harness.reference.schedules`; the
dimension predictions (:mod:`specverify.harness.dimension`) take theirs from it. Exact (floating-point) checks."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from specverify.harness import reference as ref
from specverify.harness.dimension import ChainOptions, _affine_gaussian_chain
from specverify.harness.predictions import first_zero_noise
from specverify.specs import GaussianSpec, beta_schedule

CASES = [(s, p, sch) for s in ("ddpm", "ddim") for p in ("eps", "x0", "v") for sch in ("linear", "cosine")]


@pytest.mark.parametrize(("sampler", "prediction", "schedule"), CASES)
def test_dimension_chain_is_the_reference_transition(sampler, prediction, schedule):
    """The eigen-coordinate chain's mean a x + b f(x) equals the reference step c_x x + c_eps eps_hat(x) with the
    reference's exact Gaussian denoiser, and its noise scales are the reference's, for every output f."""
    spec, betas, eta = GaussianSpec.default(5, 3), beta_schedule(schedule, 40), 0.6
    c = _affine_gaussian_chain(spec, 40, ChainOptions(sampler, schedule, prediction, eta))
    a, b, sigma, phi, gamma = c.a, c.b, c.sigma, c.phi, c.gamma
    tr = ref.diffusion_transition(betas, sampler, **({"eta": eta} if sampler == "ddim" else {}))
    np.testing.assert_array_equal(sigma, tr.sigma)
    x = np.random.default_rng(0).standard_normal((tr.n_steps, 5))  # row k: a state at chain step k
    q = spec.eigvecs
    f = (phi * (x @ q) + gamma) @ q.T  # the model output at each row's step
    mean = a[:, None] * x + b[:, None] * f
    eps = np.asarray(ref.gaussian_eps(spec, betas)(x, tr.t))
    np.testing.assert_allclose(mean, tr.c_x[:, None] * x + tr.c_eps[:, None] * eps, rtol=1e-10, atol=1e-10)


def test_dimension_ddpm_ignores_eta():
    spec = GaussianSpec.default(3, 0)
    one, other = (_affine_gaussian_chain(spec, 20, ChainOptions("ddpm", "linear", "eps", eta)) for eta in (0.3, 1.0))
    for f in dataclasses.fields(one):
        np.testing.assert_array_equal(getattr(one, f.name), getattr(other, f.name))


def test_first_zero_noise():
    np.testing.assert_array_equal(first_zero_noise([1.0, 0.0, 2.0, 3.0, 0.0]), [1, 1, 4, 4, 4, 5])
    np.testing.assert_array_equal(first_zero_noise([0.5, 0.5]), [2, 2, 2])
    np.testing.assert_array_equal(first_zero_noise(ref.diffusion_transition(beta_schedule("linear", 4)).sigma),
                                  [3, 3, 3, 3, 4])
