"""Kernel two-sample tests: multi-bandwidth MMD and energy distance, with permutation p-values (torch, vectorised).

MMD (Gretton et al. 2012, JMLR, eq. 3: the unbiased MMD^2_u) with Gaussian kernels k_h(u, v) =
exp(-|u - v|^2 / (2 h^2)) at the bandwidths h = median * (0.25, 0.5, 1, 2, 4), where median is the median
pairwise distance of the pooled sample (the median heuristic; hyppo and Gretton et al. use the same kernel form).
The five MMD^2_u values are combined into ONE test statistic, max_j (MMD^2_u(h_j) - mean_j) / sd_j, with the
column moments taken over the observed and all permuted values (``permutation.max_standardised``); the p-value
comes from the same permutations, so the combination is valid without a multiplicity correction.

Energy distance (Szekely & Rizzo 2013, eq. 2.1, V-statistic): E = 2 mean|x - y| - mean|x - x'| - mean|y - y'|
over all pairs (diagonal zeros included), so that sqrt(E) is scipy's ``energy_distance`` in one dimension.

Vectorisation
    With a = the 0/1 indicator of the first group under a permutation, every statistic is a quadratic form
    a^T M a of a pooled (N, N) matrix M plus terms linear in a; for a batch of permutations (a matrix A) that is
    one matrix product A M for all bandwidths at once. M is double-centred first (H M H, H = I - 11^T / N), which
    leaves MMD^2_u and the energy statistic unchanged but removes the large constant parts, so the products can
    run in float32 (``dtype``, the default; 2x faster, half the memory) with rounding about 1e-6 of the
    permutation spread; the diagonal and all the linear terms stay float64. ``dtype=torch.float64`` is exact.

Two paths, chosen by ``method="auto"`` from the pooled size N = n + m and reported in ``TestResult.method``
    exact   N <= ``max_exact`` (4096): the pooled (N, N) kernel and distance matrices. Cost 2 N^2 flops per
            permutation and bandwidth; memory about (#bandwidths x 4 + 24) N^2 bytes while building (0.7 GB at
            N = 4096, float32).
    rff     MMD above that size: random Fourier features (Rahimi & Recht 2007) phi(u) = [cos(W u), sin(W u)] /
            sqrt(F), W ~ N(0, I / h^2) with F frequencies per bandwidth drawn from a fixed seed. It is the exact
            MMD^2_u of the kernel phi(u)^T phi(v) (whose diagonal is exactly 1), which approximates k_h. Cost
            4 F N flops per permutation and bandwidth. The features are built in blocks of ``_RFF_ROWS`` rows,
            with cos and sin in ``dtype`` after a float64 reduction mod 2 pi, and centred before rounding.
    sliced  energy above that size: the identity |u| = E_theta |theta^T u| / E|theta_1| (theta uniform on the
            sphere) turns E into c_d times the mean over directions of the one-dimensional energy of the
            projections, 2 int (F_n - G_m)^2 (cumulative sums over the sorted pool: O(N) per permutation and
            direction). P directions are drawn from a fixed seed.
    The approximations change the statistic, not the validity: the features and directions are fixed before
    the labels are looked at and every permutation is evaluated on the same ones, so the observed and permuted
    statistics stay exchangeable under H0 and the p-value keeps its level exactly. Only power can differ.
    The bandwidth must not depend on the labels either: it is a symmetric function of the pooled sample (the
    median over all pairs up to ``MEDIAN_POINTS`` points; above that over the points at evenly spaced ranks of the
    pool sorted along a seeded random direction, a subset chosen by the values alone, not by which group or which
    position a point has). A subset drawn by position (a seeded random index set) would not be symmetric.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from specverify._validate import positive_int
from specverify.errors import SampleSizeError, StatsError
from specverify.harness.stats.cumsum import _cumsum_statistics, sliced_constant
from specverify.harness.stats.permutation import TIE_RTOL, group_indicator, max_standardised, permutation_test
from specverify.harness.stats.results import TestResult

__all__ = ["MAX_EXACT", "MEDIAN_POINTS", "MMD_SCALES", "N_FEATURES", "N_PERM", "N_SLICES", "energy_statistic",
           "energy_test", "median_heuristic", "mmd2_unbiased", "mmd_test"]

MMD_SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
N_PERM = 1000
MAX_EXACT = 4096
N_FEATURES = 512
N_SLICES = 64
MEDIAN_POINTS = 2048
MEMORY_BYTES = 256 * 2**20  # per batch of permutations, roughly
_RFF_ROWS = 128  # rows per block while building the features
_SLICE_BLOCK = 2**22  # float32 elements per step of the sliced energy (a few cache-friendly MB)


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


def _pool(x, y, device) -> tuple[torch.Tensor, int, int]:
    if device is None and isinstance(x, torch.Tensor):
        device = x.device
    x, y = _as_samples(x, "x", device), _as_samples(y, "y", device)
    if x.shape[1] != y.shape[1]:
        raise StatsError(f"x has dimension {x.shape[1]} and y {y.shape[1]}: compare samples of one problem")
    return torch.cat([x, y.to(x.device)]), x.shape[0], y.shape[0]


def _sub_seed(seed: int, tag: int) -> int:
    """An independent seed for each use of randomness (features, directions, bandwidth subset)."""
    return int(np.random.SeedSequence([int(seed), tag]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _choose(method: str, n_items: int, max_exact: int, approx: str) -> str:
    if method not in ("auto", "exact", approx):
        raise StatsError(f"method must be 'auto', 'exact' or {approx!r}, got {method!r}")
    if method == "auto":
        return "exact" if n_items <= max_exact else approx
    return method


def _batch(n_items: int, per_item_bytes: int, n_perm: int) -> int:
    return int(max(1, min(n_perm, MEMORY_BYTES // max(1, n_items * per_item_bytes))))


def _distances(z: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances, computed from differences (not |u|^2 + |v|^2 - 2 u.v): zero diagonal."""
    return torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")


