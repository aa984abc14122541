"""Built-in problems, torch side (``specverify problems`` lists them)."""

from __future__ import annotations

from specverify.errors import ChainError
from specverify.problems.gmm import GMMProblem, GMMSpec

__all__ = ["PROBLEMS", "GMMProblem", "GMMSpec", "make_problem"]

PROBLEMS = {"gmm": GMMProblem}


def make_problem(name: str, **kwargs):
    if name not in PROBLEMS:
        raise ChainError(f"unknown problem {name!r}; choose one of {', '.join(PROBLEMS)}")
    return PROBLEMS[name](**kwargs)
