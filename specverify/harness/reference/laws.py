"""Exact laws of linear-Gaussian chains by recursion in float64 (numpy).

With the exact denoiser of a Gaussian data law N(mu, Sigma), a DDPM or DDIM chain is linear-Gaussian:
x_{k+1} = A_k x_k + c_k + sigma_k z_k with A_k a function of Sigma alone, so A_k shares Sigma's eigenvectors
Q. Started from an isotropic Gaussian, the state stays Gaussian with covariance Q diag(v_k) Q^T and the whole
law is d scalar recursions per step (:func:`gaussian_chain_law`). :func:`gaussian_chain_law_dense` runs the
same recursion with d x d matrices and no eigen trick, to validate the fast one. Unadjusted Langevin on
N(mu, Sigma) is linear-Gaussian too (:func:`langevin_gaussian_law`).

"Exact" means exact for the discretised chain, not for the data law: :func:`gaussian_kl` between a chain's
final law and :func:`data_law` measures how far the discretised chain is from the data.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from specverify._validate import positive_int, set_frozen, step_sizes
from specverify._validate import readonly as _readonly
from specverify.errors import ChainError
from specverify.harness.reference.schedules import DiffusionTransition
from specverify.specs import GaussianSpec

__all__ = [
    "ChainLaw",
    "DenseChainLaw",
    "GaussianLaw",
    "data_law",
    "diffused_data_law",
    "gaussian_chain_law",
    "gaussian_chain_law_dense",
    "gaussian_kl",
    "langevin_gaussian_law",
    "ula_stationary_law",
]


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianLaw:
    """N(mean, Q diag(eigvals) Q^T): mean (d,), eigvals (d,) >= 0, orthogonal eigvecs Q (d, d)."""

    mean: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray

    def __post_init__(self):
        m, lam, q = (np.array(a, dtype=np.float64) for a in (self.mean, self.eigvals, self.eigvecs))
        d = m.shape[0] if m.ndim == 1 else -1
        if m.ndim != 1 or lam.shape != (d,) or q.shape != (d, d):
            raise ChainError(f"GaussianLaw needs mean (d,), eigvals (d,), eigvecs (d, d); got shapes "
                             f"{m.shape}, {lam.shape}, {q.shape}")
        if not (np.all(np.isfinite(m)) and np.all(np.isfinite(lam)) and np.all(lam >= 0)):
            raise ChainError("GaussianLaw needs a finite mean and finite eigvals >= 0")
        set_frozen(self, mean=m, eigvals=lam, eigvecs=q)

    @property
    def dim(self) -> int:
        return int(self.mean.size)

    @property
    def cov(self) -> np.ndarray:
        return (self.eigvecs * self.eigvals) @ self.eigvecs.T

    def whiten(self, x) -> np.ndarray:
        """(x - mean) @ Q / sqrt(eigvals): iid N(0, I) rows when the rows of x (n, d) are drawn from this law."""
        if not np.all(self.eigvals > 0):
            raise ChainError("cannot whiten with a degenerate law (some eigvals are 0)")
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ChainError(f"whiten expects x of shape (n, {self.dim}), got {x.shape}")
        return ((x - self.mean) @ self.eigvecs) / np.sqrt(self.eigvals)

    def sample(self, key, n: int) -> jax.Array:
        """n iid draws (n, d) as a float64 JAX array."""
        positive_int(n, "n")
        z = jax.random.normal(key, (n, self.dim), dtype=jnp.float64)
        return jnp.asarray(self.mean) + (z * jnp.sqrt(jnp.asarray(self.eigvals))) @ jnp.asarray(self.eigvecs).T


@dataclasses.dataclass(frozen=True, eq=False)
class ChainLaw:
    """The law of a chain at every step k = 0 .. K: means (K+1, d), eigvals (K+1, d), shared eigvecs (d, d)."""

    means: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray

    def __post_init__(self):
        _readonly(self.means, self.eigvals, self.eigvecs)

    @property
    def n_steps(self) -> int:
        return int(self.means.shape[0] - 1)

    def at(self, k: int) -> GaussianLaw:
        return GaussianLaw(self.means[k], self.eigvals[k], self.eigvecs)

    @property
    def final(self) -> GaussianLaw:
        return self.at(self.n_steps)


@dataclasses.dataclass(frozen=True, eq=False)
class DenseChainLaw:
    """The law of a chain at every step with full covariances: means (K+1, d), covs (K+1, d, d)."""

    means: np.ndarray
    covs: np.ndarray

    def __post_init__(self):
        _readonly(self.means, self.covs)

    @property
    def n_steps(self) -> int:
        return int(self.means.shape[0] - 1)

    def at(self, k: int) -> GaussianLaw:
        lam, q = np.linalg.eigh(self.covs[k])
        return GaussianLaw(self.means[k], np.maximum(lam, 0.0), q)

    @property
    def final(self) -> GaussianLaw:
        return self.at(self.n_steps)


def _gaussian_spec(spec):
    if not isinstance(spec, GaussianSpec):
        raise ChainError(f"expected a specverify.specs.GaussianSpec, got {type(spec).__name__}")
    return spec


def _init(d, init_mean, init_var):
    """x_0 ~ N(init_mean, init_var I): the mean as a (d,) array, the variance as a float (isotropic, so the
    initial covariance is diagonal in every basis, Sigma's eigenbasis included)."""
    m = np.asarray(init_mean, dtype=np.float64)
    if m.shape not in ((), (d,)):
        raise ChainError(f"init_mean must be a float or an array of shape ({d},), got shape {m.shape}")
    m = np.broadcast_to(m, (d,)).copy()
    if np.ndim(init_var) != 0 or not float(init_var) >= 0:
        raise ChainError("init_var must be a float >= 0 (the initial state is N(init_mean, init_var I))")
    return m, float(init_var)


def data_law(spec: GaussianSpec) -> GaussianLaw:
    """The data law N(mu, Sigma) of a Gaussian problem."""
    spec = _gaussian_spec(spec)
    return GaussianLaw(spec.mean, spec.eigvals, spec.eigvecs)


def diffused_data_law(spec: GaussianSpec, abar: float) -> GaussianLaw:
    """The forward-process marginal of x_t = sqrt(abar) x0 + sqrt(1 - abar) eps, x0 ~ N(mu, Sigma):
    N(sqrt(abar) mu, abar Sigma + (1 - abar) I)."""
    spec = _gaussian_spec(spec)
    return GaussianLaw(np.sqrt(abar) * spec.mean, abar * spec.eigvals + (1.0 - abar), spec.eigvecs)


def _check_transition(transition):
    if not isinstance(transition, DiffusionTransition):
        raise ChainError("transition must come from specverify.harness.reference.diffusion_transition(...)")


def gaussian_chain_law(spec: GaussianSpec, transition: DiffusionTransition, *, init_mean=0.0,
                       init_var: float = 1.0) -> ChainLaw:
    """Exact per-step law of a DDPM / DDIM chain driven by the exact denoiser of N(mu, Sigma).

    In the eigenbasis (u = Q^T x, m = Q^T mu) the step is u' = A u + c + sigma z per direction with
    A = c_x + c_eps sqrt(1 - abar) / (abar lam + 1 - abar) and c = -c_eps sqrt(abar) sqrt(1 - abar) m /
    (abar lam + 1 - abar) (substitute eps_hat = sqrt(1 - abar) (abar Sigma + (1 - abar) I)^{-1} (x - sqrt(abar)
    mu)); so the mean follows m' = A m + c and the variance v' = A^2 v + sigma^2. x_0 ~ N(init_mean, init_var I).
    """
    spec = _gaussian_spec(spec)
    _check_transition(transition)
    lam, q = spec.eigvals, spec.eigvecs
    mt = spec.mean @ q
    m0, v0 = _init(spec.dim, init_mean, init_var)
    K = transition.n_steps
    means = np.empty((K + 1, spec.dim))
    eigvals = np.empty((K + 1, spec.dim))
    means[0], eigvals[0] = m0 @ q, v0
    for k in range(K):
        a2 = transition.abar[k]
        sb = np.sqrt(1.0 - a2)
        denom = a2 * lam + (1.0 - a2)
        A = transition.c_x[k] + transition.c_eps[k] * sb / denom
        c = -transition.c_eps[k] * np.sqrt(a2) * sb * mt / denom
        means[k + 1] = A * means[k] + c
        eigvals[k + 1] = A**2 * eigvals[k] + transition.sigma[k] ** 2
    return ChainLaw(means @ q.T, eigvals, q.copy())


def gaussian_chain_law_dense(spec: GaussianSpec, transition: DiffusionTransition, *, init_mean=0.0,
                             init_var: float = 1.0) -> DenseChainLaw:
    """The law of :func:`gaussian_chain_law` with d x d matrices and no eigenbasis (O(K d^3); small d only).

    x0_hat = mu + M (x - sqrt(abar) mu) with M = sqrt(abar) Sigma B^{-1}, B = abar Sigma + (1 - abar) I (a
    linear solve); eps_hat = (x - sqrt(abar) x0_hat) / sqrt(1 - abar); so x' = A x + c + sigma z with
    A = (c_x + c_eps / sqrt(1 - abar)) I - c_eps sqrt(abar) / sqrt(1 - abar) M, c = -c_eps sqrt(abar) /
    sqrt(1 - abar) (mu - sqrt(abar) M mu). Mean m' = A m + c, covariance C' = A C A^T + sigma^2 I.
    """
    spec = _gaussian_spec(spec)
    _check_transition(transition)
    d = spec.dim
    sigma_data, mu, eye = spec.cov, spec.mean, np.eye(d)
    m, v0 = _init(d, init_mean, init_var)
    C = v0 * eye
    means, covs = [m], [C]
    for k in range(transition.n_steps):
        a2 = transition.abar[k]
        a, sb = np.sqrt(a2), np.sqrt(1.0 - a2)
        B = a2 * sigma_data + (1.0 - a2) * eye
        M = a * np.linalg.solve(B, sigma_data).T  # Sigma B^{-1} = (B^{-1} Sigma)^T, both symmetric
        ce, cx = transition.c_eps[k], transition.c_x[k]
        A = (cx + ce / sb) * eye - (ce * a / sb) * M
        c = -(ce * a / sb) * (mu - a * M @ mu)
        m = A @ m + c
        C = A @ C @ A.T + transition.sigma[k] ** 2 * eye
        C = 0.5 * (C + C.T)
        means.append(m)
        covs.append(C)
    return DenseChainLaw(np.array(means), np.array(covs))


def langevin_gaussian_law(spec: GaussianSpec, step_size, n_steps: int, *, init_mean=0.0,
                          init_var: float = 1.0) -> ChainLaw:
    """Exact finite-step law of unadjusted Langevin x_{k+1} = x_k + h_k grad log pi(x_k) + sqrt(2 h_k) z_k on
    pi = N(mu, Sigma): per eigen-direction u' = (1 - h / lam) u + (h / lam) m + sqrt(2h) z, so
    m' = (1 - h / lam) m + (h / lam) m_pi and v' = (1 - h / lam)^2 v + 2h. ``step_size`` is a float or one
    value per step; x_0 ~ N(init_mean, init_var I)."""
    spec = _gaussian_spec(spec)
    h = step_sizes(step_size, n_steps)
    lam, q = spec.eigvals, spec.eigvecs
    mt = spec.mean @ q
    m0, v0 = _init(spec.dim, init_mean, init_var)
    means = np.empty((h.size + 1, spec.dim))
    eigvals = np.empty((h.size + 1, spec.dim))
    means[0], eigvals[0] = m0 @ q, v0
    for k, hk in enumerate(h):
        A = 1.0 - hk / lam
        means[k + 1] = A * means[k] + (hk / lam) * mt
        eigvals[k + 1] = A**2 * eigvals[k] + 2.0 * hk
    return ChainLaw(means @ q.T, eigvals, q.copy())


def ula_stationary_law(spec: GaussianSpec, step_size: float) -> GaussianLaw:
    """The stationary law of ULA with a constant step h on N(mu, Sigma): N(mu, Q diag(lam / (1 - h / (2 lam))) Q^T),
    the fixed point of v = (1 - h / lam)^2 v + 2h; it exists for h < 2 min(lam)."""
    spec = _gaussian_spec(spec)
    h = float(step_size)
    lam = spec.eigvals
    if not 0 < h < 2 * lam.min():
        raise ChainError(f"ULA on this Gaussian is stable only for 0 < step_size < 2 min(eigvals) = "
                         f"{2 * lam.min():.4g}, got {h}")
    return GaussianLaw(spec.mean, lam / (1.0 - h / (2.0 * lam)), spec.eigvecs)


def gaussian_kl(p: GaussianLaw, q: GaussianLaw) -> float:
    """KL(p || q) in closed form: 0.5 [tr(Sq^{-1} Sp) - d - log det(Sq^{-1} Sp) + (mq - mp)^T Sq^{-1} (mq - mp)].

    Computed in q's eigenbasis (R = Qq^T Qp, the identity when the laws share eigvecs); each direction's
    r - 1 - log r is evaluated as delta - log1p(delta) so a tiny KL keeps its relative accuracy.
    """
    if not (isinstance(p, GaussianLaw) and isinstance(q, GaussianLaw)) or p.dim != q.dim:
        raise ChainError("gaussian_kl needs two GaussianLaws of the same dimension")
    if not (np.all(p.eigvals > 0) and np.all(q.eigvals > 0)):
        raise ChainError("gaussian_kl needs non-degenerate laws (all eigvals > 0)")
    lp, lq = p.eigvals, q.eigvals
    if p.eigvecs is q.eigvecs or np.array_equal(p.eigvecs, q.eigvecs):
        delta = (lp - lq) / lq
        spectral = np.sum(delta - np.log1p(delta))
    else:
        R = q.eigvecs.T @ p.eigvecs
        s = (R**2) @ lp  # diagonal of Qq^T Sp Qq
        spectral = np.sum((s - lq) / lq) - np.sum(np.log(lp)) + np.sum(np.log(lq))
    maha = np.sum(((q.mean - p.mean) @ q.eigvecs) ** 2 / lq)
    return float(0.5 * (spectral + maha))
