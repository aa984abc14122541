"""specverify: verification of speculative sampling for diffusion models.

``import specverify`` is light: torch and jax are imported by the submodules that use them.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_LAZY = {
    "GaussianChain": "specverify.chains",
    "beta_schedule": "specverify.chains",
    "ddpm": "specverify.chains",
    "ddim": "specverify.chains",
    "langevin": "specverify.chains",
    "gaussian_chain": "specverify.chains",
    "reflection_coupling": "specverify.coupling",
    "acceptance_probability": "specverify.coupling",
    "plain_sample": "specverify.sampling",
    "speculative_sample": "specverify.sampling",
    "SpecStats": "specverify.sampling",
    "GeneratorNoise": "specverify.noise",
    "TableNoise": "specverify.noise",
    "make_drafter": "specverify.drafters",
    "make_problem": "specverify.problems",
    "check_against_law": "specverify.harness",
    "check_against_sampler": "specverify.harness",
    "assert_same_law": "specverify.pytest_plugin",  # needs pytest
    "assert_matches_law": "specverify.pytest_plugin",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'specverify' has no attribute {name!r}")
