"""Kernel two-sample tests: multi-bandwidth MMD and energy distance, with permutation p-values (torch, vectorised).

MMD (Gretton et al. 2012, JMLR, eq. 3: the unbiased MMD^2_u) with Gaussian kernels k_h(u, v) =
exp(-|u - v|^2 / (2 h^2)) at the bandwidths h = median * (0.25, 0.5, 1, 2, 4), where median is the median
pairwise distance of the pooled sample (the median heuristic; hyppo and Gretton et al. use the same kernel form).
The five MMD^2_u values are combined into ONE test statistic, max_j (MMD^2_u(h_j) - mean_j) / sd_j, with the
column moments taken over the observed and all permuted values (``permutation.max_standardised``); the p-value
comes from the same permutations, so the combination is valid without a multiplicity correction.

Energy distance (Szekely & Rizzo 2013, eq. 2.1, V-statistic): E = 2 mean|x - y| - mean|x - x'| - mean|y - y'|
over all pairs (diagonal zeros included), so that sqrt(E) is scipy's ``energy_distance`` in one dimension.

The statistics of a batch of permutations, their vectorisation and their float32 products are in ``permuted``;
this module chooses the path, the bandwidths and the permutation settings, and runs the permutation engine.

Two paths, chosen by ``method="auto"`` (:class:`KernelPath`) from the pooled size N = n + m and reported in
``TestResult.method``
    exact   N <= ``max_exact`` (4096): the pooled (N, N) kernel and distance matrices.
    rff     MMD above that size: random Fourier features, F = ``n_features`` frequencies per bandwidth
            (:class:`GaussianKernels`) drawn from a fixed seed; the exact MMD^2_u of a kernel that approximates k_h.
    sliced  energy above that size: the mean over P = ``n_slices`` seeded random directions of the
            one-dimensional energy of the projections, times c_d.
    The approximations change the statistic, not the validity: the features and directions are fixed before
    the labels are looked at and every permutation is evaluated on the same ones, so the observed and permuted
    statistics stay exchangeable under H0 and the p-value keeps its level exactly. Only power can differ.
    The bandwidth must not depend on the labels either: it is a symmetric function of the pooled sample (the
    median over all pairs up to ``MEDIAN_POINTS`` points; above that over the points at evenly spaced ranks of the
    pool sorted along a seeded random direction, a subset chosen by the values alone, not by which group or which
    position a point has). A subset drawn by position (a seeded random index set) would not be symmetric.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from specverify.errors import SampleSizeError, StatsError
from specverify.harness.stats.permutation import (
    TIE_RTOL,
    Permutations,
    Pool,
    max_standardised,
    permutation_test,
)
from specverify.harness.stats.permuted import (
    _distances,
    _energy_exact,
    _energy_sliced,
    _mmd_exact,
    _mmd_rff,
    _sub_seed,
)
from specverify.harness.stats.results import TestResult

__all__ = ["MAX_EXACT", "MEDIAN_POINTS", "MMD_SCALES", "N_FEATURES", "N_PERM", "N_SLICES", "GaussianKernels",
           "KernelPath", "Permutations", "energy_statistic", "energy_test", "median_heuristic", "mmd2_unbiased",
           "mmd_test"]

MMD_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
N_PERM = 1000
MAX_EXACT = 4096
N_FEATURES = 512
N_SLICES = 64
MEDIAN_POINTS = 2048
MEMORY_BYTES = 256 * 2**20  # per batch of permutations, roughly


@dataclasses.dataclass(frozen=True)
class GaussianKernels:
    """The MMD test's kernels: Gaussian at the bandwidths median * ``scales`` (the median heuristic) or at the
    given ``bandwidths``, approximated on the rff path by ``n_features`` random frequencies per bandwidth."""

    scales: tuple[float, ...] = MMD_SCALES
    bandwidths: tuple[float, ...] | None = None
    n_features: int = N_FEATURES


@dataclasses.dataclass(frozen=True)
class KernelPath:
    """How a kernel test computes its statistic: ``method`` "auto" (exact up to ``max_exact`` pooled points, the
    approximation above), "exact", or the approximation by name ("rff" for MMD, "sliced" for energy); ``dtype``:
    the precision of the O(N^2 B) matrix products, torch.float32 or torch.float64 (validity does not depend on it)."""

    method: str = "auto"
    max_exact: int = MAX_EXACT
    dtype: torch.dtype = torch.float32


# ----------------------------------------------------------------------------------------------- inputs


def _as_samples(v, name: str, device) -> torch.Tensor:
    if isinstance(v, torch.Tensor):
        t = v.detach().to(device=device if device is not None else v.device, dtype=torch.float64)
    else:
        try:
            t = torch.as_tensor(np.asarray(v, dtype=np.float64), device=device)
        except (TypeError, ValueError) as e:
            raise StatsError(f"{name} must be an array of numbers: {e}") from None
    if t.ndim == 1:
        t = t[:, None]
    if t.ndim != 2:
        raise StatsError(f"{name} must be (n, d) or (n,), got shape {tuple(t.shape)}; flatten images first")
    if t.shape[0] < 2:
        raise SampleSizeError(f"{name} has {t.shape[0]} samples; a two-sample test needs at least 2 per side")
    if not torch.isfinite(t).all():
        raise StatsError(f"{name} contains NaN or Inf; the sampler produced invalid output")
    return t


def _pool(x, y, device) -> Pool:
    if device is None and isinstance(x, torch.Tensor):
        device = x.device
    x, y = _as_samples(x, "x", device), _as_samples(y, "y", device)
    if x.shape[1] != y.shape[1]:
        raise StatsError(f"x has dimension {x.shape[1]} and y {y.shape[1]}: compare samples of one problem")
    return Pool(torch.cat([x, y.to(x.device)]), x.shape[0], y.shape[0])


def _choose(method: str, n_items: int, max_exact: int, approx: str) -> str:
    if method not in ("auto", "exact", approx):
        raise StatsError(f"method must be 'auto', 'exact' or {approx!r}, got {method!r}")
    if method == "auto":
        return "exact" if n_items <= max_exact else approx
    return method


def _batch(n_items: int, per_item_bytes: int, n_perm: int) -> int:
    return int(max(1, min(n_perm, MEMORY_BYTES // max(1, n_items * per_item_bytes))))


# ----------------------------------------------------------------------------------------------- statistics


def median_heuristic(x, y, *, max_points: int = MEDIAN_POINTS, seed: int = 0) -> float:
    """Median Euclidean distance over the pairs of the pooled sample; a symmetric function of the pool.

    Above ``max_points`` points the pairs are those of a subset chosen by value: the points at ``max_points``
    evenly spaced ranks of the pool sorted by its projection on a seeded random direction (ties have probability
    0 for continuous data), so that relabelling or reordering the pool leaves the bandwidth unchanged.
    """
    return _pool_median(_pool(x, y, None).z, max_points, seed)


def _pool_median(z: torch.Tensor, max_points: int, seed: int, dist: torch.Tensor | None = None) -> float:
    if int(max_points) != max_points or max_points < 2:
        raise StatsError(f"max_points must be an integer >= 2, got {max_points!r}")
    if z.shape[0] > max_points:
        gen = torch.Generator().manual_seed(_sub_seed(seed, 3))
        u = torch.randn(z.shape[1], generator=gen, dtype=torch.float64).to(z.device)
        order = torch.argsort(z @ u, stable=True)
        ranks = torch.linspace(0, z.shape[0] - 1, int(max_points), dtype=torch.float64).round().long()
        z, dist = z[order[ranks.to(z.device)]], None
    d = _distances(z) if dist is None else dist
    iu = torch.triu_indices(z.shape[0], z.shape[0], offset=1, device=z.device)
    med = float(np.median(d[iu[0], iu[1]].cpu().numpy()))
    if not med > 0:
        raise StatsError("the median pairwise distance is 0 (over half the pooled points coincide); the median "
                         "heuristic cannot set a bandwidth: pass bandwidths= explicitly")
    return med


def _check_bandwidths(bandwidths) -> tuple[float, ...]:
    bw = tuple(float(h) for h in np.atleast_1d(np.asarray(bandwidths, dtype=np.float64)))
    if not bw or not all(math.isfinite(h) and h > 0 for h in bw):
        raise StatsError(f"bandwidths must be positive and finite, got {bandwidths}")
    return bw


def _check_dtype(dtype) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise StatsError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


# ----------------------------------------------------------------------------------------------- statistics


def mmd2_unbiased(x, y, bandwidths) -> np.ndarray:
    """MMD^2_u(x, y) with a Gaussian kernel at each bandwidth (exact pooled matrices, float64): shape (k,)."""
    pool = _pool(x, y, None)
    statistic, _, _ = _mmd_exact(pool, _check_bandwidths(bandwidths), torch.float64)
    return statistic(torch.arange(pool.n + pool.m, device=pool.z.device)[None])[0].cpu().numpy()


def energy_statistic(x, y) -> float:
    """Energy distance V-statistic 2 mean|x - y| - mean|x - x'| - mean|y - y'| (its sqrt is scipy's in 1-D)."""
    pool = _pool(x, y, None)
    d, n = _distances(pool.z), pool.n
    return float(2 * d[:n, n:].mean() - d[:n, :n].mean() - d[n:, n:].mean())


# ----------------------------------------------------------------------------------------------- tests


def _tie_rtol(dtype) -> float:
    """Relative tie tolerance of the p-value: rounding of the statistic's products (counting ties is conservative)."""
    return TIE_RTOL if dtype == torch.float64 else 1e-5


def _filled(perm: Permutations, pool: Pool, per_item: int) -> Permutations:
    """``perm`` with the kernel tests' defaults: ``N_PERM`` permutations, a batch as large as ``MEMORY_BYTES``
    allows (``per_item`` bytes per pooled point and permutation), evaluated on the pool's device."""
    n_perm = N_PERM if perm.n_perm is None else perm.n_perm
    batch = _batch(pool.n + pool.m, per_item, n_perm) if perm.batch_size is None else perm.batch_size
    return dataclasses.replace(perm, n_perm=n_perm, batch_size=batch, device=pool.z.device)


def mmd_test(x, y, perm: Permutations = Permutations(), *, kernel: GaussianKernels = GaussianKernels(),
             path: KernelPath = KernelPath(), name: str = "mmd") -> TestResult:
    """Multi-bandwidth Gaussian MMD^2_u two-sample test with a +1-corrected permutation p-value.

    Contract: under H0 (x and y iid from one law, or just exchangeable) P(pvalue <= u) <= u for every u, whatever
    the path; ``statistic`` is the max over bandwidths of the standardised MMD^2_u (observed); ``method`` names
    the path, bandwidths, products' dtype, permutations and seed. ``perm`` (:class:`Permutations`): ``n_perm``
    (default ``N_PERM``) permutations seeded by ``seed`` (which also seeds the features and the median's subset);
    ``alpha`` (optional) only checks that n_perm can reject at it; runs on ``device`` (default: x's device for a
    tensor). ``kernel`` (:class:`GaussianKernels`): ``bandwidths`` overrides median * ``scales``. ``path``
    (:class:`KernelPath`): ``dtype`` is the precision of the O(N^2 B) matrix products (the matrices are
    double-centred first, so float32 rounding stays about 1e-6 of the permutation spread).
    Example: ``mmd_test(x, y, Permutations(999, seed=3))``.
    """
    dtype = _check_dtype(path.dtype)
    pool = _pool(x, y, perm.device)
    n, m = pool.n, pool.m
    method = _choose(path.method, n + m, path.max_exact, "rff")
    dist = _distances(pool.z) if method == "exact" else None  # shared by the median heuristic and the kernels
    if kernel.bandwidths is None:
        med = _pool_median(pool.z, MEDIAN_POINTS, perm.seed, dist)
        bw = _check_bandwidths([med * s for s in kernel.scales])
        bw_text = f"median {med:.4g} x {list(kernel.scales)}"
    else:
        bw = _check_bandwidths(kernel.bandwidths)
        bw_text = f"{[float(f'{h:.4g}') for h in bw]}"
    if method == "exact":
        statistic, per_item, detail = _mmd_exact(pool, bw, dtype, dist)
        del dist
    else:
        statistic, per_item, detail = _mmd_rff(pool, bw, kernel.n_features, perm.seed, dtype)
    perm = _filled(perm, pool, per_item)
    res = permutation_test(statistic, n + m, perm, combine=max_standardised, tie_rtol=_tie_rtol(dtype))
    method_text = (f"mmd2u-gaussian-perm-{method} ({detail}; bandwidths {bw_text}; statistic max over bandwidths "
                   f"of standardised MMD^2_u; p=(1+b)/(1+B), B={perm.n_perm}, seed={perm.seed})")
    return TestResult(name, res.statistic, res.pvalue, method_text, min(n, m))


def energy_test(x, y, perm: Permutations = Permutations(), *, path: KernelPath = KernelPath(),
                n_slices: int = N_SLICES, name: str = "energy") -> TestResult:
    """Energy-distance two-sample test (V-statistic) with a +1-corrected permutation p-value.

    Contract as ``mmd_test``; ``statistic`` is the energy V-statistic (exact path) or its sliced estimate with
    ``n_slices`` random directions seeded by ``perm.seed`` (``KernelPath("sliced")``, automatic above
    ``max_exact`` pooled points; always float32 inside, where counts are exact).
    """
    dtype = _check_dtype(path.dtype)
    pool = _pool(x, y, perm.device)
    n, m = pool.n, pool.m
    method = _choose(path.method, n + m, path.max_exact, "sliced")
    if method == "exact":
        statistic, per_item, detail = _energy_exact(pool, dtype)
    else:
        statistic, per_item, detail = _energy_sliced(pool, n_slices, perm.seed)
        dtype = torch.float32
    perm = _filled(perm, pool, per_item)
    res = permutation_test(statistic, n + m, perm, tie_rtol=_tie_rtol(dtype))
    method_text = f"energy-V-perm-{method} ({detail}; p=(1+b)/(1+B), B={perm.n_perm}, seed={perm.seed})"
    return TestResult(name, res.statistic, res.pvalue, method_text, min(n, m))
