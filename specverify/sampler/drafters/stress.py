"""A deliberately degraded drafter for stress tests: it rejects a known fraction of steps."""

from __future__ import annotations

import math

from specverify.errors import SamplerError
from specverify.sampler.chains import _bcast
from specverify.sampler.drafters.base import Drafter

__all__ = ["Stress"]


class Stress(Drafter):
    """Draft mean = target mean + delta * sigma_k * e, with e the unit vector (1, ..., 1) / sqrt(d).

    Then |D| = delta at every step, so each step is accepted with probability exactly 2 Phi(-delta / 2)
    (delta = 1.2: 0.55). Most implementation bugs live in the rejection path, which good drafters rarely
    exercise; this drafter exercises it on about half the steps. It calls the target once per drafted step
    (a test instrument, not a speed-up).
    """

    name = "stress"
    cost = 1

    def __init__(self, delta: float = 1.2):
        if not math.isfinite(delta) or delta < 0:
            raise SamplerError(f"delta must be a finite number >= 0, got {delta}")
        self.delta = float(delta)

    @property
    def acceptance(self) -> float:
        import torch

        from specverify.sampler.coupling import acceptance_probability

        return float(acceptance_probability(torch.tensor(self.delta, dtype=torch.float64)))

    def mean(self, chain, state, y, k):
        _, _, sig = chain.coefs(y)
        shift = self.delta / math.sqrt(chain.dim)
        return chain.mean(y, k) + _bcast(sig[k], y) * shift
