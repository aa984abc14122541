"""The two-sample battery with a permutation-calibrated family-wise correction (Westfall-Young single-step minP).

Every statistic of the battery (KS on coordinates, on the squared norm and on random projections; MMD^2_u at
each bandwidth; energy distance) is evaluated on the SAME B permutations of the pooled sample, giving a
(B + 1, k) matrix T (observed row first). Then, with c_bj = #{i : T_ij >= T_bj} (row b's count within test j),

    marginal p_j = c_0j / (B + 1)    (the +1-corrected permutation p-value; reported with ties broken at random)
    adjusted p_j = (1 + #{b >= 1 : min_l g_bl <= g_0j}) / (B + 1)  (single-step minP; Westfall & Young 1993)

where g_bj = g_j(T_bj) is a fixed decreasing tail map per test (Kolmogorov's asymptotic tail for KS; the normal
tail of the statistic standardised by its column moments over all rows for MMD and energy).

Under H0 the pooled items are exchangeable, so the observed row is exchangeable with the permuted rows and
P(min_j adjusted p_j <= alpha) <= alpha, with equality up to the discreteness 1 / (B + 1): the family has level
alpha *whatever the correlation between its tests*. Holm on the same marginal p-values also controls the
family-wise error, but conservatively when the tests are correlated (KS on 16 projections of a 2-D sample: a
measured 2.4% false alarms at alpha = 5%); minP spends the whole alpha. Each adjusted p_j also controls the
family-wise error in the strong sense under subset pivotality (the joint null law of any subset of statistics
does not depend on whether the other hypotheses hold), which holds for tests of the pooled sample's marginals.

KS under permutation: sort the pooled values once per direction; a permutation's first-group indicator, read in
that order and cumulated, gives n F_n at every order statistic, and D = max |F_n - G_m| over the ends of tie runs
(float32 counts are exact up to 2^24 items); above ``mmd.MAX_EXACT`` the sliced energy comes from the same
cumulative sums (both from ``cumsum._cumsum_statistics``, the implementation of ``mmd``'s sliced path). The
other kernel statistics reuse the vectorised builders of ``permuted`` (exact matrices up to ``mmd.MAX_EXACT``
pooled points, random features above).

The exact KS screen (sequential engine only). A permutation p-value is never below 1 / (permutations + 1), so a
rejection at alpha costs at least 1 / alpha permutations however gross the bug. Each KS column also has an exact
null law of its own (scipy ``ks_2samp(method="exact")``: the continuous-data law, conservative under ties), so the
battery spends ``SCREEN_SHARE`` of its alpha on those p-values, Bonferroni over the k_KS columns, and the rest on
the minP permutation family:

    adjusted p_j = min(1, minP p_j / (1 - s), k_KS p_j^exact / s)    (s = SCREEN_SHARE; the exact term for KS only)

The family-wise error is at most (1 - s) alpha + s alpha = alpha (union bound). When the screen (or, in the suite,
another block) has already rejected, the decision is made: the permutations stop at ``SETTLED_PERMUTATIONS``
(their anytime-valid p-values stay valid at any stopping time and are reported as measured).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from specverify._validate import in_unit_interval
from specverify.errors import StatsError
from specverify.harness.stats import cumsum, mmd, permuted
from specverify.harness.stats.permutation import Permutations, Pool, permutation_matrix
from specverify.harness.stats.results import Battery, TestResult
from specverify.harness.stats.sequential import PilotScore, max_permutations

__all__ = ["DEFAULT_PERMUTATIONS", "KERNEL_TESTS", "SCREEN_SHARE", "BatteryTests", "Permutations", "ks_screen",
           "minp_adjust", "n_tests", "two_sample_minp"]

DEFAULT_PERMUTATIONS = 999
SCREEN_SHARE = 0.1  # of the sequential battery's alpha, spent on the exact KS p-values (Bonferroni)
SETTLED_PERMUTATIONS = 256  # counted permutations once the family is rejected elsewhere (descriptive p-values)
MMD_TESTS = tuple(f"mmd[h={s:g} median]" for s in mmd.MMD_SCALES)
KERNEL_TESTS = (*MMD_TESTS, "energy")  # the battery's tests after its KS columns
_KS_RTOL = 1e-5  # relative tie tolerance of float32 statistics (KS values are multiples of 1 / lcm(n, m))


@dataclasses.dataclass(frozen=True)
class BatteryTests:
    """Which tests the battery runs: KS on at most ``max_coords`` coordinates (beyond that a seeded random
    subset), on the squared norm and (d > 1) on ``n_projections`` seeded random unit projections, then (with
    ``kernel_tests``) :data:`KERNEL_TESTS`."""

    n_projections: int = 16
    max_coords: int = 64
    kernel_tests: bool = True


@dataclasses.dataclass(frozen=True)
class _Family:
    """The battery's columns on the pooled sample (n + m items): the statistic of a batch of permutations (b, k),
    each column's name, method and tie tolerance, and the bytes one permutation needs per pooled item."""

    statistic: Callable[[torch.Tensor], torch.Tensor]
    names: list[str]
    methods: list[str]
    rtol: list[float]
    per_item: int
    n: int
    m: int

    @property
    def ks_cols(self) -> list[bool]:
        return [nm.startswith("ks[") for nm in self.names]


