"""Training-free drafters that freeze the target at the anchor (De Bortoli et al. 2025, Sec. 4): the latest target
output (the committed state's parent) under the default policy, the window start under ``window-start``."""

from __future__ import annotations

import torch

from specverify.sampler.chains import _bcast
from specverify.sampler.drafters.base import Drafter

__all__ = ["FrozenDenoiser", "FrozenDrift"]


class FrozenDrift(Drafter):
    """The paper's out-of-the-box drafter: the increment m_p(x_n, n) - x_n is reused for every drafted step,
    so the draft mean at a drafted state y is y + m_p(x_n, n) - x_n."""

    name = "frozen-drift"
    needs_anchor = True

    def start(self, chain, x, k, f):
        return chain.mean_from(x, k, f) - x

    def mean(self, chain, state, y, k):
        return y + state

    def affine(self, chain, state, k):
        return torch.ones(k.shape, dtype=state.dtype, device=state.device), state.unsqueeze(1).expand(
            -1, k.shape[1], *state.shape[1:])


class FrozenDenoiser(Drafter):
    """Reuse the model output f(x_n, n) (eps, x0, v or score) with each step's own coefficients:
    the draft mean at step k is a_k y + b_k f(x_n, n). For a generic chain (f = mean) it freezes the mean."""

    name = "frozen-denoiser"
    needs_anchor = True

    def start(self, chain, x, k, f):
        return f

    def mean(self, chain, state, y, k):
        return chain.mean_from(y, k, state)

    def affine(self, chain, state, k):
        a, b, _ = chain.coefs(state)
        return a[k], _bcast(b[k], state.unsqueeze(1)) * state.unsqueeze(1)
