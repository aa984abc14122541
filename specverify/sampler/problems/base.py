"""What every torch-side problem offers: its chains, a cheaper draft chain, and a third-party view.

A third-party view is what an external speculative sampler expects from a real diffusion model: an
epsilon-prediction callable ``eps_model(x, t)`` with the beta schedule (diffusers-style), and the generic
``(mean, sigma)`` view of each transition. External implementations plug into these.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from specverify.contract import ThirdPartyView  # the contract's type, torch-free (re-exported here)
from specverify.errors import ChainError
from specverify.sampler.chains import GaussianChain, TimestepModel, beta_schedule, ddim, ddpm

__all__ = ["DiffusionProblem", "ThirdPartyView", "X0Denoiser"]


class X0Denoiser(torch.nn.Module):
    """A closed-form posterior-mean denoiser; subclasses implement ``x0(x, t)``. ``forward`` returns the
    requested parametrisation (eps, x0 or v) at diffusion time t."""

    def __init__(self, betas, prediction: str = "eps"):
        super().__init__()
        if prediction not in ("eps", "x0", "v"):
            raise ChainError(f"prediction must be 'eps', 'x0' or 'v', got {prediction!r}")
        self.prediction = prediction
        self.register_buffer("abar", torch.tensor(np.cumprod(1 - np.asarray(betas, dtype=np.float64))))

    def x0(self, x, t):
        raise NotImplementedError

    def forward(self, x, t):
        x0 = self.x0(x, t)
        if self.prediction == "x0":
            return x0
        sa = self.abar[t].sqrt().view(-1, *([1] * (x.ndim - 1)))
        sb = (1 - self.abar[t]).sqrt().view_as(sa)
        eps = (x - sa * x0) / sb
        return eps if self.prediction == "eps" else sa * eps - sb * x0


class DiffusionProblem:
    """A data law with a closed-form denoiser (``model_cls``) and a cheaper one (``draft_cls``), sampled by
    DDPM or DDIM (eta > 0). Subclasses set ``name``, ``exact_law``, ``params``, ``spec`` and the two classes."""

    name = ""
    exact_law = False
    model_cls: type[X0Denoiser]
    draft_cls: type[X0Denoiser]
    spec = None
    dim = 0

    def model(self, betas, prediction: str = "eps") -> X0Denoiser:
        return self.model_cls(self.spec, betas, prediction)

    eps_model = model  # the diffusers-style name for the same thing

    @property
    def event_shape(self) -> tuple[int, ...]:
        """The shape of one sample: (dim,) here; images override it."""
        return (self.dim,)

    def _chain(self, role, steps, schedule, sampler, prediction, eta) -> GaussianChain:
        """The target's chain (``role`` "target") or the independent drafter's ("draft"), named after the role."""
        cls, name = (self.model_cls, f"{self.name}-{sampler}") if role == "target" else (self.draft_cls,
                                                                                          f"{self.name}-draft")
        betas = beta_schedule(schedule, steps)
        model = cls(self.spec, betas, prediction)
        if sampler == "ddpm":
            return dataclasses.replace(ddpm(model, betas, self.event_shape, prediction=prediction), name=name)
        if sampler == "ddim":
            return dataclasses.replace(ddim(model, betas, self.event_shape, eta=eta, prediction=prediction), name=name)
        raise ChainError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")

    def chain(self, steps=100, *, schedule="linear", sampler="ddpm", prediction="eps", eta=1.0) -> GaussianChain:
        """The target chain: ``steps`` diffusion steps of DDPM (posterior variance) or DDIM (eta > 0)."""
        return self._chain("target", steps, schedule, sampler, prediction, eta)

    def draft_chain(self, steps=100, *, schedule="linear", sampler="ddpm", prediction="eps", eta=1.0):
        """A cheaper chain on the same schedule, for the independent drafter."""
        return self._chain("draft", steps, schedule, sampler, prediction, eta)

    def third_party(self, steps=100, *, schedule="linear", sampler="ddpm", eta=1.0, dtype=torch.float64):
        """The eps-model + beta-schedule view and the (mean, sigma) view of :meth:`chain`."""
        chain = self.chain(steps, schedule=schedule, sampler=sampler, eta=eta).to(dtype=dtype)
        tm = chain.model
        assert isinstance(tm, TimestepModel)
        return ThirdPartyView(chain.shape, chain.n_steps, chain.mean, chain.sigma, eps_model=tm.model,
                              betas=beta_schedule(schedule, steps), timesteps=tm.timesteps.cpu().numpy(),
                              eta=eta if sampler == "ddim" else None, sampler=sampler,
                              prior_mean=float(chain.prior_mean), prior_std=float(chain.prior_std))
