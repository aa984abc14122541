"""The drafter interface.

A drafter proposes the mean of each drafted step. The speculative sampler calls ``start`` once per window with
the anchor (a past state, its step and, for ``needs_anchor`` drafters, the target output there: the committed
state's parent under the default policy, the window start under ``window-start``), then ``mean`` for each
drafted step (or ``affine`` once per window). Exactness never depends on the drafter: any drafter whose means
are a function of the past gives exact samples; only acceptance changes (``theory/rounds.md``).
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
        """Window state from the anchor state x (b, *shape), its steps k (b,) and, if needs_anchor, f(x, k)."""
        return None

    def mean(self, chain: GaussianChain, state, y: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """Draft mean at the drafted states y (b, *shape) and steps k (b,)."""
        raise NotImplementedError

    def affine(self, chain: GaussianChain, state, k: torch.Tensor):
        """Optional: (a, c) with ``mean(y, k) = a y + c`` for every y, at the steps k (b, L) of a whole window:
        a (b, L), c (b, L, *shape). Then the sampler drafts a window without a loop over its positions.
        None (the default): the drafter is not affine in y."""
        return None

    def select(self, state, rows: torch.Tensor):
        """The window state restricted to the given batch rows (a tensor state by default)."""
        if state is None:
            return None
        if isinstance(state, torch.Tensor):
            return state[rows]
        raise SamplerError(f"{type(self).__name__} must implement select() for its window state")
