"""Training-free drafters that freeze the target at the window start (De Bortoli et al. 2025, Sec. 4)."""

from __future__ import annotations

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


class FrozenDenoiser(Drafter):
    """Reuse the model output f(x_n, n) (eps, x0, v or score) with each step's own coefficients:
    the draft mean at step k is a_k y + b_k f(x_n, n). For a generic chain (f = mean) it freezes the mean."""

    name = "frozen-denoiser"
    needs_anchor = True

    def start(self, chain, x, k, f):
        return f

    def mean(self, chain, state, y, k):
        return chain.mean_from(y, k, state)
