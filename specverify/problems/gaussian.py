"""The `gaussian` problem, torch side: data N(mu, Sigma) with a non-diagonal Sigma = Q diag(lambda) Q^T.

Under the forward process the posterior mean is linear,

    E[x0 | x_t] = mu + sqrt(abar_t) Sigma (abar_t Sigma + (1 - abar_t) I)^{-1} (x_t - sqrt(abar_t) mu),

applied here in the eigenbasis Q. So the DDPM and DDIM chains are linear-Gaussian and the law of every step
is known exactly (the reference side computes it by recursion). That law is the law of the discretised chain,
not the data law N(mu, Sigma): the two differ by the discretisation error of the sampler.
"""

from __future__ import annotations

import numpy as np
import torch

from specverify.problems.base import DiffusionProblem, X0Denoiser
from specverify.specs import GaussianSpec

__all__ = ["DiagonalGaussianDenoiser", "GaussianDenoiser", "GaussianProblem"]


class GaussianDenoiser(X0Denoiser):
    """Exact denoiser of N(mu, Q diag(lambda) Q^T)."""

    def __init__(self, spec: GaussianSpec, betas, prediction: str = "eps"):
        super().__init__(betas, prediction)
        self.register_buffer("mu", torch.tensor(spec.mean))
        self.register_buffer("lam", torch.tensor(spec.eigvals))
        self.register_buffer("q", torch.tensor(spec.eigvecs))

    def x0(self, x, t):
        xf = x.flatten(1)
        at = self.abar[t][:, None]
        sa = at.sqrt()
        gain = sa * self.lam / (at * self.lam + (1 - at))  # (b, d), per eigen-direction
        return (self.mu + (((xf - sa * self.mu) @ self.q) * gain) @ self.q.T).view_as(x)


class DiagonalGaussianDenoiser(GaussianDenoiser):
    """Denoiser of N(mu, diag(Sigma)): drops the correlations; a cheap draft model for `gaussian` (O(d))."""

    def __init__(self, spec: GaussianSpec, betas, prediction: str = "eps"):
        X0Denoiser.__init__(self, betas, prediction)
        self.register_buffer("mu", torch.tensor(spec.mean))
        self.register_buffer("lam", torch.tensor(np.diag(spec.cov).copy()))

    def x0(self, x, t):
        xf = x.flatten(1)
        at = self.abar[t][:, None]
        sa = at.sqrt()
        return (self.mu + sa * self.lam / (at * self.lam + (1 - at)) * (xf - sa * self.mu)).view_as(x)


class GaussianProblem(DiffusionProblem):
    """Built-in problem `gaussian`: DDPM (or DDIM, eta > 0) on N(mu, Sigma), Sigma non-diagonal; linear denoiser."""

    name = "gaussian"
    exact_law = True
    reference = "exact law of every step by mean/covariance recursion (float64); JAX reference sampler"
    params = {"--dim": "data dimension d", "--steps": "number of chain steps", "--schedule": "linear | cosine",
              "--chain": "ddpm | ddim", "--eta": "DDIM eta > 0", "--prediction": "eps | x0 | v"}
    model_cls = GaussianDenoiser
    draft_cls = DiagonalGaussianDenoiser

    def __init__(self, dim: int = 2, seed: int = 0):
        self.spec = GaussianSpec.default(dim, seed)
        self.dim = self.spec.dim
