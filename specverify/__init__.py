"""specverify: verification of speculative sampling for diffusion models.

``import specverify`` is light: torch and jax are imported by the submodules that use them.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "GaussianChain": "specverify.sampler.chains",
    "beta_schedule": "specverify.sampler.chains",
    "ddpm": "specverify.sampler.chains",
    "ddim": "specverify.sampler.chains",
    "langevin": "specverify.sampler.chains",
    "gaussian_chain": "specverify.sampler.chains",
    "reflection_coupling": "specverify.sampler.coupling",
    "acceptance_probability": "specverify.sampler.coupling",
    "plain_sample": "specverify.sampler.speculative",
    "speculative_sample": "specverify.sampler.speculative",
    "SpecStats": "specverify.sampler.speculative",
    "SampleOptions": "specverify.sampler.options",
    "GeneratorNoise": "specverify.sampler.noise",
    "TableNoise": "specverify.sampler.noise",
    "make_drafter": "specverify.sampler.drafters",
    "make_problem": "specverify.sampler.problems",
    "Plan": "specverify.harness",
    "check_against_law": "specverify.harness",
    "check_against_sampler": "specverify.harness",
    "assert_same_law": "specverify.testing",
    "assert_matches_law": "specverify.testing",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'specverify' has no attribute {name!r}")
