"""The permutation engine and the kernel two-sample tests (MMD, energy): exact identities, level and power.

Exact checks (no randomness in the verdict): the +1 rule, the vectorised statistics against naive double loops
(float64), invariance of the p-value to the batch size. Statistical checks each declare their false-failure rate:
ALPHA for a single p-value or a KS test of p-values, and binomial bounds derived from ALPHA for rejection counts.
No threshold comes from observed values; every data set and permutation stream is seeded.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.stats
import torch

from specverify.errors import PermutationError
from specverify.harness.stats import holm
from specverify.harness.stats.cumsum import _cumsum_statistics, sliced_constant
from specverify.harness.stats.mmd import (
    MMD_SCALES,
    GaussianKernels,
    KernelPath,
    _pool,
    energy_statistic,
    energy_test,
    median_heuristic,
    mmd2_unbiased,
    mmd_test,
)
from specverify.harness.stats.permutation import (
    Permutations,
    Pool,
    max_standardised,
    min_permutations,
    permutation_pvalue,
    permutation_test,
)
from specverify.harness.stats.permuted import (
    _RFF_ROWS,
    _energy_exact,
    _energy_sliced,
    _mmd_exact,
    _mmd_rff,
    _rff_features,
    _sub_seed,
)

ALPHA = 1e-3  # false-failure rate of each statistical assertion below


# ------------------------------------------------------------------------------------------ naive references


def naive_mmd2(x, y, h):
    """Gretton et al. (2012) eq. 3, written as three double loops."""
    def k(u, v):
        return math.exp(-float(np.sum((u - v) ** 2)) / (2 * h * h))
    n, m = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(n) for j in range(m)) / (n * m)
    return xx + yy - 2 * xy


def naive_energy(x, y):
    """2 mean|x - y| - mean|x - x'| - mean|y - y'| over all pairs (V-statistic), as double loops."""
    def mean_dist(a, b):
        return sum(float(np.linalg.norm(u - v)) for u in a for v in b) / (len(a) * len(b))
    return 2 * mean_dist(x, y) - mean_dist(x, x) - mean_dist(y, y)


def uniform_pit(pvalues, n_perm, rng):
    """Randomised PIT of discrete permutation p-values: exactly U(0, 1) when p is uniform on {1..B+1}/(B+1)."""
    p = np.asarray(pvalues)
    return p - rng.uniform(size=p.shape) / (n_perm + 1)


def min_rejections(reps: int, power_floor: float) -> int:
    """Largest c with P(Binomial(reps, power_floor) < c) <= ALPHA: a power claim as a count with a declared risk."""
    c = 0
    while scipy.stats.binom.cdf(c, reps, power_floor) <= ALPHA:
        c += 1
    return c


# ------------------------------------------------------------------------------------------ the engine


def test_pvalue_is_one_plus_count_over_one_plus_b_by_hand():
    assert permutation_pvalue(3.0, [1.0, 2.0, 3.0, 4.0]) == (3 / 5, 2)  # 3 and 4 are >= 3
    assert permutation_pvalue(5.0, [1.0, 2.0, 3.0, 4.0]) == (1 / 5, 0)  # never 0
    assert permutation_pvalue(0.0, [1.0, 2.0, 3.0, 4.0]) == (1.0, 4)
    assert permutation_pvalue(3.0, [3.0 - 1e-13, 2.0]) == (2 / 3, 1)  # a rounding-level tie counts as extreme


def test_engine_counts_the_permutations_it_drew():
    """Item 0 carries 10, the others 0; the statistic is the value of the first item: T_obs = 10, and a
    permutation ties it exactly when it puts item 0 first. p must be (1 + #those) / (1 + B) exactly."""
    values = torch.tensor([10.0, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    seen = []

    def statistic(perms):
        seen.append(perms.clone())
        return values[perms[:, 0]]

    n_perm = 99
    res = permutation_test(statistic, 5, Permutations(n_perm, seed=3, batch_size=16))
    drawn = torch.cat(seen[1:])  # the first call is the identity (observed)
    assert torch.equal(seen[0], torch.arange(5)[None]) and drawn.shape == (n_perm, 5)
    assert all(sorted(p.tolist()) == list(range(5)) for p in drawn)
    b = int((drawn[:, 0] == 0).sum())
    assert 0 < b < n_perm
    assert Fraction(res.pvalue).limit_denominator(1000) == Fraction(1 + b, 1 + n_perm)
    assert res.n_extreme == b and res.statistic == 10.0 and res.null.shape == (n_perm,)


def test_engine_is_invariant_to_batch_size_and_reproducible():
    rng = np.random.default_rng(0)
    pooled = _pool(rng.normal(size=(15, 2)), rng.normal(size=(12, 2)) + 0.5, None)
    n, m = pooled.n, pooled.m
    statistic, _, _ = _mmd_exact(pooled, (0.5, 1.0, 2.0), torch.float64)
    runs = [permutation_test(statistic, n + m, Permutations(200, seed=11, batch_size=b), combine=max_standardised)
            for b in (1, 7, 200)]
    for r in runs[1:]:
        np.testing.assert_allclose(r.null, runs[0].null, rtol=1e-12, atol=1e-12)  # matmul blocking
        assert r.pvalue == runs[0].pvalue
    other = permutation_test(statistic, n + m, Permutations(200, seed=12), combine=max_standardised)
    assert not np.allclose(other.null, runs[0].null)


def test_too_few_permutations_cannot_reject_and_are_refused():
    assert min_permutations(0.05) == 19 and min_permutations(0.01) == 99 and min_permutations(1e-3) == 999
    assert min_permutations(0.3) == 3  # 1/4 <= 0.3 < 1/3
    for alpha in (1e-3, 0.05, 1e-3 / 3):  # in floating point, as Holm compares: p = 1/(B+1) vs alpha/k
        for k in range(1, 60):
            b = min_permutations(alpha / k)
            assert 1 / (b + 1) <= alpha / k < 1 / b

    def stat(perms):
        return perms[:, 0].double()

    with pytest.raises(PermutationError, match="cannot reject at alpha.*n_perm >= ceil\\(1/alpha\\) - 1 = 999"):
        permutation_test(stat, 10, Permutations(998, alpha=1e-3))
    assert permutation_test(stat, 10, Permutations(999, alpha=1e-3)).n_perm == 999
    with pytest.raises(PermutationError, match="cannot reject"):
        mmd_test(np.zeros((5, 1)), np.ones((5, 1)), Permutations(10, alpha=0.05))
    with pytest.raises(PermutationError, match="combine"):
        permutation_test(lambda p: torch.zeros(p.shape[0], 2), 4, Permutations(3))
    with pytest.raises(PermutationError, match="positive integer"):
        permutation_test(stat, 10, Permutations(0))


def test_max_standardised_is_symmetric_in_rows_and_ignores_constant_columns():
    raw = torch.tensor([[1.0, 5.0], [2.0, 5.0], [4.0, 5.0], [0.0, 5.0]], dtype=torch.float64)
    z = max_standardised(raw)
    perm = torch.tensor([2, 0, 3, 1])
    torch.testing.assert_close(max_standardised(raw[perm]), z[perm])
    expected = (raw[:, 0] - raw[:, 0].mean()) / raw[:, 0].std(unbiased=False)
    torch.testing.assert_close(z, expected)
    torch.testing.assert_close(max_standardised(raw[:, 1:]), torch.zeros(4, dtype=torch.float64))


# ------------------------------------------------------------------------------------------ statistics, exact


@pytest.fixture
def small():
    rng = np.random.default_rng(5)
    return rng.normal(size=(11, 3)), rng.normal(size=(8, 3)) * 1.3 + 0.4


def test_vectorised_mmd_equals_the_naive_double_loop(small):
    x, y = small
    bws = (0.3, 1.0, 2.5)
    np.testing.assert_allclose(mmd2_unbiased(x, y, bws), [naive_mmd2(x, y, h) for h in bws], rtol=1e-12,
                               atol=1e-15)
    # the batched statistic of permutations: row i splits the pool as pool[perm[:n]] vs pool[perm[n:]]
    pooled = _pool(x, y, None)
    n, m = pooled.n, pooled.m
    statistic, _, _ = _mmd_exact(pooled, bws, torch.float64)
    perms = torch.stack([torch.randperm(n + m, generator=torch.Generator().manual_seed(s)) for s in range(20)])
    got = statistic(perms).numpy()
    pool = np.concatenate([x, y])
    for i, p in enumerate(perms.numpy()[:4]):
        np.testing.assert_allclose(got[i], [naive_mmd2(pool[p[:n]], pool[p[n:]], h) for h in bws], rtol=1e-12,
                                   atol=1e-15)
    # float32 products of the double-centred matrices: rounding far below the spread over permutations
    low, _, _ = _mmd_exact(pooled, bws, torch.float32)
    spread = got.std(0)
    assert (np.abs(low(perms).numpy() - got) <= 1e-5 * spread).all()


def test_rff_statistic_converges_to_the_exact_one(small):
    """Random Fourier features approximate the kernel with error ~ 1/sqrt(F) (deterministic given the seed);
    the float32 products of the centred features round far below the spread over permutations."""
    x, y = small
    bws = (0.3, 1.0, 2.5)
    pooled = _pool(x, y, None)
    n, m = pooled.n, pooled.m
    perms = torch.stack([torch.randperm(n + m, generator=torch.Generator().manual_seed(s)) for s in range(20)])
    exact = _mmd_exact(pooled, bws, torch.float64)[0](perms).numpy()
    errors = []
    for f in (500, 200_000):
        r64 = _mmd_rff(pooled, bws, f, 0, torch.float64)[0](perms).numpy()
        r32 = _mmd_rff(pooled, bws, f, 0, torch.float32)[0](perms).numpy()
        assert (np.abs(r32 - r64) <= 1e-5 * r64.std(0)).all()
        errors.append(np.abs(r64 - exact).max(0) / exact.std(0))
    assert (errors[1] < 0.25).all() and (errors[1] < errors[0]).all()


def test_rff_features_built_in_blocks_equal_the_one_shot_formula():
    """Several row blocks (the last one partial): the centred features and their norms match the direct formula,
    in float64 to rounding and in float32 to float32 rounding of the features."""
    rng = np.random.default_rng(8)
    z = torch.tensor(rng.normal(size=(2 * _RFF_ROWS + 37, 3)) * 4.0)
    bws, f = (0.3, 2.0), 16
    w0 = torch.randn(3, f, generator=torch.Generator().manual_seed(_sub_seed(1, 1)), dtype=torch.float64)
    proj = torch.stack([z @ w0 / h for h in bws], dim=1)
    want = torch.cat([proj.cos(), proj.sin()], dim=2) / math.sqrt(f)
    want = want - want.mean(0)
    for dtype, tol in ((torch.float64, 1e-12), (torch.float32, 1e-6)):
        phi, diag = _rff_features(z, bws, f, 1, dtype)
        assert phi.dtype == dtype and phi.shape == (z.shape[0], len(bws) * 2 * f)
        assert torch.allclose(phi.double(), want.reshape(z.shape[0], -1), rtol=0, atol=tol)
        # |diag error| <= sum over 2F features of 2 |c| |error of c|, with |c| <= 2 / sqrt(F)
        assert torch.allclose(diag, want.square().sum(2).T, rtol=0, atol=8 * math.sqrt(f) * tol)


def test_energy_equals_scipy_in_one_dimension_and_the_naive_double_loop(small):
    rng = np.random.default_rng(6)
    a, b = rng.normal(size=37), rng.standard_t(3, size=29)
    assert math.isclose(math.sqrt(energy_statistic(a, b)), scipy.stats.energy_distance(a, b), rel_tol=1e-12)
    x, y = small
    assert math.isclose(energy_statistic(x, y), naive_energy(x, y), rel_tol=1e-12)
    pooled = _pool(x, y, None)
    n, m = pooled.n, pooled.m
    statistic, _, _ = _energy_exact(pooled, torch.float64)
    perms = torch.stack([torch.randperm(n + m, generator=torch.Generator().manual_seed(s)) for s in range(20)])
    pool = np.concatenate([x, y])
    exact = statistic(perms).numpy()
    for got, p in zip(exact[:4], perms.numpy()[:4], strict=True):
        assert math.isclose(got, naive_energy(pool[p[:n]], pool[p[n:]]), rel_tol=1e-12)
    low, _, _ = _energy_exact(pooled, torch.float32)
    assert (np.abs(low(perms).numpy() - exact) <= 1e-5 * exact.std()).all()


def test_sliced_energy_is_exact_in_one_dimension_and_close_in_three(small):
    rng = np.random.default_rng(7)
    a, b = rng.normal(size=(40, 1)), rng.normal(size=(30, 1)) + 0.3
    pooled = _pool(a, b, None)
    n, m = pooled.n, pooled.m
    perms = torch.stack([torch.randperm(n + m, generator=torch.Generator().manual_seed(s)) for s in range(3)])
    exact, _, _ = _energy_exact(pooled, torch.float64)
    sliced, _, _ = _energy_sliced(pooled, 5, seed=0)  # in 1-D every direction is +-1: no approximation
    np.testing.assert_allclose(sliced(perms).numpy(), exact(perms).numpy(), rtol=1e-5)  # float32 loop
    x, y = small
    pooled = _pool(x, y, None)
    n, m = pooled.n, pooled.m
    sliced, _, _ = _energy_sliced(pooled, 20000, seed=0)  # Monte Carlo over directions: error ~ 1/sqrt(P)
    identity = torch.arange(n + m)[None]
    assert math.isclose(float(sliced(identity)[0]), energy_statistic(x, y), rel_tol=0.03)


def _sliced_energy_float64(proj, perm, n):
    """c_d-free sliced energy, float64: mean over the columns of 2 int (F_n - G_m)^2 dt, from the two ECDFs."""
    total = 0.0
    for u in proj.T:
        x, y, v = np.sort(u[perm[:n]]), np.sort(u[perm[n:]]), np.sort(u)
        f = np.searchsorted(x, v[:-1], side="right") / len(x) - np.searchsorted(y, v[:-1], side="right") / len(y)
        total += 2 * (f**2 * np.diff(v)).sum()
    return total / proj.shape[1]


def test_sliced_energy_and_ks_from_cumulative_sums_match_float64_formulas():
    """The one cumulative-sum implementation (energy_test's sliced path, omnibus' KS and energy columns)."""
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=(70, 3)), rng.normal(size=(50, 3)) + 0.2
    a[:10], b[:5] = a[:10].round(1), b[:5].round(1)  # some ties
    pooled = _pool(a, b, None)
    z, n, m = pooled.z, pooled.n, pooled.m
    perms = torch.stack([torch.randperm(n + m, generator=torch.Generator().manual_seed(s)) for s in range(5)])
    perms[0] = torch.arange(n + m)
    p = 6
    theta = torch.randn(3, p, generator=torch.Generator().manual_seed(_sub_seed(4, 2)), dtype=torch.float64)
    proj = (z @ (theta / theta.norm(dim=0, keepdim=True))).numpy()
    want = [sliced_constant(3) * _sliced_energy_float64(proj, q, n) for q in perms.numpy()]
    sliced, _, _ = _energy_sliced(pooled, p, seed=4)
    np.testing.assert_allclose(sliced(perms).numpy(), want, rtol=1e-5)  # float32 cumulative sums
    both = _cumsum_statistics(Pool(torch.as_tensor(proj), n, m), energy_cols=[1, 3], c_d=2.0)(perms).numpy()
    np.testing.assert_allclose(both[:, -1], [2.0 * _sliced_energy_float64(proj[:, [1, 3]], q, n)
                                             for q in perms.numpy()], rtol=1e-5)
    for row, q in zip(both, perms.numpy(), strict=True):
        ks = [scipy.stats.ks_2samp(u[q[:n]], u[q[n:]]).statistic for u in proj.T]
        np.testing.assert_allclose(row[:-1], ks, atol=1e-6)


def test_median_heuristic_matches_the_median_of_pooled_pairwise_distances(small):
    x, y = small
    pool = np.concatenate([x, y])
    d = [np.linalg.norm(pool[i] - pool[j]) for i in range(len(pool)) for j in range(i + 1, len(pool))]
    assert math.isclose(median_heuristic(x, y), float(np.median(d)), rel_tol=1e-12)
    # above max_points the subset is chosen by value: relabelling and reordering the pool change nothing, which is
    # what keeps a permutation test that uses this bandwidth exact
    shuffled = pool[np.random.default_rng(9).permutation(len(pool))]
    assert median_heuristic(x, y, max_points=7) == median_heuristic(shuffled[:5], shuffled[5:], max_points=7)
    with pytest.raises(ValueError, match="bandwidths="):
        median_heuristic(np.zeros((5, 2)), np.zeros((5, 2)))


def test_bad_inputs_are_refused_with_a_fix():
    good = np.zeros((10, 2))
    with pytest.raises(ValueError, match="dimension"):
        mmd_test(good, np.zeros((10, 3)))
    with pytest.raises(ValueError, match="NaN"):
        energy_test(good, np.full((10, 2), np.nan))
    with pytest.raises(ValueError, match="at least 2"):
        mmd_test(good, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="method"):
        mmd_test(good, good + 1, path=KernelPath("sliced"))
    with pytest.raises(ValueError, match="bandwidths"):
        mmd_test(good, good + 1, kernel=GaussianKernels(bandwidths=[1.0, -1.0]))
    with pytest.raises(ValueError, match="n_slices must be a positive int, got 0"):
        energy_test(good, good + 1, path=KernelPath("sliced"), n_slices=0)
    with pytest.raises(ValueError, match="n_features must be a positive int, got True"):
        mmd_test(good, good + 1, kernel=GaussianKernels(n_features=True), path=KernelPath("rff"))


def test_method_string_names_the_path(small):
    x, y = small
    assert "perm-exact" in mmd_test(x, y, Permutations(9)).method
    assert "perm-rff" in mmd_test(x, y, Permutations(9), path=KernelPath(max_exact=10)).method  # auto switches
    assert "perm-sliced" in energy_test(x, y, Permutations(9), path=KernelPath(max_exact=10)).method
    r = mmd_test(x, y, Permutations(9))
    assert r.n == 8 and r.name == "mmd" and "B=9" in r.method and str(list(MMD_SCALES)) in r.method


# ------------------------------------------------------------------------------------------ level and power

PATHS = [(mmd_test, "exact"), (mmd_test, "rff"), (energy_test, "exact"), (energy_test, "sliced")]


@pytest.fixture
def one_thread():
    """Tiny tensors gain nothing from intra-op threads, and on a busy machine each parallel region can stall for
    a scheduler tick; the replicate loops below run on one thread (restored afterwards)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize(("test", "method"), PATHS, ids=[f"{t.__name__}-{m}" for t, m in PATHS])
def test_null_pvalues_are_uniform(test, method):
    """200 independent null replicates (n = 20 per side, d = 2, B = 99): the randomised PIT of the p-values is
    U(0, 1) exactly under H0, so a KS test of it against U(0, 1) at ALPHA tests the level of the whole test."""
    reps, n_perm = 200, 99
    rng = np.random.default_rng(100)
    extra = ({"n_slices": 8} if method == "sliced" else {"kernel": GaussianKernels(n_features=64)} if method == "rff"
             else {})
    p = [test(rng.normal(size=(20, 2)), rng.normal(size=(20, 2)), Permutations(n_perm, seed=i),
              path=KernelPath(method), **extra).pvalue for i in range(reps)]
    assert min(p) >= 1 / (n_perm + 1) and max(p) <= 1
    u = uniform_pit(p, n_perm, np.random.default_rng(101))
    assert scipy.stats.kstest(u, "uniform", method="exact").pvalue > ALPHA


def _gaussians(seed, n=500, d=8):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d))


@pytest.mark.parametrize("method", ["exact", "rff"])
def test_mmd_passes_the_null_and_rejects_a_mean_shift(method):
    n_perm = 1999  # smallest p 1/2000 <= ALPHA
    for seed in (1, 2, 3):
        x, y = _gaussians(seed)
        assert mmd_test(x, y, Permutations(n_perm, seed=seed, alpha=ALPHA), path=KernelPath(method)).pvalue > ALPHA
    x, y = _gaussians(4)
    assert mmd_test(x, y + 0.25, Permutations(n_perm, seed=4, alpha=ALPHA), path=KernelPath(method)).pvalue <= ALPHA


def test_energy_passes_the_null_and_rejects_a_mean_shift():
    n_perm = 1999
    x, y = _gaussians(5)
    perm = Permutations(n_perm, seed=5, alpha=ALPHA)
    assert energy_test(x, y, perm).pvalue > ALPHA
    assert energy_test(x, y + 0.25, perm).pvalue <= ALPHA
    assert energy_test(x, y + 0.25, perm, path=KernelPath("sliced")).pvalue <= ALPHA


def test_mmd_has_power_against_a_ten_percent_scale_error():
    """y scaled by 1.1 (d = 8, n = 500): a single replicate is rejected at level 0.05 with probability about 0.97
    (measured once over 40 seeds, not used here). The assertion is a count: if the power were only 0.8, fewer
    than min_rejections(12, 0.8) rejections out of 12 would happen with probability <= ALPHA."""
    level, reps = 0.05, 12
    rejections = 0
    for seed in range(reps):
        x, y = _gaussians(300 + seed)
        rejections += mmd_test(x, 1.1 * y, Permutations(199, seed=seed, alpha=level)).pvalue <= level
    assert rejections >= min_rejections(reps, 0.8), rejections


# ------------------------------------------------------------------------------------------ in a Holm family


def test_kernel_tests_with_the_fewest_permutations_a_holm_family_allows():
    """In a Holm family of k tests a permutation test can be rejected first only if p <= ALPHA / k, so it needs
    n_perm >= min_permutations(ALPHA / k); with exactly that many, MMD and energy pass the null and reject a mean
    shift under Holm (at the smallest p-value they can reach), and one permutation fewer is refused."""
    rng = np.random.default_rng(8)
    x, y = rng.normal(size=(300, 2)), rng.normal(size=(300, 2))
    need = min_permutations(ALPHA / 9)  # beside 7 KS tests: Holm's first step compares the smallest p with ALPHA / 9
    assert need == 8999
    null = [test(x, y, Permutations(need, alpha=ALPHA / 9)) for test in (mmd_test, energy_test)]
    assert all(f"B={need}" in t.method and t.pvalue > ALPHA / 9 for t in null), null
    two = min_permutations(ALPHA / 2)
    shifted = holm([test(x, y + 0.5, Permutations(two, alpha=ALPHA / 2)) for test in (mmd_test, energy_test)],
                   ALPHA)
    assert [t.name for t in shifted.tests] == ["mmd", "energy"] and shifted.rejected == (True, True)
    with pytest.raises(PermutationError, match=f"cannot reject at alpha.*n_perm >= ceil\\(1/alpha\\) - 1 = {need}"):
        mmd_test(x, y, Permutations(need - 1, alpha=ALPHA / 9))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_gives_the_cpu_pvalue():
    x, y = _gaussians(9, n=200)
    for test in (mmd_test, energy_test):
        cpu = test(x, y + 0.1, Permutations(199))
        gpu = test(torch.as_tensor(x, device="cuda"), torch.as_tensor(y + 0.1, device="cuda"), Permutations(199))
        assert gpu.pvalue == cpu.pvalue and math.isclose(gpu.statistic, cpu.statistic, rel_tol=1e-6)


# ------------------------------------------------------------------------------------------ the benchmark script


def test_bench_mmd_smoke(tmp_path, capsys):
    """paper_repro/bench_mmd.py in its small mode (examples run as tests); hyppo's column is optional."""
    import importlib.util
    import json
    from pathlib import Path

    script = Path(__file__).resolve().parents[2] / "paper_repro" / "bench_mmd.py"
    spec = importlib.util.spec_from_file_location("bench_mmd", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    report = bench.main(["--smoke", "--no-hyppo", "--json", str(tmp_path / "b.json")])
    assert json.loads((tmp_path / "b.json").read_text()) == json.loads(json.dumps(report))
    row = report["side_by_side"]
    assert row["ours_5bw_s"] > 0 and row["hyppo_s"] is None and "skipped" in row["hyppo_note"]
    assert [r["test"] for r in report["large"]] == ["mmd", "energy"]
    assert "perm-rff" in report["large"][0]["method"] and "perm-sliced" in report["large"][1]["method"]
    out = capsys.readouterr().out
    assert "hyppo      skipped" in out and "ours alone" in out


# ------------------------------------------------------------------------------------------ layering


def test_the_stats_package_never_imports_the_sampler_side():
    """The harness sees samplers only through their outputs: no module of specverify.harness.stats imports
    specverify.{chains, sampling, coupling, drafters, problems, noise, cli}; ``import specverify.harness.stats`` does not
    import torch (the kernel tests load it on first use), and running them loads no sampler module."""
    import ast
    import subprocess
    import sys
    from pathlib import Path

    import specverify.harness.stats

    sampler = ("chains", "sampling", "coupling", "drafters", "problems", "noise", "cli")
    bad = []
    for path in sorted(Path(specverify.harness.stats.__file__).parent.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, f"{path.name}: use absolute imports"
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            bad += [f"{path.name}:{node.lineno}: {n}" for n in names
                    if any(n == f"specverify.{s}" or n.startswith(f"specverify.{s}.") for s in sampler)]
    assert not bad, bad
    code = ("import sys, numpy as np\nimport specverify.harness.stats as S\nassert 'torch' not in sys.modules\n"
            "S.mmd_test(np.zeros((5, 1)), np.ones((5, 1)), S.Permutations(9))\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[:2] in [['specverify', s] for s in {sampler!r}]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr
