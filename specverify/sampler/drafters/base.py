"""The drafter interface.

A drafter proposes the mean of each drafted step. The speculative sampler calls ``start`` once per window,
at the window start (state x_n, step n), then ``mean`` for each drafted step. Exactness never depends on the
drafter: any drafter whose means are a function of the past gives exact samples; only acceptance changes.
"""

from __future__ import annotations

import torch

from specverify.errors import SamplerError
from specverify.sampler.chains import GaussianChain

__all__ = ["Drafter"]


class Drafter:
    """Interface. ``needs_anchor``: ``start`` needs the target output f(x_n, n) at the window start.
    ``cost``: model evaluations per drafted step (reported as draft evaluations)."""

    name = "drafter"
    needs_anchor = False
    cost = 0

    def check(self, chain: GaussianChain) -> None:
        """Raise :class:`SamplerError` if this drafter cannot draft for ``chain``."""

    def to(self, device=None, dtype=None) -> Drafter:
        """This drafter with its models on ``device`` / ``dtype`` (the sampler calls it)."""
        return self

    def start(self, chain: GaussianChain, x: torch.Tensor, k: torch.Tensor, f: torch.Tensor | None):
        """Window state from the start x_n (b, *shape), its steps k (b,) and, if needs_anchor, f(x_n, n)."""
        return None

    def mean(self, chain: GaussianChain, state, y: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Draft mean at the drafted states y (b, *shape) and steps k (b,)."""
        raise NotImplementedError

    def select(self, state, rows: torch.Tensor):
        """The window state restricted to the given batch rows (a tensor state by default)."""
        if state is None:
            return None
        if isinstance(state, torch.Tensor):
            return state[rows]
        raise SamplerError(f"{type(self).__name__} must implement select() for its window state")
