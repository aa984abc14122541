"""The `gmm` problem, torch side: a mixture of isotropic Gaussians with a closed-form denoiser.

Data: x0 ~ sum_c w_c N(mu_c, v_c I). Under the forward process x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps,
x_t | c ~ N(sqrt(abar_t) mu_c, (abar_t v_c + 1 - abar_t) I), and the posterior mean is

    E[x0 | x_t] = sum_c r_c(x_t) (mu_c + sqrt(abar_t) v_c / (abar_t v_c + 1 - abar_t) (x_t - sqrt(abar_t) mu_c)),

with r_c the component responsibilities. The law of the discretised chain has no closed form; its reference
is an independent sampler (the JAX side). Only the plain data in :class:`GMMSpec` is shared with it.
"""

from __future__ import annotations

import numpy as np
import torch

from specverify.sampler.problems.base import DiffusionProblem, X0Denoiser
from specverify.specs import GMMSpec

__all__ = ["GMMDenoiser", "GMMProblem", "GMMSpec", "IsotropicGaussianDenoiser"]


class GMMDenoiser(X0Denoiser):
    """Closed-form ``model(x, t)`` of a GMM data law, returning eps, x0 or v for diffusion time t."""

    def __init__(self, spec: GMMSpec, betas, prediction: str = "eps"):
        super().__init__(betas, prediction)
        self.register_buffer("log_w", torch.tensor(np.log(spec.weights)))
        self.register_buffer("mu", torch.tensor(spec.means))
        self.register_buffer("var", torch.tensor(spec.variances))
        self.register_buffer("mu_sq", torch.tensor((spec.means**2).sum(1)))

    def x0(self, x, t):
        xf = x.flatten(1)
        d = xf.shape[1]
        at = self.abar[t][:, None]  # (b, 1)
        sa = at.sqrt()
        var_t = at * self.var + (1 - at)  # (b, K)
        # Row-wise sums instead of matmuls: BLAS results depend on the batch size in the last bits, and the
        # oracle identity test needs a model whose output for a sample does not depend on its batch.
        xmu = torch.stack([(xf * mu).sum(1) for mu in self.mu], dim=1)  # (b, K)
        sq = (xf**2).sum(1, keepdim=True) - 2 * sa * xmu + at * self.mu_sq  # |x - sa mu_c|^2
        logits = self.log_w - 0.5 * sq / var_t - 0.5 * d * torch.log(var_t)
        r = torch.softmax(logits, dim=1)
        gain = sa * self.var / var_t  # (b, K)
        w = r * (1 - sa * gain)
        x0 = xf * (r * gain).sum(1, keepdim=True)
        for c, mu in enumerate(self.mu):
            x0 = x0 + w[:, c : c + 1] * mu
        return x0.view_as(x)


class IsotropicGaussianDenoiser(GMMDenoiser):
    """The denoiser of the moment-matched isotropic Gaussian: a cheap, crude draft model for `gmm`."""

    def __init__(self, spec: GMMSpec, betas, prediction: str = "eps"):
        m = spec.weights @ spec.means
        second = spec.weights @ (spec.variances * spec.dim + (spec.means**2).sum(1))
        v = (second - (m**2).sum()) / spec.dim
        super().__init__(GMMSpec(np.ones(1), m[None], np.array([v])), betas, prediction)


class GMMProblem(DiffusionProblem):
    """Built-in problem `gmm`: DDPM (or DDIM, eta > 0) on a mixture of Gaussians with an exact denoiser."""

    name = "gmm"
    exact_law = False
    reference = "no closed-form chain law; JAX reference sampler (lax.scan), numpyro MixtureSameFamily data law"
    params = {"--dim": "data dimension d", "--steps": "number of chain steps", "--components": "mixture size (8)",
              "--schedule": "linear | cosine", "--chain": "ddpm | ddim", "--eta": "DDIM eta > 0",
              "--prediction": "eps | x0 | v"}
    model_cls = GMMDenoiser
    draft_cls = IsotropicGaussianDenoiser

    def __init__(self, dim: int = 2, n_components: int = 8, seed: int = 0):
        self.spec = GMMSpec.default(dim, n_components, seed)
        self.dim = self.spec.dim

    def data_sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Draws from the data law (not the chain's law) with numpy."""
        rng = np.random.default_rng(seed)
        c = rng.choice(len(self.spec.weights), size=n, p=self.spec.weights)
        return self.spec.means[c] + rng.normal(size=(n, self.dim)) * np.sqrt(self.spec.variances[c])[:, None]