def minp_adjust(raw, rtol, tails=None, rng=None) -> tuple[np.ndarray, np.ndarray]:
    """(marginal, adjusted) p-values from the (B + 1, k) matrix of statistics, observed row first.

    ``tails(raw)`` maps the matrix to per-entry tail areas g_bj (smaller = more extreme), the same decreasing map
    for every row of a column; the minimum over a row is then a symmetric function of the row, which is all that
    validity needs. The default is the permutation counts c_bj / (B + 1); a continuous map (``two_sample_minp``:
    Kolmogorov's tail for KS, a normal tail of the standardised kernel statistics) resolves several tests that
    all beat every permutation, which counts cannot (they tie at 1 / (B + 1) in many permuted rows).
    The adjusted p-value is never below the marginal one.

    With ``rng`` the marginal p-values break ties at random, p = (G + U (E + 1)) / (B + 1) with G permuted
    values above the observed one, E tied with it and U ~ U(0, 1): exactly uniform under H0, where the
    conservative (1 + G + E) / (B + 1) of a discrete statistic (KS) piles up near 1.
    """
    raw = np.asarray(raw, dtype=np.float64)
    rows, k = raw.shape
    tol = np.broadcast_to(np.asarray(rtol, dtype=np.float64), (k,)) * np.abs(raw).max(0)
    srt = np.sort(raw, axis=0)
    counts = np.empty((rows, k), dtype=np.int64)
    for j in range(k):  # c_bj = #{i : T_ij >= T_bj - tol_j}; near-ties count as extreme (conservative)
        counts[:, j] = rows - np.searchsorted(srt[:, j], raw[:, j] - tol[j], side="left")
    marginal = counts[0] / rows
    if rng is not None:
        above = (raw[1:] > raw[0] + tol).sum(0)
        tied = counts[0] - 1 - above
        marginal = (above + rng.uniform(size=k) * (tied + 1)) / rows
    g = counts / rows if tails is None else np.asarray(tails(raw), dtype=np.float64)
    q = g[1:].min(1)
    adjusted = (1 + (q[None, :] <= g[0][:, None] * (1 + 1e-6)).sum(1)) / rows
    return marginal, np.maximum(adjusted, marginal)


def _tails(ks_cols, n: int, m: int, moments=None):
    """Tail areas for minP: Kolmogorov's asymptotic tail for KS columns, the normal tail of the standardised
    statistic for the others, by the column moments over all rows (``moments=None``, the fixed-B engine) or by
    the given (mean, sd) (the sequential engine's pilot moments: then a fixed map of each row)."""
    from scipy import special, stats

    ks_cols = np.asarray(ks_cols, dtype=bool)
    en = np.sqrt(n * m / (n + m))

    def tails(raw):
        g = np.empty_like(raw)
        g[:, ks_cols] = special.kolmogorov(en * raw[:, ks_cols])
        other = raw[:, ~ks_cols]
        mean, sd = (other.mean(0), other.std(0)) if moments is None else moments
        z = (other - mean) / np.where(sd > 0, sd, 1.0)
        g[:, ~ks_cols] = np.where(sd > 0, stats.norm.sf(z), 1.0)
        return g

    return tails