# ----------------------------------------------------------------------------------------------- statistics


def median_heuristic(x, y, *, max_points: int = MEDIAN_POINTS, seed: int = 0) -> float:
    """Median Euclidean distance over the pairs of the pooled sample; a symmetric function of the pool.

    Above ``max_points`` points the pairs are those of a subset chosen by value: the points at ``max_points``
    evenly spaced ranks of the pool sorted by its projection on a seeded random direction (ties have probability
    0 for continuous data), so that relabelling or reordering the pool leaves the bandwidth unchanged.
    """
    z, _, _ = _pool(x, y, None)
    return _pool_median(z, max_points, seed)


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


def _mmd2_centred(s_off, tr_x, tr_all, n: int, m: int):
    """Unbiased MMD^2_u from a double-centred kernel Kc = H K H (rows sum to 0; MMD^2_u is unchanged by it).

    With a the first-group indicator: s_off = a^T Kc a without the diagonal, tr_x = sum_{i in x} Kc_ii and
    tr_all = trace Kc. Row sums 0 give S_yy = S_xx = s_off + tr_x and S_xy = -S_xx, so the U-statistic is
    s_off / (n (n-1)) + (s_off + 2 tr_x - tr_all) / (m (m-1)) + 2 (s_off + tr_x) / (n m).
    """
    return s_off / (n * (n - 1)) + (s_off + 2 * tr_x - tr_all) / (m * (m - 1)) + 2 * (s_off + tr_x) / (n * m)


