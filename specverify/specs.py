"""Plain data that describes the built-in problems: the only thing the sampler side and the reference side share.

Each half builds its own model from these arrays (deliberate N-version programming): the torch side under
``specverify.sampler.problems``, the JAX/numpyro side under ``specverify.harness.reference``. This module imports numpy only
and holds no model math: parameters, schedules and data sets.
"""

from __future__ import annotations

import dataclasses
import functools

import numpy as np

from specverify._validate import positive_int as _positive_int
from specverify._validate import set_frozen as _set_frozen
from specverify.errors import ChainError as SpecError

__all__ = ["ROUND_POLICIES", "GMMSpec", "GaussianSpec", "LogisticSpec", "beta_schedule"]

# The speculative sampler's round policies (theory/rounds.md): the sampler runs them, the harness predicts them.
ROUND_POLICIES = ("accepted+1", "window-start")


def beta_schedule(kind, n_steps: int | None = None) -> np.ndarray:
    """DDPM betas: ``"linear"`` (Ho et al., 1e-4..0.02 at 1000 steps, scaled by 1000 / n_steps),
    ``"cosine"`` (Nichol & Dhariwal, betas capped at 0.999), or an explicit array."""
    if not isinstance(kind, str):
        try:
            betas = np.asarray(kind, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise SpecError(f"betas must be an array of numbers in (0, 1): {e}") from None
    else:
        if kind not in ("linear", "cosine"):
            raise SpecError(f"unknown beta schedule {kind!r}; use 'linear', 'cosine' or an array of betas")
        n = _positive_int(n_steps, "n_steps", f" for the {kind!r} schedule")
        if kind == "linear":
            scale = 1000.0 / n
            betas = np.linspace(scale * 1e-4, min(scale * 0.02, 0.999), n)
        else:  # cosine
            s = 0.008
            t = np.arange(n + 1) / n
            f = np.cos((t + s) / (1 + s) * np.pi / 2) ** 2
            betas = np.minimum(1 - f[1:] / f[:-1], 0.999)
    if betas.ndim != 1 or betas.size == 0 or not np.all((betas > 0) & (betas < 1)):
        raise SpecError("betas must be a non-empty 1-D array with every entry in (0, 1)")
    return betas


@dataclasses.dataclass(frozen=True, eq=False)
class GMMSpec:
    """Mixture of isotropic Gaussians: weights (K,), means (K, d), per-component variances (K,)."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def __post_init__(self):
        w, m, v = (np.asarray(a, dtype=np.float64) for a in (self.weights, self.means, self.variances))
        if m.ndim != 2 or w.shape != (m.shape[0],) or v.shape != (m.shape[0],):
            raise SpecError("GMMSpec needs weights (K,), means (K, d) and variances (K,)")
        if not (np.all(w > 0) and abs(w.sum() - 1) < 1e-12 and np.all(v > 0)):
            raise SpecError("GMM weights must be positive and sum to 1, variances positive")
        _set_frozen(self, weights=w, means=m, variances=v)

    @classmethod
    def default(cls, dim: int, n_components: int = 8, seed: int = 0, std: float = 0.25) -> GMMSpec:
        _positive_int(dim, "dim")
        rng = np.random.default_rng(seed)
        w = rng.uniform(0.5, 1.5, size=n_components)
        return cls(w / w.sum(), rng.normal(size=(n_components, dim)), np.full(n_components, std**2))

    @property
    def dim(self) -> int:
        return int(self.means.shape[1])


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianSpec:
    """N(mean, Q diag(eigvals) Q^T): mean (d,), eigvals (d,) > 0, orthogonal eigvecs Q (d, d).

    Give ``eigvecs``, or ``reflections`` (k, d): unit vectors v_i with Q = H_1 ... H_k, H_i = I - 2 v_i v_i^T.
    Then ``eigvecs`` is built from them, and a model may apply Q in O(k d) instead of O(d^2).
    """

    mean: np.ndarray
    eigvals: np.ndarray
    eigvecs: np.ndarray | None = None
    reflections: np.ndarray | None = None

    def __post_init__(self):
        m, lam = (np.array(a, dtype=np.float64) for a in (self.mean, self.eigvals))
        d = m.shape[0] if m.ndim == 1 else -1
        if m.ndim != 1 or lam.shape != (d,) or not np.all(lam > 0):
            raise SpecError("GaussianSpec needs mean (d,) and positive eigvals (d,)")
        if (self.eigvecs is None) == (self.reflections is None):
            raise SpecError("give exactly one of eigvecs (d, d) or reflections (k, d)")
        if self.reflections is not None:
            v = np.array(self.reflections, dtype=np.float64).reshape(-1, d)
            if not np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-12):
                raise SpecError("reflections must be unit vectors")
            q = np.eye(d)
            for vi in v:
                q -= 2 * np.outer(q @ vi, vi)
            _set_frozen(self, reflections=v)
        else:
            q = np.array(self.eigvecs, dtype=np.float64)
            if q.shape != (d, d):
                raise SpecError(f"eigvecs must be (d, d) = ({d}, {d}), got {q.shape}")
            probe = np.random.default_rng(0).normal(size=(d, 4))  # Q^T Q = I, checked in O(d^2)
            if not np.allclose(q.T @ (q @ probe), probe, atol=1e-8):
                raise SpecError("GaussianSpec eigvecs must be orthogonal (Q^T Q = I); take them from np.linalg.eigh")
        _set_frozen(self, mean=m, eigvals=lam, eigvecs=q)

    @classmethod
    def default(cls, dim: int, seed: int = 0, eig_range=(0.1, 2.0), n_reflections: int = 4) -> GaussianSpec:
        """Eigenvalues log-uniform in ``eig_range``; Q a product of ``n_reflections`` Householder reflections
        (dense and non-diagonal for d >= 2, cheap to apply at any d)."""
        return _default_gaussian(_positive_int(dim, "dim"), seed, tuple(eig_range), n_reflections)

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def cov(self) -> np.ndarray:
        return (self.eigvecs * self.eigvals) @ self.eigvecs.T


@functools.lru_cache(maxsize=16)
def _default_gaussian(dim, seed, eig_range, n_reflections):
    rng = np.random.default_rng(seed)
    lam = np.exp(rng.uniform(np.log(eig_range[0]), np.log(eig_range[1]), size=dim))
    v = rng.normal(size=(n_reflections if dim > 1 else 0, dim))
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    return GaussianSpec(0.5 * rng.normal(size=dim), lam, reflections=v)


@dataclasses.dataclass(frozen=True, eq=False)
class LogisticSpec:
    """Bayesian logistic regression: features X (N, p) (first column the intercept), labels y (N,) in {0, 1},
    prior theta ~ N(0, prior_scale^2 I)."""

    X: np.ndarray
    y: np.ndarray
    prior_scale: float = 1.0

    def __post_init__(self):
        X, y = np.asarray(self.X, dtype=np.float64), np.asarray(self.y, dtype=np.float64)
        if X.ndim != 2 or y.shape != (X.shape[0],) or not np.isin(y, (0.0, 1.0)).all():
            raise SpecError("LogisticSpec needs X (N, p) and labels y (N,) in {0, 1}")
        if not self.prior_scale > 0:
            raise SpecError(f"prior_scale must be > 0, got {self.prior_scale}")
        _set_frozen(self, X=X, y=y)

    @classmethod
    def breast_cancer(cls, dim: int = 31, prior_scale: float = 1.0) -> LogisticSpec:
        """scikit-learn's breast cancer data (569 x 30, shipped with the package): an intercept and the first
        ``dim - 1`` standardised features, so 1 <= dim <= 31."""
        if not 1 <= _positive_int(dim, "dim") <= 31:
            raise SpecError(f"dim must be in 1..31 for the breast cancer data (intercept + 30 features), got {dim}")
        from sklearn.datasets import load_breast_cancer

        data = load_breast_cancer()
        f = data.data[:, : dim - 1]
        f = (f - f.mean(0)) / f.std(0)
        return cls(np.column_stack([np.ones(len(f)), f]), data.target.astype(np.float64), prior_scale)

    @property
    def dim(self) -> int:
        return int(self.X.shape[1])