def _pilot_tails(ks_cols, n: int, m: int):
    """The sequential engine's ``tail_map``: ``_tails`` with the kernel columns' moments from the pilot rows."""
    ks_cols = np.asarray(ks_cols, dtype=bool)

    def tail_map(pilot):
        other = pilot[:, ~ks_cols]
        return _tails(ks_cols, n, m, (other.mean(0), other.std(0)))

    return tail_map


def ks_screen(cols, n: int) -> np.ndarray:
    """Exact two-sample KS p-values of pooled columns (items before ``n``: the first sample), scipy
    ``ks_2samp(method="exact")``; 1 (no screen) where scipy cannot compute the exact value."""
    import warnings

    from scipy import stats

    out = np.ones(len(cols))
    for j, c in enumerate(cols):
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)  # scipy warns when it falls back to the asymptotic law
            try:
                out[j] = stats.ks_2samp(c[:n], c[n:], method="exact").pvalue
            except RuntimeWarning:
                pass
    return out


def _sequential(family: _Family, perm: Permutations, settled: bool):
    """Observed statistics, marginal and adjusted p-values, the method suffix and the permutations drawn, from
    the sequential engine at ``perm.alpha`` (``settled``: the family is rejected elsewhere; stop at
    ``SETTLED_PERMUTATIONS``).

    The battery's p-value (the smallest adjusted one, at the test with the smallest observed tail) is the
    anytime-valid p-value of ``sequential.sequential_minp_counts``; every other test's adjusted value is its
    single-step minP count on the same permutations, never below the battery's p-value (descriptive)."""
    from specverify.harness.stats.sequential import sequential_minp_counts

    n, m, alpha, seed = family.n, family.m, perm.alpha, perm.seed
    if settled:
        perm = dataclasses.replace(perm, n_perm=SETTLED_PERMUTATIONS)
    r = sequential_minp_counts(family.statistic, n + m, perm, PilotScore(_pilot_tails(family.ks_cols, n, m)),
                               rtol=family.rtol, futility=not settled)
    rows = r.n_perm + 1
    u = np.random.default_rng([seed, 7]).uniform(size=r.above.size)
    marginal = (r.above + u * (r.tied + 1)) / rows
    adjusted = np.maximum.reduce([(1 + r.extreme) / rows, marginal, np.full(marginal.size, r.pvalue)])
    adjusted[int(np.argmin(r.observed_tails))] = r.pvalue
    why = "the family is already rejected" if settled else r.stop
    suffix = (f"; sequential minP (betting, anytime-valid) over {len(family.rtol)} tests at alpha={alpha:.4g}, "
              f"stopped ({why}) after {r.n_perm} permutations + {r.n_pilot} pilot, seed={seed}")
    return r.observed, marginal, adjusted, suffix, r.n_perm + r.n_pilot


def _screened(family: _Family, cols, alpha: float, seed: int, settled: bool):
    """The exact KS screen at ``SCREEN_SHARE`` alpha and the sequential minP at the rest (module docstring):
    ``_sequential``'s results with the adjusted p-values on the block's scale, and the methods annotated."""
    n, m, ks_cols = family.n, family.m, family.ks_cols
    n_ks = sum(ks_cols)  # the KS columns come first
    exact = ks_screen(cols, n)
    screen = np.ones(len(ks_cols))
    screen[:n_ks] = np.minimum(1.0, exact * n_ks / SCREEN_SHARE)
    a_perm = alpha * (1 - SCREEN_SHARE)
    perm = Permutations(seed=seed, alpha=a_perm,
                        batch_size=mmd._batch(n + m, family.per_item, max_permutations(a_perm)))
    observed, marginal, adjusted, suffix, used = _sequential(family, perm, settled or bool((screen <= alpha).any()))
    adjusted = np.minimum(np.minimum(1.0, adjusted / (1 - SCREEN_SHARE)), screen)
    methods = [mt + (f"; exact KS p = {exact[j]:.3g} (scipy; screen: Bonferroni over {n_ks} KS tests at "
                     f"{SCREEN_SHARE:g} alpha)" if ks_cols[j] else "") for j, mt in enumerate(family.methods)]
    return observed, marginal, adjusted, suffix, used, methods