def _centre(mat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """H mat H for a symmetric (N, N) matrix, H = I - 11^T/N: (off-diagonal part, diagonal), float64."""
    r = mat.mean(1)
    c = mat - r[:, None] - r[None, :] + r.mean()
    diag = c.diagonal().clone()
    return c.fill_diagonal_(0.0), diag


def _check_bandwidths(bandwidths) -> tuple[float, ...]:
    bw = tuple(float(h) for h in np.atleast_1d(np.asarray(bandwidths, dtype=np.float64)))
    if not bw or not all(math.isfinite(h) and h > 0 for h in bw):
        raise StatsError(f"bandwidths must be positive and finite, got {bandwidths}")
    return bw


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _check_dtype(dtype) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise StatsError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


# -------------------------------------------------------------------- batched statistics of permutations
# Each builder returns (statistic, per-item bytes of one permutation's working memory, description), where
# statistic(perms) maps a (b, N) long tensor of permutations of the pool z to (b, k) or (b,) values; the first n
# positions of a permutation form the first group.


def _mmd_exact(z: torch.Tensor, n: int, m: int, bw, dtype=torch.float32, dist: torch.Tensor | None = None):
    n_items, k = z.shape[0], len(bw)
    sq = (_distances(z) if dist is None else dist).square()
    kern = torch.empty(n_items, k, n_items, dtype=dtype, device=z.device)  # row i: Kc_1[i], ..., Kc_k[i]
    diag = torch.empty(k, n_items, dtype=torch.float64, device=z.device)
    for j, h in enumerate(bw):
        off, diag[j] = _centre(torch.exp(sq / (-2.0 * h * h)))
        kern[:, j] = off
    del sq, off
    kern = kern.view(n_items, k * n_items)
    tr_all = diag.sum(1)

    def statistic(perms):
        a = group_indicator(perms, n, dtype)
        s_off = torch.einsum("bkn,bn->bk", (a @ kern).view(-1, k, n_items), a).double()  # one GEMM for all j
        return _mmd2_centred(s_off, a.double() @ diag.T, tr_all, n, m)

    itemsize = torch.finfo(dtype).bits // 8
    return statistic, 24 + itemsize * k, f"exact pooled kernel matrices, double-centred, {_dtype_name(dtype)} products"


def _rff_features(z: torch.Tensor, bw, f: int, seed: int, dtype):
    """Centred random Fourier features (N, k 2F) in ``dtype`` and their squared norms Kc_ii (k, N), float64.

    Built in row blocks: the projections are reduced mod 2 pi in float64, then cos and sin run in ``dtype``
    (float32 cos measured 2.7x to 4.3x faster here; the reduction keeps its argument error near 1 ulp of
    2 pi). One pass computes the features (stored in ``dtype``) and their float64 mean; a second pass, with no
    trigonometry, centres them in float64 and rounds them again.
    """
    n_items, k = z.shape[0], len(bw)
    gen = torch.Generator().manual_seed(_sub_seed(seed, 1))
    w0 = torch.randn(z.shape[1], f, generator=gen, dtype=torch.float64).to(z.device)
    inv_h = torch.tensor([1.0 / h for h in bw], dtype=torch.float64, device=z.device)
    blocks = [slice(s, s + _RFF_ROWS) for s in range(0, n_items, _RFF_ROWS)]
    phi = torch.empty(n_items, k, 2 * f, dtype=dtype, device=z.device)
    total = torch.zeros(k, 2 * f, dtype=torch.float64, device=z.device)
    for rows in blocks:  # scaled so that phi(u)^T phi(u) = 1 for every bandwidth
        proj = torch.remainder((z[rows] @ w0)[:, None, :] * inv_h[None, :, None], 2 * math.pi).to(dtype)
        feats = torch.cat([proj.cos(), proj.sin()], dim=2).double().mul_(1.0 / math.sqrt(f))
        total += feats.sum(0)
        phi[rows] = feats
    mean = total / n_items
    diag = torch.empty(n_items, k, dtype=torch.float64, device=z.device)
    for rows in blocks:
        c = phi[rows].double().sub_(mean)  # centred features: their kernel is H K H, which leaves MMD^2_u unchanged
        diag[rows] = c.square().sum(2)
        phi[rows] = c
    return phi.view(n_items, k * 2 * f), diag.T.contiguous()


def _mmd_rff(z: torch.Tensor, n: int, m: int, bw, n_features: int, seed: int, dtype=torch.float32):
    k, f = len(bw), positive_int(n_features, "n_features", error=StatsError)
    phi, diag = _rff_features(z, bw, f, seed, dtype)
    tr_all = diag.sum(1)

    def statistic(perms):
        a = group_indicator(perms, n, dtype)
        u = (a @ phi).double()  # (b, k 2F): Phi^T a per permutation, so a^T Kc a = |u|^2 per bandwidth
        tr_x = a.double() @ diag.T
        s_off = u.view(-1, k, 2 * f).square().sum(2) - tr_x
        return _mmd2_centred(s_off, tr_x, tr_all, n, m)

    itemsize = torch.finfo(dtype).bits // 8
    return statistic, 8 + 8 + itemsize, (f"random Fourier features, {f} frequencies per bandwidth (seeded), centred, "
                                         f"{_dtype_name(dtype)} products")


def _energy_exact(z: torch.Tensor, n: int, m: int, dtype=torch.float32):
    off, diag = _centre(_distances(z))
    off = off.to(dtype)
    scale = -((1.0 / n + 1.0 / m) ** 2)  # E = -w^T D w, w = a/n - (1-a)/m, w^T D w = (1/n + 1/m)^2 a^T Dc a

    def statistic(perms):
        a = group_indicator(perms, n, dtype)
        s_off = ((a @ off) * a).sum(1).double()
        return scale * (s_off + a.double() @ diag)

    itemsize = torch.finfo(dtype).bits // 8
    return statistic, 24 + 2 * itemsize, f"exact pooled distance matrix, double-centred, {_dtype_name(dtype)} products"


def _energy_sliced(z: torch.Tensor, n: int, m: int, n_slices: int, seed: int):
    d, p = z.shape[1], positive_int(n_slices, "n_slices", error=StatsError)
    gen = torch.Generator().manual_seed(_sub_seed(seed, 2))
    theta = torch.randn(d, p, generator=gen, dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(z.device)
    statistic = _cumsum_statistics(z @ theta, n, m, ks=False, energy_cols=range(p), c_d=sliced_constant(d),
                                   block=_SLICE_BLOCK)
    return statistic, 24, f"sliced over {p} seeded random directions, float32 cumulative sums"


# ----------------------------------------------------------------------------------------------- statistics


def mmd2_unbiased(x, y, bandwidths) -> np.ndarray:
    """MMD^2_u(x, y) with a Gaussian kernel at each bandwidth (exact pooled matrices, float64): shape (k,)."""
    z, n, m = _pool(x, y, None)
    statistic, _, _ = _mmd_exact(z, n, m, _check_bandwidths(bandwidths), torch.float64)
    return statistic(torch.arange(n + m, device=z.device)[None])[0].cpu().numpy()


def energy_statistic(x, y) -> float:
    """Energy distance V-statistic 2 mean|x - y| - mean|x - x'| - mean|y - y'| (its sqrt is scipy's in 1-D)."""
    z, n, _ = _pool(x, y, None)
    d = _distances(z)
    return float(2 * d[:n, n:].mean() - d[:n, :n].mean() - d[n:, n:].mean())


# ----------------------------------------------------------------------------------------------- tests


def _tie_rtol(dtype) -> float:
    """Relative tie tolerance of the p-value: rounding of the statistic's products (counting ties is conservative)."""
    return TIE_RTOL if dtype == torch.float64 else 1e-5


def mmd_test(x, y, *, n_perm: int = N_PERM, seed: int = 0, alpha: float | None = None, scales=MMD_SCALES,
             bandwidths=None, method: str = "auto", n_features: int = N_FEATURES, max_exact: int = MAX_EXACT,
             dtype=torch.float32, device=None, name: str = "mmd") -> TestResult:
    """Multi-bandwidth Gaussian MMD^2_u two-sample test with a +1-corrected permutation p-value.

    Contract: under H0 (x and y iid from one law, or just exchangeable) P(pvalue <= u) <= u for every u, whatever
    the path; ``statistic`` is the max over bandwidths of the standardised MMD^2_u (observed); ``method`` names
    the path, bandwidths, products' dtype, permutations and seed. ``alpha`` (optional) only checks that n_perm
    can reject at it. ``bandwidths`` overrides median * ``scales``. ``dtype`` is the precision of the O(N^2 B)
    matrix products (the matrices are double-centred first, so float32 rounding stays about 1e-6 of the
    permutation spread; validity does not depend on it). Runs on ``device`` (default: x's device for a tensor).
    """
    dtype = _check_dtype(dtype)
    z, n, m = _pool(x, y, device)
    path = _choose(method, n + m, max_exact, "rff")
    dist = _distances(z) if path == "exact" else None  # shared by the median heuristic and the kernels
    if bandwidths is None:
        med = _pool_median(z, MEDIAN_POINTS, seed, dist)
        bw = _check_bandwidths([med * s for s in scales])
        bw_text = f"median {med:.4g} x {list(scales)}"
    else:
        bw = _check_bandwidths(bandwidths)
        bw_text = f"{[float(f'{h:.4g}') for h in bw]}"
    if path == "exact":
        statistic, per_item, detail = _mmd_exact(z, n, m, bw, dtype, dist)
        del dist
    else:
        statistic, per_item, detail = _mmd_rff(z, n, m, bw, n_features, seed, dtype)
    res = permutation_test(statistic, n + m, n_perm=n_perm, seed=seed, alpha=alpha,
                           batch_size=_batch(n + m, per_item, n_perm), combine=max_standardised, device=z.device,
                           tie_rtol=_tie_rtol(dtype))
    method_text = (f"mmd2u-gaussian-perm-{path} ({detail}; bandwidths {bw_text}; statistic max over bandwidths "
                   f"of standardised MMD^2_u; p=(1+b)/(1+B), B={n_perm}, seed={seed})")
    return TestResult(name, res.statistic, res.pvalue, method_text, min(n, m))


def energy_test(x, y, *, n_perm: int = N_PERM, seed: int = 0, alpha: float | None = None, method: str = "auto",
                n_slices: int = N_SLICES, max_exact: int = MAX_EXACT, dtype=torch.float32, device=None,
                name: str = "energy") -> TestResult:
    """Energy-distance two-sample test (V-statistic) with a +1-corrected permutation p-value.

    Contract as ``mmd_test``; ``statistic`` is the energy V-statistic (exact path) or its sliced estimate with
    ``n_slices`` seeded random directions (``method="sliced"``, automatic above ``max_exact`` pooled points;
    always float32 inside, where counts are exact).
    """
    dtype = _check_dtype(dtype)
    z, n, m = _pool(x, y, device)
    path = _choose(method, n + m, max_exact, "sliced")
    if path == "exact":
        statistic, per_item, detail = _energy_exact(z, n, m, dtype)
    else:
        statistic, per_item, detail = _energy_sliced(z, n, m, n_slices, seed)
        dtype = torch.float32
    res = permutation_test(statistic, n + m, n_perm=n_perm, seed=seed, alpha=alpha,
                           batch_size=_batch(n + m, per_item, n_perm), device=z.device, tie_rtol=_tie_rtol(dtype))
    method_text = f"energy-V-perm-{path} ({detail}; p=(1+b)/(1+B), B={n_perm}, seed={seed})"
    return TestResult(name, res.statistic, res.pvalue, method_text, min(n, m))
