"""Langevin problems, torch side: unadjusted Langevin (Euler-Maruyama) on an unnormalised target.

`langevin-gaussian`: target N(mu, Sigma) (non-diagonal). The finite-step chain is linear-Gaussian, so its law
is known exactly; it is not the target: per eigen-direction the stationary variance is lambda / (1 - h / (2
lambda)), larger than lambda.
`langevin-model`: the posterior of a Bayesian logistic regression on scikit-learn's breast cancer data. The
score is written here in torch from the plain data; the reference side takes the potential from numpyro.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from specverify.errors import ChainError
from specverify.sampler.chains import GaussianChain, langevin
from specverify.sampler.problems.base import ThirdPartyView
from specverify.sampler.problems.gaussian import EigenBasis
from specverify.specs import GaussianSpec, LogisticSpec

__all__ = ["LangevinGaussianProblem", "LangevinModelProblem"]


class _Score(torch.nn.Module):
    """A torch module so that chain.to(dtype) moves its constants."""

    def forward(self, x, k):
        return self.score(x)


class GaussianScore(_Score):
    """grad log N(mu, Sigma) = -Sigma^{-1} (x - mu), in the eigenbasis of the spec."""

    def __init__(self, spec: GaussianSpec):
        super().__init__()
        self.register_buffer("mu", torch.tensor(spec.mean))
        self.register_buffer("prec", torch.tensor(1 / spec.eigvals))
        self.basis = EigenBasis(spec)

    def score(self, x):
        return -self.basis.from_eig(self.basis.to_eig(x - self.mu) * self.prec)


class LogisticScore(_Score):
    """grad log posterior: X^T (y - sigmoid(X theta)) * scale - theta / s^2 (scale > 1 for a data subset)."""

    def __init__(self, X, y, prior_scale, scale=1.0):
        super().__init__()
        self.register_buffer("X", torch.tensor(X))
        self.register_buffer("y", torch.tensor(y))
        self.prior_prec = 1.0 / prior_scale**2
        self.scale = scale

    def score(self, theta):
        return self.scale * (self.y - torch.sigmoid(theta @ self.X.T)) @ self.X - self.prior_prec * theta


class _LangevinProblem:
    name = ""
    exact_law = False
    dim = 0
    step_size = 0.0

    def _score(self, draft: bool) -> _Score:
        raise NotImplementedError

    def _make(self, steps, step_size, draft):
        h = self.step_size if step_size is None else step_size
        return dataclasses.replace(langevin(h, steps, (self.dim,), model=self._score(draft)), prior_std=self.prior_std,
                                   name=f"{self.name}{'-draft' if draft else ''}")

    def chain(self, steps=100, *, step_size=None, **unused) -> GaussianChain:
        """``steps`` Euler-Maruyama steps of size ``step_size`` from x_0 ~ N(0, prior_std^2 I)."""
        _no_diffusion_options(self.name, unused)
        return self._make(steps, step_size, draft=False)

    def draft_chain(self, steps=100, *, step_size=None, **unused) -> GaussianChain:
        _no_diffusion_options(self.name, unused)
        return self._make(steps, step_size, draft=True)

    def third_party(self, steps=100, *, step_size=None, dtype=torch.float64, **unused) -> ThirdPartyView:
        """The (mean, sigma) view; a Langevin problem has no eps-model view."""
        chain = self.chain(steps, step_size=step_size, **unused).to(dtype=dtype)
        return ThirdPartyView(chain.shape, chain.n_steps, chain.mean, chain.sigma, sampler="langevin",
                              prior_mean=float(chain.prior_mean), prior_std=float(chain.prior_std))


def _no_diffusion_options(name, options):
    bad = {k: v for k, v in options.items() if k in ("sampler", "eta") and v not in (None, "ddpm", 1.0)}
    if bad:
        raise ChainError(f"{name} is a Langevin chain: options {sorted(bad)} apply to diffusion problems only")


class LangevinGaussianProblem(_LangevinProblem):
    """Built-in problem `langevin-gaussian`: unadjusted Langevin on N(mu, Sigma); exact finite-step law."""

    name = "langevin-gaussian"
    exact_law = True
    reference = "exact finite-step law by recursion (float64); JAX Langevin sampler"
    params = {"--dim": "dimension d", "--steps": "number of Langevin steps", "--step-size": "h (0.05)"}
    prior_std = 1.0

    def __init__(self, dim: int = 2, step_size: float = 0.05, seed: int = 0):
        self.spec = GaussianSpec.default(dim, seed)
        self.dim = self.spec.dim
        self.step_size = float(step_size)

    def _score(self, draft):
        s = self.spec
        if draft:  # drop the correlations
            return GaussianScore(GaussianSpec(s.mean, np.einsum("ij,j,ij->i", s.eigvecs, s.eigvals, s.eigvecs),
                                              eigvecs=np.eye(self.dim)))
        return GaussianScore(s)


class LangevinModelProblem(_LangevinProblem):
    """Built-in problem `langevin-model`: unadjusted Langevin on a logistic regression posterior (breast cancer).

    scikit-learn's breast cancer data, an intercept and dim - 1 standardised features, prior N(0, I)."""

    name = "langevin-model"
    exact_law = False
    reference = "no closed-form chain law; JAX Langevin on numpyro's potential; NUTS for the target law"
    params = {"--dim": "1 + number of features (<= 31)", "--steps": "number of Langevin steps",
              "--step-size": "h (default 0.5 / Lipschitz constant of the score)"}

    def __init__(self, dim: int = 31, step_size: float | None = None, prior_scale: float = 1.0,
                 draft_fraction: float = 0.1, seed: int = 0):
        self.spec = LogisticSpec.breast_cancer(dim, prior_scale)
        self.dim = self.spec.dim
        self.prior_std = prior_scale
        lipschitz = np.linalg.eigvalsh(self.spec.X.T @ self.spec.X).max() / 4 + 1 / prior_scale**2
        self.step_size = 0.5 / lipschitz if step_size is None else float(step_size)
        rng = np.random.default_rng(seed)
        n = len(self.spec.y)
        self.draft_rows = np.sort(rng.choice(n, size=max(1, int(draft_fraction * n)), replace=False))

    def _score(self, draft):
        s = self.spec
        if draft:  # a fixed data subset, rescaled: a cheap score of the same posterior
            r = self.draft_rows
            return LogisticScore(s.X[r], s.y[r], s.prior_scale, scale=len(s.y) / len(r))
        return LogisticScore(s.X, s.y, s.prior_scale)