def _directions(x: np.ndarray, tests: BatteryTests, seed: int):
    """Names and the (d, c) matrix of the KS directions; the squared norm is added separately."""
    d = x.shape[1]
    rng = np.random.default_rng(seed)
    coords = np.arange(d) if d <= tests.max_coords else np.sort(rng.choice(d, size=tests.max_coords, replace=False))
    names = [f"ks[coord {i}]" for i in coords]
    mats = [np.eye(d)[:, coords]]
    if d > 1 and tests.n_projections:
        v = rng.normal(size=(d, tests.n_projections))
        mats.append(v / np.linalg.norm(v, axis=0))
        names += [f"ks[projection {j}]" for j in range(tests.n_projections)]
    return names, np.concatenate(mats, axis=1)


def n_tests(dim: int, tests: BatteryTests = BatteryTests()) -> int:
    """The number of tests :func:`two_sample_minp` runs on d-dimensional samples: KS on min(d, max_coords)
    coordinates, on the squared norm and (d > 1) on ``n_projections`` projections, then :data:`KERNEL_TESTS` (above
    ``mmd.MAX_EXACT`` pooled points with d > 1 and no projections, the sliced energy test is left out)."""
    return (min(dim, tests.max_coords) + 1 + (tests.n_projections if dim > 1 else 0)
            + (len(KERNEL_TESTS) if tests.kernel_tests else 0))


def _kernel_blocks(z: np.ndarray, n: int, m: int, seed: int) -> list:
    """The MMD block (exact matrices up to ``mmd.MAX_EXACT`` pooled points, random features above) and, up to that
    size, the exact energy block: (statistic, names, methods, tie rtol, per-item bytes) each."""
    sliced = n + m > mmd.MAX_EXACT
    pool = Pool(torch.as_tensor(z), n, m)
    dist = None if sliced else permuted._distances(pool.z)
    med = mmd._pool_median(pool.z, mmd.MEDIAN_POINTS, seed, dist)
    bw = mmd._check_bandwidths([med * s for s in mmd.MMD_SCALES])
    if sliced:
        mmd_statistic, b1, detail = permuted._mmd_rff(pool, bw, mmd.N_FEATURES, seed)
    else:
        mmd_statistic, b1, detail = permuted._mmd_exact(pool, bw, torch.float32, dist)
        del dist
    rtol = mmd._tie_rtol(torch.float32)
    blocks = [(mmd_statistic, list(MMD_TESTS), [f"mmd2u-gaussian-perm ({detail}; h = {h:.4g})" for h in bw], rtol,
               b1)]
    if not sliced:  # (above MAX_EXACT the energy test is the KS block's sliced column, or left out)
        energy, b2, detail = permuted._energy_exact(pool, torch.float32)
        blocks.append((energy, ["energy"], [f"energy-V-perm ({detail})"], rtol, b2))
    return blocks


