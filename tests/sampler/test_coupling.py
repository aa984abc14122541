"""Tests of :mod:`specverify.sampler.coupling`: reflection maximal coupling of N(m_p, s^2 I) with a draft
from N(m_q, s^2 I).

Exact tests (hypothesis, float64, no randomness in the verdict): for target and draft means, sigma (scalar or
per batch row, 1e-3 .. 1e2), event sizes 1 .. 4096 and injected noise z ~ N(0, I), u ~ U(0, 1), the output is
compared with an independent numpy computation of the textbook rule, D = (m_q - m_p) / s:
accepted iff log u <= -<z, D> - |D|^2 / 2; accepted -> the draft m_q + s z; rejected -> m_p + s (I - 2 e e^T) z
with e = D / |D|, so the whitened output keeps |z|; D = 0 -> always accepted. Also event shapes (image-shaped
events, two batch dimensions), input validation (sigma <= 0, mismatched shapes -> SamplerError) and float32.
Rows whose log u lies within 1e-9 (1 + |log ratio|) of the log ratio are excluded with ``assume``: there the
decision depends on rounding; a separate test puts u 1e-8 (1 + |log ratio|) on either side of the boundary, where
the float64 decision is determined. acceptance_probability keeps its relative accuracy deep in the tail
(|D| up to 40), where 2 ndtr(-|D| / 2) would underflow.

Statistical tests, each with a declared false-failure probability ALPHA = 1e-3 (a correct coupling fails one
of them, over a fresh seed, with probability at most ALPHA; Holm's correction keeps a family of KS tests at
ALPHA family-wise). The seeds are fixed, so the verdicts are reproducible; thresholds come from ALPHA only.
- The output of one coupling step, whitened as (x - m_p) / s, is N(0, I): per-coordinate KS against N(0, 1),
  KS of the coordinate along e = D / |D| and KS of |w|^2 against chi^2(d), Holm-corrected, for d in {1, 5, 64}
  and |D| in {0.1, 3} (acceptance about 0.96 and 0.13), n = 20000 draws of fresh z and u for fixed m_p, m_q, s.
- The number of accepted draws is Binomial(n, 2 Phi(-|D| / 2)) (exact two-sided binomial test).
- Negative controls: the same checks reject the known-broken couplings of ``specverify.sampler.mutants`` (the
  normality battery: keep the draft, resample naively, reflect about the wrong mean; the binomial test: drop the
  -|D|^2 / 2 term, invert or temper the ratio), while the reflection coupling passes at the same seed: the checks
  can fail, and fail for the bug.
Chance-failing assertions: 6 normality batteries + 6 binomial tests + 6 controls = 18, so the suite's
false-failure budget over a fresh seed is at most 18 * ALPHA = 1.8%.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats

from specverify.errors import SamplerError
from specverify.sampler.coupling import acceptance_probability, couple, log_acceptance_ratio, reflection_coupling
from specverify.sampler.mutants import MUTANTS
from tests._stats import acceptance_binomtest, standard_normal_battery

ALPHA = 1e-3  # false-failure probability of each statistical test (family-wise for a Holm-corrected battery)
N_DRAWS = 20_000
SIGMA = 0.7  # the fixed noise scale of the statistical tests
DIMS = (1, 2, 3, 7, 64, 513, 4096)
# Exact float64 checks. Elementwise results are compared up to TIGHT times the magnitude of the summands that
# formed them; the float64 rounding error is a few 1e-16 of that (dot products: about log2(d) 1e-16).
TIGHT = 1e-12
NORM_RTOL = 1e-10
TIE_RTOL = 1e-9
EXACT = settings(max_examples=200, deadline=None)


# ---------------------------------------------------------------------------------------------------------------
# Exact tests: random cases and an independent numpy reference.


@dataclasses.dataclass(frozen=True)
class Case:
    """One batch of coupling inputs in float64: means and z are ``(batch, d)``, u is ``(batch,)``."""

    mean_p: np.ndarray
    mean_q: np.ndarray
    sigma: float | np.ndarray  # a float, or one value per batch row
    z: np.ndarray
    u: np.ndarray

    @property
    def s(self) -> np.ndarray:
        """sigma as a ``(batch, 1)`` column."""
        return np.broadcast_to(np.asarray(self.sigma, dtype=np.float64), self.u.shape)[:, None]

    def sigma_arg(self, dtype=torch.float64):
        return self.sigma if np.ndim(self.sigma) == 0 else torch.tensor(self.sigma, dtype=dtype)


@st.composite
def cases(draw, dims=DIMS, equal_means: bool = False) -> Case:
    """Coupling inputs drawn from a hypothesis-chosen seed.

    The draft mean is either independent of the target mean (|D| is then large and every row is rejected), or
    m_p + s |D| v with v a random unit vector and |D| log-uniform in [1e-6, 10^1.5], so that acceptance
    probabilities from about 1 down to about 0 all occur.
    """
    seed = draw(st.integers(0, 2**64 - 1))
    batch = draw(st.integers(1, 3))
    d = draw(st.sampled_from(dims))
    per_row_sigma = draw(st.booleans())
    mean_scale = draw(st.sampled_from([0.0, 1.0, 10.0]))
    independent = draw(st.integers(0, 3)) == 0
    rng = np.random.default_rng(seed)
    sigma = 10.0 ** rng.uniform(-3, 2, size=batch if per_row_sigma else None)
    s = np.broadcast_to(sigma, (batch,))[:, None]
    mean_p = mean_scale * rng.standard_normal((batch, d))
    if equal_means:
        mean_q = mean_p.copy()
    elif independent:
        mean_q = max(mean_scale, 1.0) * rng.standard_normal((batch, d))
    else:
        v = rng.standard_normal((batch, d))
        v /= np.linalg.norm(v, axis=1, keepdims=True)
        dist = 10.0 ** rng.uniform(-6, 1.5, size=(batch, 1))
        mean_q = mean_p + s * dist * v
    z = rng.standard_normal((batch, d))
    u = rng.random(batch)
    assume(np.all(u > 0))
    return Case(mean_p, mean_q, float(sigma) if np.ndim(sigma) == 0 else sigma, z, u)


@dataclasses.dataclass(frozen=True)
class Expected:
    """The textbook coupling of a :class:`Case`, in float64 numpy."""

    D: np.ndarray
    dist: np.ndarray
    log_ratio: np.ndarray
    accepted: np.ndarray
    e: np.ndarray
    draft: np.ndarray
    reflected: np.ndarray


def expected(case: Case) -> Expected:
    D = (case.mean_q - case.mean_p) / case.s
    dist = np.linalg.norm(D, axis=1)
    log_ratio = -np.einsum("bd,bd->b", case.z, D) - 0.5 * dist**2
    accepted = np.log(case.u) <= log_ratio
    e = D / np.where(dist > 0, dist, 1.0)[:, None]
    z_reflected = case.z - 2 * np.einsum("bd,bd->b", case.z, e)[:, None] * e
    draft = case.mean_q + case.s * case.z
    reflected = case.mean_p + case.s * z_reflected
    return Expected(D, dist, log_ratio, accepted, e, draft, reflected)


def assume_no_ties(case: Case, ref: Expected, rtol: float = TIE_RTOL) -> None:
    assume(np.all(np.abs(np.log(case.u) - ref.log_ratio) > rtol * (1 + np.abs(ref.log_ratio))))


def run(case: Case, dtype=torch.float64) -> tuple[np.ndarray, np.ndarray]:
    t = lambda a: torch.tensor(a, dtype=dtype)  # noqa: E731
    x, accepted = reflection_coupling(t(case.mean_p), t(case.mean_q), case.sigma_arg(dtype), t(case.z), t(case.u),
                                      batch_ndim=1)
    assert x.dtype == dtype and x.shape == case.z.shape
    assert accepted.dtype == torch.bool and accepted.shape == case.u.shape
    return x.numpy().astype(np.float64), accepted.numpy()


def assert_rows_close(actual: np.ndarray, desired: np.ndarray, scale: np.ndarray, rtol: float) -> None:
    """max_j |actual - desired| <= rtol * scale, row by row (scale: the magnitude of the row's summands)."""
    err = np.abs(actual - desired).max(axis=1)
    bad = err > rtol * scale
    assert not bad.any(), f"rows {np.flatnonzero(bad)}: error {err[bad]} > {rtol} * {scale[bad]}"


def row_scale(mean: np.ndarray, s: np.ndarray, z: np.ndarray) -> np.ndarray:
    return np.abs(mean).max(axis=1) + s[:, 0] * np.linalg.norm(z, axis=1)


@EXACT
@given(cases())
def test_accepted_iff_log_u_at_most_log_ratio(case):
    ref = expected(case)
    assume_no_ties(case, ref)
    _, accepted = run(case)
    np.testing.assert_array_equal(accepted, ref.accepted)


@EXACT
@given(cases(), st.booleans())
def test_decision_is_sharp_next_to_the_boundary(case, below):
    """u set to exp(log ratio -+ 1e-8 (1 + |log ratio|)): far above float64 rounding, below float32's (6e-8)."""
    ref = expected(case)
    ok = (ref.log_ratio > -700) & (ref.log_ratio < -1e-6)  # exp(log u) neither underflows nor reaches 1
    assume(ok.any())
    delta = 1e-8 * (1 + np.abs(ref.log_ratio))
    u = np.where(ok, np.exp(ref.log_ratio - delta if below else ref.log_ratio + delta), case.u)
    _, accepted = run(dataclasses.replace(case, u=u))
    np.testing.assert_array_equal(accepted[ok], np.full(ok.sum(), below))


@EXACT
@given(cases())
def test_accepted_rows_are_the_draft(case):
    ref = expected(case)
    assume_no_ties(case, ref)
    x, accepted = run(case)
    a = accepted
    assert_rows_close(x[a], ref.draft[a], row_scale(case.mean_q[a], case.s[a], case.z[a]), TIGHT)
    # whitened about the draft mean, the output is z itself; x - m_q cancels, so |m_q| / s enters the scale
    w = (x[a] - case.mean_q[a]) / case.s[a]
    tol = TIGHT * (np.abs(case.mean_q[a]) / case.s[a] + np.abs(case.z[a])) + np.finfo(np.float64).tiny
    np.testing.assert_array_less(np.abs(w - case.z[a]), tol)


@EXACT
@given(cases())
def test_rejected_rows_are_the_reflection(case):
    ref = expected(case)
    assume_no_ties(case, ref)
    x, accepted = run(case)
    r = ~accepted
    assert_rows_close(x[r], ref.reflected[r], row_scale(case.mean_p[r], case.s[r], case.z[r]), TIGHT)


@EXACT
@given(cases())
def test_reflection_preserves_the_noise_norm(case):
    ref = expected(case)
    assume_no_ties(case, ref)
    x, accepted = run(case)
    r = ~accepted
    w = (x[r] - case.mean_p[r]) / case.s[r]
    z_norm = np.linalg.norm(case.z[r], axis=1)
    # x - m_p cancels: its float64 error is about 1e-16 |m_p| / s per coordinate, hence the second term
    tol = NORM_RTOL * (z_norm + np.linalg.norm(case.mean_p[r], axis=1) / case.s[r, 0])
    np.testing.assert_array_less(np.abs(np.linalg.norm(w, axis=1) - z_norm), tol + np.finfo(np.float64).tiny)
    # and it is the mirror image of z in the hyperplane orthogonal to D: the component along e flips sign
    along_w = np.einsum("bd,bd->b", w, ref.e[r])
    along_z = np.einsum("bd,bd->b", case.z[r], ref.e[r])
    np.testing.assert_array_less(np.abs(along_w + along_z), tol + np.finfo(np.float64).tiny)


@EXACT
@given(cases(equal_means=True))
def test_equal_means_are_always_accepted(case):
    x, accepted = run(case)
    assert accepted.all()
    np.testing.assert_array_equal(x, case.mean_q + case.s * case.z)


@EXACT
@given(cases())
def test_couple_and_log_acceptance_ratio_report_distance_and_ratio(case):
    ref = expected(case)
    assume_no_ties(case, ref)
    t = torch.tensor
    args = (t(case.mean_p), t(case.mean_q), case.sigma_arg())
    x, accepted, dist = couple(*args, t(case.z), t(case.u), batch_ndim=1)
    log_ratio, dist2 = log_acceptance_ratio(*args, t(case.z), batch_ndim=1)
    x1, accepted1 = reflection_coupling(*args, t(case.z), t(case.u), batch_ndim=1)
    assert torch.equal(x, x1) and torch.equal(accepted, accepted1)
    np.testing.assert_allclose(dist.numpy(), ref.dist, rtol=TIGHT)
    np.testing.assert_array_equal(dist.numpy(), dist2.numpy())
    # error of a sum: relative to the magnitude of its terms, |<z, D>| <= |z| |D| and |D|^2 / 2
    scale = np.linalg.norm(case.z, axis=1) * ref.dist + 0.5 * ref.dist**2
    np.testing.assert_array_less(np.abs(log_ratio.numpy() - ref.log_ratio), TIGHT * scale + np.finfo(float).tiny)


@EXACT
@given(st.lists(st.floats(0, 70), min_size=1, max_size=8))
def test_acceptance_probability_is_2_phi_of_minus_half_distance(dists):
    """As a probability (what the sampler sums into its predicted acceptance): to a few ulps of 1."""
    dist = np.array(dists)
    got = acceptance_probability(torch.tensor(dist)).numpy()
    np.testing.assert_allclose(got, 2 * stats.norm.cdf(-dist / 2), rtol=TIGHT, atol=4 * np.finfo(np.float64).eps)
    assert got[dist == 0].tolist() == [1.0] * int((dist == 0).sum())


@pytest.mark.parametrize("dist", [12.0, 16.0, 20.0, 40.0])
def test_acceptance_probability_keeps_relative_accuracy_in_the_tail(dist):
    got = float(acceptance_probability(torch.tensor(dist, dtype=torch.float64)))
    np.testing.assert_allclose(got, 2 * stats.norm.cdf(-dist / 2), rtol=TIGHT, atol=0)


@EXACT
@given(cases(dims=(3 * 32 * 32,)))
def test_image_shaped_events_match_flat_events(case):
    t = torch.tensor
    b = case.z.shape[0]
    img = lambda a: t(a).reshape(b, 3, 32, 32)  # noqa: E731
    x_img, acc_img = reflection_coupling(img(case.mean_p), img(case.mean_q), case.sigma_arg(), img(case.z),
                                         t(case.u), batch_ndim=1)
    x_flat, acc_flat = reflection_coupling(t(case.mean_p), t(case.mean_q), case.sigma_arg(), t(case.z),
                                           t(case.u), batch_ndim=1)
    assert x_img.shape == (b, 3, 32, 32) and acc_img.shape == (b,)
    assert torch.equal(acc_img, acc_flat)
    assert torch.equal(x_img.reshape(b, -1), x_flat)


@EXACT
@given(cases(), st.sampled_from([1, 2, 3]))
def test_two_batch_dimensions_match_one(case, k):
    """batch_ndim=2 on (k, b, d) inputs (the speculative sampler's layout) equals batch_ndim=1 on (k b, d)."""
    t = torch.tensor
    tile = lambda a: np.concatenate([a] * k)  # noqa: E731
    flat = Case(tile(case.mean_p), tile(case.mean_q),
                case.sigma if np.ndim(case.sigma) == 0 else tile(case.sigma), tile(case.z), tile(case.u))
    b, d = case.z.shape
    two = lambda a: t(a).reshape(k, b, *a.shape[1:])  # noqa: E731
    sigma2 = flat.sigma if np.ndim(flat.sigma) == 0 else two(flat.sigma)
    x2, acc2 = reflection_coupling(two(flat.mean_p), two(flat.mean_q), sigma2, two(flat.z), two(flat.u),
                                   batch_ndim=2)
    x1, acc1 = run(flat)
    assert x2.shape == (k, b, d) and acc2.shape == (k, b)
    np.testing.assert_array_equal(acc2.reshape(-1).numpy(), acc1)
    np.testing.assert_array_equal(x2.reshape(k * b, d).numpy(), x1)


@EXACT
@given(cases(dims=(1, 2, 3, 7, 64, 513)))
def test_float32_in_float32_out(case):
    ref64 = expected(case)
    assume(np.all(np.abs(ref64.log_ratio) < 1e30))
    # the float64 reference of the float32-rounded inputs
    r32 = lambda a: np.asarray(a, dtype=np.float32).astype(np.float64)  # noqa: E731
    case32 = Case(r32(case.mean_p), r32(case.mean_q),
                  float(r32(case.sigma)) if np.ndim(case.sigma) == 0 else r32(case.sigma), r32(case.z), r32(case.u))
    ref = expected(case32)
    # float32 rounding moves log ratio by about 1e-7 sqrt(d) (|z| |D| + |D|^2): keep rows well away from a tie
    scale = 1 + np.linalg.norm(case32.z, axis=1) * ref.dist + ref.dist**2
    assume(np.all(np.abs(np.log(case32.u) - ref.log_ratio) > 1e-4 * scale))
    assume(np.all(case32.u > 0))
    x, accepted = run(case32, dtype=torch.float32)  # asserts the float32 dtype
    np.testing.assert_array_equal(accepted, ref.accepted)
    want = np.where(ref.accepted[:, None], ref.draft, ref.reflected)
    scale = np.maximum(row_scale(case32.mean_p, case32.s, case32.z), row_scale(case32.mean_q, case32.s, case32.z))
    assert_rows_close(x, want, scale, 1e-5)


@pytest.mark.parametrize("sigma", [0.0, -1.0, float("nan"), "one_row_zero"])
def test_nonpositive_sigma_raises(sigma):
    m = torch.zeros(3, 4, dtype=torch.float64)
    if sigma == "one_row_zero":
        sigma = torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    with pytest.raises(SamplerError, match="zero-noise step"):
        reflection_coupling(m, m + 1, sigma, torch.randn(3, 4, dtype=torch.float64), torch.full((3,), 0.5))


@pytest.mark.parametrize("bad", ["mean_q", "z", "u", "sigma"])
def test_mismatched_shapes_raise(bad):
    shapes = {"mean_p": (3, 4), "mean_q": (3, 4), "z": (3, 4), "u": (3,), "sigma": (3,)}
    shapes[bad] = {"mean_q": (3, 5), "z": (2, 4), "u": (4,), "sigma": (2,)}[bad]
    g = torch.Generator().manual_seed(0)
    args = {k: 0.1 + 0.8 * torch.rand(v, dtype=torch.float64, generator=g) for k, v in shapes.items()}
    with pytest.raises(SamplerError, match="shape"):
        reflection_coupling(args["mean_p"], args["mean_q"], args["sigma"], args["z"], args["u"], batch_ndim=1)


# ---------------------------------------------------------------------------------------------------------------
# Statistical tests: n draws of one coupling step for fixed m_p, m_q, sigma.


@dataclasses.dataclass(frozen=True)
class Draws:
    """n whitened outputs w = (x - m_p) / s, the acceptance flags, and e = D / |D| (numpy, float64)."""

    w: np.ndarray
    accepted: np.ndarray
    e: np.ndarray
    dist: float


def mutant_coupling(name: str):
    """The coupling of a known-broken sampler (:data:`specverify.sampler.mutants.MUTANTS`) as (x, accepted)."""
    broken = MUTANTS[name].parts.coupling
    return lambda *a: broken(*a)[:2]


def draw_coupled(coupling, d: int, dist: float, seed: int, n: int = N_DRAWS) -> Draws:
    """n coupling steps with fresh z, u and fixed m_p, m_q = m_p + s |D| e, s = SIGMA (seeded torch.Generator)."""
    g = torch.Generator().manual_seed(seed)
    f64 = torch.float64
    mean_p = 2 * torch.randn(d, generator=g, dtype=f64)
    e = torch.randn(d, generator=g, dtype=f64)
    e = e / torch.linalg.vector_norm(e)
    mean_q = mean_p + SIGMA * dist * e
    z = torch.randn(n, d, generator=g, dtype=f64)
    u = torch.rand(n, generator=g, dtype=f64)
    x, accepted = coupling(mean_p.expand(n, d), mean_q.expand(n, d), SIGMA, z, u)
    w = ((x - mean_p) / SIGMA).numpy()
    return Draws(w, accepted.numpy(), e.numpy(), dist)


def seed_of(d: int, dist: float, salt: int = 0) -> int:
    return 20250 + 1000 * salt + 10 * d + round(10 * dist)


NULL_CONFIGS = [(d, dist) for d in (1, 5, 64) for dist in (0.1, 3.0)]
CONFIG_IDS = [f"d{d}-D{dist}" for d, dist in NULL_CONFIGS]


@pytest.mark.parametrize(("d", "dist"), NULL_CONFIGS, ids=CONFIG_IDS)
def test_whitened_output_is_standard_normal(d, dist):
    draws = draw_coupled(reflection_coupling, d, dist, seed_of(d, dist))
    result = standard_normal_battery(draws.w, ALPHA, e=draws.e)
    assert not result.rejected, result.summary()


@pytest.mark.parametrize(("d", "dist"), NULL_CONFIGS, ids=CONFIG_IDS)
def test_acceptance_count_is_binomial(d, dist):
    draws = draw_coupled(reflection_coupling, d, dist, seed_of(d, dist, salt=1))
    p = 2 * stats.norm.cdf(-dist / 2)
    result = acceptance_binomtest(draws.accepted.sum(), draws.accepted.size, p, ALPHA)
    assert not result.rejected, result.summary()


NEG_D, NEG_DIST = 5, 1.5  # acceptance 2 Phi(-0.75) = 0.45: over half of the draws take the rejection branch


@pytest.mark.parametrize("bug", ["no-reflection", "naive-resample", "reflect-wrong-mean"])
def test_normality_battery_rejects_broken_coupling(bug):
    seed = seed_of(NEG_D, NEG_DIST, salt=2)
    sound_draws = draw_coupled(reflection_coupling, NEG_D, NEG_DIST, seed)
    sound = standard_normal_battery(sound_draws.w, ALPHA, e=sound_draws.e)
    assert not sound.rejected, "the reflection coupling must pass: " + sound.summary()
    broken = draw_coupled(mutant_coupling(bug), NEG_D, NEG_DIST, seed)
    result = standard_normal_battery(broken.w, ALPHA, e=broken.e)
    assert result.rejected, f"the battery missed the {bug!r} bug: " + result.summary()


@pytest.mark.parametrize("bug", ["dropped-quadratic", "inverted-ratio", "tempered-ratio"])
def test_binomial_check_rejects_wrong_acceptance_rule(bug):
    seed = seed_of(NEG_D, NEG_DIST, salt=3)
    p = 2 * stats.norm.cdf(-NEG_DIST / 2)
    sound = draw_coupled(reflection_coupling, NEG_D, NEG_DIST, seed)
    result = acceptance_binomtest(sound.accepted.sum(), sound.accepted.size, p, ALPHA)
    assert not result.rejected, "the reflection coupling must pass: " + result.summary()
    broken = draw_coupled(mutant_coupling(bug), NEG_D, NEG_DIST, seed)
    result = acceptance_binomtest(broken.accepted.sum(), broken.accepted.size, p, ALPHA)
    assert result.rejected and not result.p_in_interval, f"missed the {bug!r} acceptance rule: " + result.summary()


@pytest.mark.parametrize("bad", ["nan_p", "inf_q", "nan_z"])
def test_non_finite_inputs_raise(bad):
    mp, mq, z = torch.zeros(3, 4), torch.ones(3, 4), torch.randn(3, 4, generator=torch.Generator().manual_seed(0))
    {"nan_p": mp, "inf_q": mq, "nan_z": z}[bad][1, 2] = float("nan") if bad != "inf_q" else float("inf")
    with pytest.raises(SamplerError, match="NaN or Inf"):
        reflection_coupling(mp, mq, 1.0, z, torch.full((3,), 0.5))


@pytest.mark.parametrize("u", [0.0, 1.0, -0.2, 1.5])
def test_u_outside_the_open_unit_interval_raises(u):
    with pytest.raises(SamplerError, match="open interval"):
        reflection_coupling(torch.zeros(2, 3), torch.ones(2, 3), 1.0, torch.ones(2, 3), torch.tensor([0.5, u]))
