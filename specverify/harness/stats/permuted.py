"""The kernel tests' statistics of a batch of permutations (torch, vectorised): MMD^2_u and the energy distance.

Each builder takes the pooled sample (``permutation.Pool``) and returns (statistic, per-item bytes of one
permutation's working memory, description), where statistic(perms) maps a (b, N) long tensor of permutations of
the pool to (b, k) or (b,) values; the first n positions of a permutation form the first group. ``mmd`` and
``omnibus`` evaluate them through the permutation engine.

Vectorisation
    With a = the 0/1 indicator of the first group under a permutation, every statistic is a quadratic form
    a^T M a of a pooled (N, N) matrix M plus terms linear in a; for a batch of permutations (a matrix A) that is
    one matrix product A M for all bandwidths at once. M is double-centred first (H M H, H = I - 11^T / N), which
    leaves MMD^2_u and the energy statistic unchanged but removes the large constant parts, so the products can
    run in float32 (``dtype``, the default; 2x faster, half the memory) with rounding about 1e-6 of the
    permutation spread; the diagonal and all the linear terms stay float64. ``dtype=torch.float64`` is exact.

The builders
    exact MMD   the pooled (N, N) kernel matrices (Gaussian k_h(u, v) = exp(-|u - v|^2 / (2 h^2)) per bandwidth).
                Cost 2 N^2 flops per permutation and bandwidth; memory about (#bandwidths x 4 + 24) N^2 bytes
                while building (0.7 GB at N = 4096, float32).
    rff MMD     random Fourier features (Rahimi & Recht 2007) phi(u) = [cos(W u), sin(W u)] / sqrt(F),
                W ~ N(0, I / h^2) with F frequencies per bandwidth drawn from a fixed seed. It is the exact MMD^2_u
                of the kernel phi(u)^T phi(v) (whose diagonal is exactly 1), which approximates k_h. Cost 4 F N flops
                per permutation and bandwidth. The features are built in blocks of ``_RFF_ROWS`` rows, with cos and
                sin in ``dtype`` after a float64 reduction mod 2 pi, and centred before rounding.
    exact energy  the pooled (N, N) distance matrix.
    sliced energy the identity |u| = E_theta |theta^T u| / E|theta_1| (theta uniform on the sphere) turns E into
                c_d times the mean over directions of the one-dimensional energy of the projections,
                2 int (F_n - G_m)^2 (cumulative sums over the sorted pool, ``cumsum._cumsum_statistics``: O(N) per
                permutation and direction). P directions are drawn from a fixed seed.
    The random features and directions are fixed before the labels are looked at and every permutation is
    evaluated on the same ones, so the observed and permuted statistics stay exchangeable under H0.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from specverify._validate import positive_int
from specverify.errors import StatsError
from specverify.harness.stats.cumsum import _cumsum_statistics, sliced_constant
from specverify.harness.stats.permutation import Pool, group_indicator

__all__: list[str] = []

_RFF_ROWS = 128  # rows per block while building the features
_SLICE_BLOCK = 2**22  # float32 elements per step of the sliced energy (a few cache-friendly MB)


def _sub_seed(seed: int, tag: int) -> int:
    """An independent seed for each use of randomness (features, directions, bandwidth subset)."""
    return int(np.random.SeedSequence([int(seed), tag]).generate_state(1, dtype=np.uint64)[0] >> 1)


def _distances(z: torch.Tensor) -> torch.Tensor:
    """Pairwise Euclidean distances, computed from differences (not |u|^2 + |v|^2 - 2 u.v): zero diagonal."""
    return torch.cdist(z, z, compute_mode="donot_use_mm_for_euclid_dist")


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


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


def _mmd_exact(pool: Pool, bw, dtype=torch.float32, dist: torch.Tensor | None = None):
    z, n, m = pool.z, pool.n, pool.m
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


def _mmd_rff(pool: Pool, bw, n_features: int, seed: int, dtype=torch.float32):
    n, m = pool.n, pool.m
    k, f = len(bw), positive_int(n_features, "n_features", error=StatsError)
    phi, diag = _rff_features(pool.z, bw, f, seed, dtype)
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


def _energy_exact(pool: Pool, dtype=torch.float32):
    n, m = pool.n, pool.m
    off, diag = _centre(_distances(pool.z))
    off = off.to(dtype)
    scale = -((1.0 / n + 1.0 / m) ** 2)  # E = -w^T D w, w = a/n - (1-a)/m, w^T D w = (1/n + 1/m)^2 a^T Dc a

    def statistic(perms):
        a = group_indicator(perms, n, dtype)
        s_off = ((a @ off) * a).sum(1).double()
        return scale * (s_off + a.double() @ diag)

    itemsize = torch.finfo(dtype).bits // 8
    return statistic, 24 + 2 * itemsize, f"exact pooled distance matrix, double-centred, {_dtype_name(dtype)} products"


def _energy_sliced(pool: Pool, n_slices: int, seed: int):
    z = pool.z
    d, p = z.shape[1], positive_int(n_slices, "n_slices", error=StatsError)
    gen = torch.Generator().manual_seed(_sub_seed(seed, 2))
    theta = torch.randn(d, p, generator=gen, dtype=torch.float64)
    theta = (theta / theta.norm(dim=0, keepdim=True)).to(z.device)
    statistic = _cumsum_statistics(Pool(z @ theta, pool.n, pool.m), ks=False, energy_cols=range(p),
                                   c_d=sliced_constant(d), block=_SLICE_BLOCK)
    return statistic, 24, f"sliced over {p} seeded random directions, float32 cumulative sums"