def _family(x: np.ndarray, y: np.ndarray, tests: BatteryTests, seed: int):
    """The battery's columns in order (KS on coordinates, |x|^2, projections; then the kernel tests), the pooled
    KS columns (for the exact screen), the directions matrix and the number of coordinates."""
    n, m = len(x), len(y)
    names, dirs = _directions(x, tests, seed)
    z = np.concatenate([x, y])
    cols = list((z @ dirs).T)
    n_coords = min(x.shape[1], tests.max_coords)
    cols.insert(n_coords, (z**2).sum(1))  # coordinates, the squared norm, then the projections (as ks_tests)
    names.insert(n_coords, "ks[|x|^2]")
    proj = Pool(torch.as_tensor(np.stack(cols, 1)), n, m)
    sliced = tests.kernel_tests and n + m > mmd.MAX_EXACT
    # above MAX_EXACT, energy comes from the KS cumulative sums on the random directions (the coordinate if d = 1)
    e_cols = [0] if x.shape[1] == 1 else [i for i, nm in enumerate(names) if nm.startswith("ks[projection")]
    if sliced and e_cols:  # (sliced without random directions, d > 1 and n_projections = 0: no energy test)
        c_d = 1.0 if x.shape[1] == 1 else cumsum.sliced_constant(x.shape[1])
        e_method = f"energy-V-perm (sliced over the {len(e_cols)} KS directions, float32 cumulative sums)"
        blocks = [(cumsum._cumsum_statistics(proj, energy_cols=e_cols, c_d=c_d), names + ["energy"],
                   ["ks-2samp-perm"] * len(names) + [e_method], _KS_RTOL, 4 * (2 + len(names)))]
    else:
        blocks = [(cumsum._cumsum_statistics(proj), names, ["ks-2samp-perm"] * len(names), _KS_RTOL,
                   4 * (1 + len(names)))]
    if tests.kernel_tests:
        blocks += _kernel_blocks(z, n, m, seed)
    parts = [b[0] for b in blocks]

    def statistic(perms):
        return torch.cat([p(perms).reshape(perms.shape[0], -1).double() for p in parts], dim=1)

    family = _Family(statistic, [nm for b in blocks for nm in b[1]], [mt for b in blocks for mt in b[2]],
                     [b[3] for b in blocks for _ in b[1]], sum(b[4] for b in blocks), n, m)
    return family, cols, dirs, n_coords


def two_sample_minp(x, y, alpha: float, perm: Permutations = Permutations(), *,
                    tests: BatteryTests = BatteryTests(), settled: bool = False) -> Battery:
    """KS, MMD and energy tests of x (n, d) against y (m, d), minP-adjusted on shared permutations.

    ``perm`` (:class:`Permutations`): ``seed`` seeds the directions, the features and the permutations;
    ``n_perm=None`` (the default): the exact KS screen at ``SCREEN_SHARE`` alpha and the sequential engine at the
    rest (``stats.sequential``), which stops once the decision is settled (at most ceil(20 / alpha) permutations;
    ``SETTLED_PERMUTATIONS`` when the screen rejects or ``settled`` says the caller's family already rejected);
    an integer: that fixed number B of permutations, no screen (at least ceil(1/alpha) - 1;
    ``DEFAULT_PERMUTATIONS`` = 999 was the former default). The battery sets the engine's alpha and batch size.
    ``tests`` (:class:`BatteryTests`): which tests run. Example: ``two_sample_minp(x, y, 0.01, Permutations(seed=1))``.
    """
    from specverify.harness.stats.two_sample import _pair

    alpha = in_unit_interval(alpha, "alpha", StatsError)
    x, y = _pair(x, y)
    n, m, seed = len(x), len(y), perm.seed
    n_perm = None if perm.n_perm is None else int(perm.n_perm)
    family, cols, dirs, n_coords = _family(x, y, tests, seed)
    names = family.names
    if n_perm is None:
        observed, marginal, adjusted, suffix, used, methods = _screened(family, cols, alpha, seed, settled)
    else:
        fixed = Permutations(n_perm, seed=seed, alpha=alpha, batch_size=mmd._batch(n + m, family.per_item, n_perm))
        raw = permutation_matrix(family.statistic, n + m, fixed).numpy()
        marginal, adjusted = minp_adjust(raw, family.rtol, _tails(family.ks_cols, n, m),
                                         rng=np.random.default_rng([seed, 7]))
        observed, used, methods = raw[0], n_perm, family.methods
        suffix = f"; minP-adjusted over {len(names)} tests, B={n_perm} shared permutations, seed={seed}"
    coords = (dirs[:, :n_coords].argmax(0).tolist() + [None] * len(names))[:len(names)]  # coordinates come first
    results = tuple(TestResult(nm, float(observed[j]), float(marginal[j]), methods[j] + suffix, min(n, m), coords[j])
                    for j, nm in enumerate(names))
    return Battery(results, tuple(float(a) for a in adjusted), tuple(bool(a <= alpha) for a in adjusted),
                   float(alpha), correction="minP", permutations=used)
