"""Drafters that run a model: an independent cheaper chain, and the oracle (the target itself)."""

from __future__ import annotations

import numpy as np

from specverify.errors import SamplerError
from specverify.sampler.chains import GaussianChain
from specverify.sampler.drafters.base import Drafter

__all__ = ["Independent", "Oracle"]


class Independent(Drafter):
    """Draft with another chain on the same schedule (same steps and noise scales), e.g. a smaller model."""

    name = "independent"
    cost = 1

    def __init__(self, draft_chain: GaussianChain):
        self.draft_chain = draft_chain

    def check(self, chain):
        q = self.draft_chain
        if q.n_steps != chain.n_steps or q.shape != chain.shape:
            raise SamplerError(f"draft chain has {q.n_steps} steps of shape {q.shape}; the target has "
                               f"{chain.n_steps} of shape {chain.shape}: build it on the same schedule")
        if not np.allclose(q.sigma, chain.sigma, rtol=1e-12, atol=0):
            raise SamplerError("draft chain noise scales differ from the target's: use the same schedule")

    def to(self, device=None, dtype=None):
        return Independent(self.draft_chain.to(device=device, dtype=dtype))

    def mean(self, chain, state, y, k):
        return self.draft_chain.mean(y, k)


class Oracle(Drafter):
    """Draft with the target itself. Every draft is accepted and the output equals the plain sampler's under
    the same noise: an exact test of the machinery, not a speed-up (it costs one target call per step)."""

    name = "oracle"
    cost = 1

    def mean(self, chain, state, y, k):
        return chain.mean(y, k)
