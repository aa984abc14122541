"""Hypothesis strategies for property tests of speculative samplers (needs ``hypothesis``).

- :func:`gaussian_pairs`: target and draft means with a noise scale, for one coupled step.
- :func:`problems`: a built-in problem small enough for fast tests (name, dim, steps).
- :func:`windows`: window lengths >= 1.
- :func:`drafters`: built-in drafters by name (with options).

Every argument takes a strategy or a plain value. The draws are small records (named tuples) that print well in
a falsifying example and build the heavy objects on demand (``.make()``, ``.chain()``), so hypothesis shrinks
names and sizes rather than tensors. torch loads only when a draw builds a tensor.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from hypothesis import strategies as st

from specverify.errors import UsageError

__all__ = ["DrafterCase", "GaussianPair", "ProblemCase", "drafters", "gaussian_pairs", "problems", "windows"]

FAST_PROBLEMS = ("gaussian", "gmm", "langevin-gaussian")  # langevin-model loads a data set
SIMPLE_DRAFTERS = ("frozen-drift", "frozen-denoiser", "oracle", "stress")  # "independent" needs a problem too


def _strategy(v) -> st.SearchStrategy:
    return v if isinstance(v, st.SearchStrategy) else st.just(v)


def _log_uniform(lo: float, hi: float) -> st.SearchStrategy:
    """10^e for e uniform in [lo, hi]: positive floats over several orders of magnitude."""
    return st.floats(lo, hi).map(lambda e: 10.0**e)


# Defaults (hypothesis strategies are lazy, so module-level ones cost nothing at import).
PAIR_DIMS = st.integers(1, 64)
PAIR_BATCH = st.integers(1, 4)
PAIR_SIGMA = _log_uniform(-3, 2)
PAIR_DISTANCE = _log_uniform(-6, 1.5) | st.just(0.0)
PAIR_MEAN_SCALE = st.sampled_from([0.0, 1.0, 10.0])
PROBLEM_DIMS = st.integers(1, 4)
PROBLEM_STEPS = st.integers(2, 12)
STRESS_DELTA = st.floats(0.0, 3.0)


class GaussianPair(NamedTuple):
    """One coupled step: target N(mean_p, sigma^2 I), draft N(mean_q, sigma^2 I).

    ``mean_p`` and ``mean_q`` are (batch, d); ``distance`` (batch,) is |mean_q - mean_p| / sigma by construction
    (exact up to rounding), so the acceptance probability of each row is 2 Phi(-distance / 2).
    """

    mean_p: object
    mean_q: object
    sigma: float
    distance: np.ndarray


def gaussian_pairs(dims=PAIR_DIMS, batch=PAIR_BATCH, sigma=PAIR_SIGMA, distance=PAIR_DISTANCE,
                   mean_scale=PAIR_MEAN_SCALE, backend: str = "torch") -> st.SearchStrategy:
    """:class:`GaussianPair` draws for :func:`specverify.sampler.coupling.reflection_coupling`.

    mean_p = mean_scale * N(0, I); mean_q = mean_p + sigma * distance * v with v a random unit vector, one
    distance per row (default: 0 or log-uniform in [1e-6, 10^1.5], acceptance from 1 down to about 0).
    ``backend``: ``"torch"`` (float64 tensors) or ``"numpy"``.
    """
    if backend not in ("torch", "numpy"):
        raise UsageError(f"backend must be 'torch' or 'numpy', got {backend!r}")
    return _pairs(_PairStrategies(*map(_strategy, (dims, batch, sigma, distance, mean_scale))), backend)


class _PairStrategies(NamedTuple):
    """The strategies of one :func:`gaussian_pairs` draw's sizes and scales."""

    dims: st.SearchStrategy
    batch: st.SearchStrategy
    sigma: st.SearchStrategy
    distance: st.SearchStrategy
    mean_scale: st.SearchStrategy


@st.composite
def _pairs(draw, s: _PairStrategies, backend):
    d, b = draw(s.dims), draw(s.batch)
    sigma, scale = float(draw(s.sigma)), float(draw(s.mean_scale))
    dist = np.array(draw(st.lists(s.distance, min_size=b, max_size=b)), dtype=np.float64)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))  # the vectors: noise, not worth shrinking
    mean_p = scale * rng.standard_normal((b, d))
    v = rng.standard_normal((b, d))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    mean_q = mean_p + sigma * dist[:, None] * v
    if backend == "torch":
        import torch

        mean_p, mean_q = torch.from_numpy(mean_p), torch.from_numpy(mean_q)
    return GaussianPair(mean_p, mean_q, sigma, dist)


class ProblemCase(NamedTuple):
    """A built-in problem by name, dimension and number of chain steps."""

    name: str
    dim: int
    steps: int

    def make(self):
        """The problem (``specverify.sampler.problems.make_problem``)."""
        from specverify.bridge.registry import make_problem

        return make_problem(self.name, dim=self.dim)

    def chain(self):
        """The problem's target chain with ``steps`` steps (defaults otherwise)."""
        return self.make().chain(self.steps)


def problems(names=FAST_PROBLEMS, dims=PROBLEM_DIMS, steps=PROBLEM_STEPS) -> st.SearchStrategy:
    """:class:`ProblemCase` draws; by default the fast built-in problems, d <= 4, at most 12 steps."""
    return st.builds(ProblemCase, st.sampled_from(names), _strategy(dims), _strategy(steps))


def windows(max_window: int = 8) -> st.SearchStrategy:
    """Window lengths 1 .. max_window (a window longer than the chain is allowed and must work)."""
    if max_window < 1:
        raise UsageError(f"max_window must be >= 1, got {max_window}")
    return st.integers(1, max_window)


class DrafterCase(NamedTuple):
    """A drafter by registry name and options."""

    name: str
    options: tuple = ()  # (key, value) pairs

    def make(self, problem: ProblemCase | None = None):
        """The drafter (``specverify.sampler.drafters.make_drafter``); ``independent`` drafts with ``problem``'s
        cheaper chain on the same schedule."""
        from specverify.bridge.registry import make_drafter

        kwargs = dict(self.options)
        if self.name == "independent" and problem is not None:
            kwargs["draft_chain"] = problem.make().draft_chain(problem.steps)
        return make_drafter(self.name, **kwargs)


def drafters(names=SIMPLE_DRAFTERS, delta=STRESS_DELTA) -> st.SearchStrategy:
    """:class:`DrafterCase` draws; ``stress`` gets its shift ``delta`` (acceptance 2 Phi(-delta / 2)).
    Add ``"independent"`` to ``names`` only where ``.make(problem)`` gets the problem."""
    def case(name):
        if name == "stress":
            return _strategy(delta).map(lambda v: DrafterCase(name, (("delta", float(v)),)))
        return st.just(DrafterCase(name))

    return st.sampled_from(names).flatmap(case)
