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

from specverify.sampler.problems.base import DiffusionProblem, X0Denoiser
from specverify.specs import GaussianSpec

__all__ = ["DiagonalGaussianDenoiser", "EigenBasis", "GaussianDenoiser", "GaussianProblem"]


class EigenBasis(torch.nn.Module):
    """x -> x Q and c -> c Q^T for the eigenvectors Q of a GaussianSpec: through its Householder reflections
    (O(k d) per row) when the spec has them, else with the dense matrix."""

    def __init__(self, spec: GaussianSpec):
        super().__init__()
        dense = spec.reflections is None
        self.register_buffer("q", torch.tensor(spec.eigvecs) if dense else None)
        self.register_buffer("v", None if dense else torch.tensor(spec.reflections))

    def to_eig(self, x):
        if self.v is None:
            return x @ self.q
        for v in self.v:  # x Q = x H_1 ... H_k
            x = x - 2 * (x @ v)[:, None] * v
        return x

    def from_eig(self, c):
        if self.v is None:
            return c @ self.q.T
        for v in self.v.flip(0):  # c Q^T = c H_k ... H_1
            c = c - 2 * (c @ v)[:, None] * v
        return c


class GaussianDenoiser(X0Denoiser):
    """Exact denoiser of N(mu, Q diag(lambda) Q^T)."""

    def __init__(self, spec: GaussianSpec, betas, prediction: str = "eps"):
        super().__init__(betas, prediction)
        self.register_buffer("mu", torch.tensor(spec.mean))
        self.register_buffer("lam", torch.tensor(spec.eigvals))
        self.basis = EigenBasis(spec)

    def x0(self, x, t):
        xf = x.flatten(1)
        at = self.abar[t][:, None]
        sa = at.sqrt()
        gain = sa * self.lam / (at * self.lam + (1 - at))  # (b, d), per eigen-direction
        return (self.mu + self.basis.from_eig(self.basis.to_eig(xf - sa * self.mu) * gain)).view_as(x)


class DiagonalGaussianDenoiser(GaussianDenoiser):
    """Denoiser of N(mu, diag(Sigma)): drops the correlations; a cheap draft model for `gaussian` (O(d))."""

    def __init__(self, spec: GaussianSpec, betas, prediction: str = "eps"):
        X0Denoiser.__init__(self, betas, prediction)
        self.register_buffer("mu", torch.tensor(spec.mean))
        self.register_buffer("lam", torch.tensor(np.einsum("ij,j,ij->i", spec.eigvecs, spec.eigvals, spec.eigvecs)))

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
