"""numpyro models of the problems: the GMM data law and Bayesian logistic regression (its potential and NUTS).

NUTS here is a sanity reference for the law a Langevin chain targets (the posterior), not an exactness
reference: a Langevin chain with a finite step is exact for its own discretised law, not for the posterior.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.infer import MCMC, NUTS
from numpyro.infer.util import potential_energy

from specverify._validate import positive_int
from specverify.errors import ChainError
from specverify.specs import GMMSpec, LogisticSpec

__all__ = ["gmm_data_law", "logistic_model", "logistic_potential", "run_nuts"]


def gmm_data_law(spec: GMMSpec) -> dist.MixtureSameFamily:
    """The GMM as a numpyro distribution: MixtureSameFamily(Categorical(w), Independent(Normal(mu_j, sqrt(v_j)), 1))."""
    if not isinstance(spec, GMMSpec):
        raise ChainError(f"expected a specverify.specs.GMMSpec, got {type(spec).__name__}")
    mu = jnp.asarray(spec.means)
    scale = jnp.broadcast_to(jnp.sqrt(jnp.asarray(spec.variances))[:, None], mu.shape)
    return dist.MixtureSameFamily(dist.Categorical(probs=jnp.asarray(spec.weights)),
                                  dist.Independent(dist.Normal(mu, scale), 1))


def logistic_model(spec: LogisticSpec):
    """A numpyro model with no arguments: theta ~ N(0, prior_scale^2 I_p), y ~ Bernoulli(logits = X theta)."""
    if not isinstance(spec, LogisticSpec):
        raise ChainError(f"expected a specverify.specs.LogisticSpec, got {type(spec).__name__}")
    X, y = jnp.asarray(spec.X), jnp.asarray(spec.y)
    p, s = spec.dim, float(spec.prior_scale)

    def model():
        theta = numpyro.sample("theta", dist.Normal(jnp.zeros(p), s).to_event(1))
        numpyro.sample("y", dist.Bernoulli(logits=X @ theta), obs=y)

    return model


def logistic_potential(spec: LogisticSpec):
    """theta (p,) -> potential energy -log p(theta, y | X) via ``numpyro.infer.util.potential_energy``
    (theta's support is the real line, so the unconstrained and constrained parameters coincide)."""
    model = logistic_model(spec)

    def potential(theta):
        return potential_energy(model, (), {}, {"theta": theta})

    return potential


def run_nuts(spec: LogisticSpec, key, num_warmup: int, num_samples: int) -> np.ndarray:
    """Posterior draws (num_samples, p) of the logistic regression by NUTS (one chain, no progress bar);
    ``key`` is a JAX PRNG key."""
    positive_int(num_warmup, "num_warmup")
    positive_int(num_samples, "num_samples")
    mcmc = MCMC(NUTS(logistic_model(spec)), num_warmup=num_warmup, num_samples=num_samples, progress_bar=False)
    mcmc.run(key)
    return np.asarray(mcmc.get_samples()["theta"], dtype=np.float64)
