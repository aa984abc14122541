"""The independent reference side of specverify: exact laws and plain samplers in JAX (float64) and numpy.

Layering (checked by ``tests/test_layering.py``): nothing under this package imports torch or the sampler
side (``specverify.sampler.chains``, ``sampling``, ``coupling``, ``drafters``, ``problems``, ``noise``, ``cli``). It
reads only the plain problem data of :mod:`specverify.specs` and builds its own models from it, so that "the
sampler agrees with the reference" is evidence from two independently written programs.

Importing this package turns on JAX's 64-bit mode, process-wide (``jax.config.update("jax_enable_x64",
True)``): the exact laws and the reference samplers are float64. JAX code elsewhere in the same process sees
float64 defaults from then on.

Contents: :func:`diffusion_transition` (DDPM / DDIM coefficients), closed-form denoisers and scores
(:func:`gmm_eps`, :func:`gaussian_eps`, :func:`images_eps`, ...), exact laws of linear-Gaussian chains
(:func:`gaussian_chain_law`, :func:`langevin_gaussian_law`, :func:`gaussian_kl`, ...), samplers
(:func:`sample_diffusion`, :func:`sample_langevin`, :func:`images_sampler`) and numpyro models
(:func:`gmm_data_law`, :func:`images_data_law`, :func:`logistic_model`, :func:`run_nuts`).
"""

from __future__ import annotations

import jax

jax.config.update("jax_enable_x64", True)

from specverify.harness.reference.denoisers import (  # noqa: E402
    gaussian_eps,
    gaussian_score,
    gaussian_x0,
    gmm_eps,
    gmm_x0,
    logistic_score,
)
from specverify.harness.reference.images import (  # noqa: E402
    images_data_law,
    images_eps,
    images_moments,
    images_sampler,
    images_x0,
)
from specverify.harness.reference.laws import (  # noqa: E402
    ChainLaw,
    DenseChainLaw,
    GaussianLaw,
    data_law,
    diffused_data_law,
    gaussian_chain_law,
    gaussian_chain_law_dense,
    gaussian_kl,
    langevin_gaussian_law,
    ula_stationary_law,
)
from specverify.harness.reference.models import gmm_data_law, logistic_model, logistic_potential, run_nuts  # noqa: E402
from specverify.harness.reference.samplers import InitialLaw, sample_diffusion, sample_langevin  # noqa: E402
from specverify.harness.reference.schedules import DiffusionTransition, diffusion_transition, x0_to_eps  # noqa: E402

__all__ = [
    "ChainLaw",
    "DenseChainLaw",
    "DiffusionTransition",
    "GaussianLaw",
    "InitialLaw",
    "data_law",
    "diffused_data_law",
    "diffusion_transition",
    "gaussian_chain_law",
    "gaussian_chain_law_dense",
    "gaussian_eps",
    "gaussian_kl",
    "gaussian_score",
    "gaussian_x0",
    "gmm_data_law",
    "gmm_eps",
    "gmm_x0",
    "images_data_law",
    "images_eps",
    "images_moments",
    "images_sampler",
    "images_x0",
    "langevin_gaussian_law",
    "logistic_model",
    "logistic_potential",
    "logistic_score",
    "run_nuts",
    "sample_diffusion",
    "sample_langevin",
    "ula_stationary_law",
    "x0_to_eps",
]
