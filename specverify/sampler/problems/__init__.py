"""Built-in problems, torch side (``specverify problems`` lists them).

Each is built from plain data in :mod:`specverify.specs`; the reference side (:mod:`specverify.harness.reference`)
builds its own models from the same data.
"""

from __future__ import annotations

from specverify.errors import ChainError
from specverify.sampler.problems.base import DiffusionProblem, ThirdPartyView
from specverify.sampler.problems.digits import DigitsProblem
from specverify.sampler.problems.gaussian import GaussianProblem
from specverify.sampler.problems.gmm import GMMProblem
from specverify.sampler.problems.images import ImagesProblem
from specverify.sampler.problems.langevin import LangevinGaussianProblem, LangevinModelProblem

__all__ = ["PROBLEMS", "DiffusionProblem", "DigitsProblem", "GMMProblem", "GaussianProblem", "ImagesProblem",
           "LangevinGaussianProblem",
           "LangevinModelProblem", "ThirdPartyView", "default_dim", "fixed_dim",
           "make_problem"]

PROBLEMS = {
    "gaussian": GaussianProblem,
    "gmm": GMMProblem,
    "langevin-gaussian": LangevinGaussianProblem,
    "langevin-model": LangevinModelProblem,
    "digits": DigitsProblem,
    "images": ImagesProblem,
}


def fixed_dim(name: str) -> int | None:
    """The dimension a problem prescribes (digits: its fixed 64; images: 3072, its default of the d = 3 s^2 it
    takes), else None (the caller chooses d)."""
    if name not in PROBLEMS:
        raise ChainError(f"unknown problem {name!r}; choose one of {', '.join(PROBLEMS)}")
    fixed = PROBLEMS[name].__dict__.get("dim")
    return fixed if isinstance(fixed, int) else None


def default_dim(name: str) -> int:
    """The dimension a problem gets when none is asked for: its fixed size, else 2."""
    return fixed_dim(name) or 2


def make_problem(name: str, **kwargs):
    """A problem by registry name, e.g. ``make_problem("gaussian", dim=16)``."""
    if name not in PROBLEMS:
        raise ChainError(f"unknown problem {name!r}; choose one of {', '.join(PROBLEMS)}")
    return PROBLEMS[name](**kwargs)
