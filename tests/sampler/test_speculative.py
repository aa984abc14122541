"""The plain and speculative samplers.

Exact tests first (oracle identity under injected noise, determinism, batch invariance, counting identities,
zero-noise steps, bad input), then one-sample tests of the speculative output against the exact law of a
linear-Gaussian chain (declared alpha, fixed seeds).
"""

import dataclasses

import numpy as np
import pytest
import torch

from specverify.errors import ChainError, SamplerError
from specverify.sampler.chains import gaussian_chain, langevin
from specverify.sampler.drafters import make_drafter
from specverify.sampler.mutants import mutant_options
from specverify.sampler.noise import TableNoise
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import GMMProblem
from specverify.sampler.speculative import ROUND_POLICIES, plain_sample, speculative_sample
from tests._stats import standard_normal_battery

ALPHA = 1e-3  # false-failure rate of each statistical test in this file


def _image_chain(steps=12):
    """A nonlinear chain on image-shaped states (3, 32, 32) with a zero-noise step in the middle."""
    sigma = np.full(steps, 0.3)
    sigma[steps // 2] = 0.0

    def mean(x, k):
        return 0.9 * x + 0.1 * torch.tanh(x) * (1 + k.to(x.dtype)).view(-1, 1, 1, 1) / steps

    return gaussian_chain(mean, sigma, (3, 32, 32))


def _chains():
    p = GMMProblem(dim=5)
    return {
        "gmm-ddpm": p.chain(30),
        "gmm-ddim": p.chain(30, sampler="ddim", eta=0.6),
        "gmm-ddpm-v": p.chain(30, prediction="v", schedule="cosine"),
        "image": _image_chain(),
        "langevin": langevin(0.05, 25, (4,), log_prob=lambda x: -0.25 * (x**4).sum(1)),
    }


def _run_pair(chain, drafter, n, window, dtype, seed=1, policy="accepted+1"):
    noise = TableNoise.draw(n, chain.n_steps, chain.shape, seed=seed, dtype=dtype)
    x0 = chain.prior(n, torch.Generator().manual_seed(seed + 1), dtype=dtype)
    plain = plain_sample(chain, n, options=SampleOptions(noise=noise, x0=x0, dtype=dtype))
    spec, st = speculative_sample(chain, drafter, n, window=window,
                                  options=SampleOptions(noise=noise, x0=x0, dtype=dtype, policy=policy))
    return plain, spec, st


@pytest.mark.parametrize("name", list(_chains()))
@pytest.mark.parametrize("window", [1, 3, 8, 100])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_oracle_accepts_everything_and_equals_plain(name, window, dtype, policy):
    chain = _chains()[name]
    plain, spec, st = _run_pair(chain, make_drafter("oracle"), 24, window, dtype, policy=policy)
    assert st.acceptance_rate == 1.0
    assert (st.accepted_per_position == st.verified_per_position).all()
    assert spec.dtype == dtype
    assert torch.equal(plain, spec)


@pytest.mark.parametrize("drafter", ["frozen-drift", "frozen-denoiser"])
def test_same_seed_same_samples(drafter):
    chain = GMMProblem(dim=3).chain(40)
    a, sa = speculative_sample(chain, make_drafter(drafter), 200, window=5, seed=7)
    b, sb = speculative_sample(chain, make_drafter(drafter), 200, window=5, seed=7)
    c, _ = speculative_sample(chain, make_drafter(drafter), 200, window=5, seed=8)
    assert torch.equal(a, b) and sa.to_dict() == sb.to_dict()
    assert not torch.equal(a, c)


@pytest.mark.parametrize("drafter", ["frozen-drift", "frozen-denoiser", "oracle"])
def test_batch_invariance(drafter):
    """A sample's output depends only on its own noise: running the batch in two halves changes nothing."""
    chain = GMMProblem(dim=4).chain(30, sampler="ddim", eta=0.8)
    n = 40
    noise = TableNoise.draw(n, chain.n_steps, chain.shape, seed=3, dtype=torch.float64)
    x0 = chain.prior(n, torch.Generator().manual_seed(4), dtype=torch.float64)
    whole, _ = speculative_sample(chain, make_drafter(drafter), n, window=6,
                                  options=SampleOptions(noise=noise, x0=x0, dtype=torch.float64))
    parts = []
    for sl in (slice(0, 13), slice(13, n)):
        part_noise = TableNoise(noise.z[sl], noise.u[sl])
        out, _ = speculative_sample(chain, make_drafter(drafter), sl.stop - sl.start, window=6,
                                    options=SampleOptions(noise=part_noise, x0=x0[sl], dtype=torch.float64))
        parts.append(out)
    assert torch.equal(whole, torch.cat(parts))


@pytest.mark.parametrize("max_batch", [1, 7, 40, None])
def test_batching_changes_nothing_but_the_call_count(max_batch):
    """Samples may run in several batches (bounded memory); with fixed noise the output is the same."""
    chain = GMMProblem(dim=3).chain(25)
    n = 40
    noise = TableNoise.draw(n, chain.n_steps, chain.shape, seed=5, dtype=torch.float64)
    x0 = chain.prior(n, torch.Generator().manual_seed(6), dtype=torch.float64)
    o = SampleOptions(noise=noise, x0=x0, dtype=torch.float64)
    ref, st_ref = speculative_sample(chain, make_drafter("frozen-drift"), n, window=5, options=o)
    out, st = speculative_sample(chain, make_drafter("frozen-drift"), n, window=5,
                                 options=dataclasses.replace(o, max_batch=max_batch))
    assert torch.equal(ref, out)
    np.testing.assert_array_equal(st.rounds, st_ref.rounds)
    assert (st.accepted_per_position == st_ref.accepted_per_position).all()
    n_batches = -(-n // (max_batch or n))
    assert st_ref.rounds_total <= st.rounds_total <= n_batches * st_ref.rounds_total


@pytest.mark.parametrize("name", list(_chains()))
@pytest.mark.parametrize("drafter", ["frozen-drift", "frozen-denoiser", "independent"])
@pytest.mark.parametrize("window", [1, 4, 16])
@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_counting_identities(name, drafter, window, policy):
    chain = _chains()[name]
    if drafter == "independent":
        # a perturbed copy of the target on the same schedule (a closure: its model must match the run's dtype)
        target32 = chain.to(dtype=torch.float32)
        d = make_drafter("independent", draft_chain=gaussian_chain(
            lambda x, k: 0.95 * target32.mean(x, k), chain.sigma, chain.shape))
    else:
        d = make_drafter(drafter)
    n = 50
    x, st = speculative_sample(chain, d, n, window=window, seed=0, options=SampleOptions(policy=policy))
    T, n_zero = chain.n_steps, int((chain.sigma == 0).sum())
    assert st.policy == policy
    assert (st.accepted_per_position <= st.verified_per_position).all()
    assert (st.verified_per_position <= st.proposed_per_position).all()
    np.testing.assert_array_equal(st.proposed_per_step.sum(0), st.proposed_per_position)
    sig0 = chain.sigma == 0
    if policy == "accepted+1":
        # every committed step is a verified drafted step (accepted or reflected), a bonus step after a full
        # window, or a step with nothing drafted (an anchored drafter's first, a zero-noise step)
        assert st.verified_per_position.sum() + st.bonus_steps + st.direct_steps == n * T
        assert st.warmup_evaluations == 0
        assert st.direct_steps >= (n if d.needs_anchor else 0)
        assert st.rounds.min() >= np.ceil(T / (window + 1))  # a round commits at most window + 1 steps
        assert (st.verified_per_step.sum(1) <= n).all()
    else:
        # every committed step is a verified drafted step or a zero-noise step taken by the target
        assert st.verified_per_position.sum() + st.direct_steps == n * T
        assert st.direct_steps == n * n_zero and st.bonus_steps == 0
        # a round commits at most `window` drafted steps; free are the zero-noise steps and a last step whose
        # target mean is cached (nothing left to evaluate)
        assert st.rounds.min() >= np.ceil((T - n_zero - 1) / window)
        assert (st.verified_per_step.sum(1)[~sig0] == n).all()  # each noisy step is verified once per trajectory
    assert st.nfe_ratio <= window + 1
    assert st.rounds_total >= st.rounds.max()
    assert st.target_evaluations <= st.rounds.sum() * (window + 1)
    # per trajectory and per (chain step, window position) the counts add up to the per-position totals
    assert st.verified_per_sample.sum() == st.verified_per_position.sum()
    assert st.accepted_per_sample.sum() == st.accepted_per_position.sum()
    np.testing.assert_allclose(st.predicted_per_sample.sum(), st.predicted_accepted_per_position.sum())
    np.testing.assert_allclose(st.verified_per_step.sum(0), st.verified_per_position)
    np.testing.assert_allclose(st.accepted_per_step.sum(0), st.accepted_per_position)
    np.testing.assert_allclose(st.predicted_per_step.sum(0), st.predicted_accepted_per_position)
    assert st.verified_per_step.shape == (T, window) and not st.verified_per_step[sig0].any()
    if d.needs_anchor:
        assert st.draft_evaluations == 0
    else:
        assert st.warmup_evaluations == 0 and st.draft_evaluations == st.proposed_per_position.sum()
    assert 0 <= st.acceptance_rate <= 1 and torch.isfinite(x).all()


def test_frozen_drafters_accept_first_position():
    """Window-start policy: frozen at the window start, the first drafted step IS the target step: D = 0."""
    chain = GMMProblem(dim=2).chain(50)
    for name in ("frozen-drift", "frozen-denoiser"):
        _, st = speculative_sample(chain, make_drafter(name), 300, window=8, seed=2,
                                   options=SampleOptions(policy="window-start"))
        assert st.accepted_per_position[0] == st.verified_per_position[0] > 0
        assert st.predicted_accepted_per_position[0] == pytest.approx(st.verified_per_position[0], rel=1e-6)


def test_gmm_frozen_denoiser_nfe_ratio():
    """Issue 2: gmm, d = 2, 100 steps, frozen-denoiser, window 8: nfe_ratio >= 3 over 1000 samples."""
    chain = GMMProblem(dim=2).chain(100)
    _, st = speculative_sample(chain, make_drafter("frozen-denoiser"), 1000, window=8, seed=0)
    assert st.nfe_ratio >= 3.0, st.to_dict()


@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_zero_noise_step_policy(policy):
    """The last DDPM step (posterior variance) is taken by the target, never drafted; with variance='beta'
    there is none. Accepted+1: the anchored drafter's first step has nothing to draft either."""
    from specverify.sampler.chains import beta_schedule, ddpm

    p = GMMProblem(dim=2)
    betas = beta_schedule("linear", 20)
    first = 30 if policy == "accepted+1" else 0
    _, st = speculative_sample(p.chain(20), make_drafter("frozen-drift"), 30, window=4, seed=0,
                               options=SampleOptions(policy=policy))
    assert st.proposed_per_step[-1].sum() == 0
    assert st.direct_steps == 30 + first if policy == "window-start" else st.direct_steps >= first
    ch = ddpm(p.eps_model(betas), betas, (2,), variance="beta")
    _, st = speculative_sample(ch, make_drafter("frozen-drift"), 30, window=4, seed=0,
                               options=SampleOptions(policy=policy))
    assert st.direct_steps == first


def test_bad_policy():
    with pytest.raises(SamplerError, match="policy must be one of accepted"):
        speculative_sample(GMMProblem(dim=2).chain(10), make_drafter("oracle"), 5, window=2,
                           options=SampleOptions(policy="paper"))


@pytest.mark.parametrize("window", [0, -1, 1.5, True, "8"])
def test_bad_window(window):
    with pytest.raises(SamplerError, match="window"):
        speculative_sample(GMMProblem(dim=2).chain(10), make_drafter("frozen-drift"), 5, window=window)


@pytest.mark.parametrize("max_batch", [0, 2.5, False])
def test_bad_max_batch(max_batch):
    with pytest.raises(SamplerError, match="max_batch"):
        speculative_sample(GMMProblem(dim=2).chain(10), make_drafter("oracle"), 5, window=2,
                           options=SampleOptions(max_batch=max_batch))


def test_bad_inputs():
    chain = GMMProblem(dim=2).chain(10)
    with pytest.raises(SamplerError, match="x0"):
        speculative_sample(chain, make_drafter("oracle"), 5, window=2, options=SampleOptions(x0=torch.zeros(5, 3)))
    with pytest.raises(SamplerError, match="n must be"):
        plain_sample(chain, 0)
    with pytest.raises(SamplerError, match="unknown drafter"):
        make_drafter("medusa-typo")
    with pytest.raises(SamplerError, match="draft_chain"):
        make_drafter("independent")
    other = GMMProblem(dim=2).chain(11)
    with pytest.raises(SamplerError, match="same schedule"):
        speculative_sample(chain, make_drafter("independent", draft_chain=other), 5, window=2)
    with pytest.raises(SamplerError, match="dtype"):
        plain_sample(chain, 5, options=SampleOptions(dtype=torch.float16))


@pytest.mark.parametrize("field,value", [("policy", "window-start"), ("verifier", "block"), ("max_batch", 4),
                                         ("compile", True), ("parts", "mutant")])
def test_plain_sample_refuses_what_it_cannot_honour(field, value):
    """The speculative sampler's own options, away from their defaults, are refused by name, not ignored."""
    from specverify.sampler.mutants import MUTANTS

    value = MUTANTS["no-reflection"].parts if value == "mutant" else value
    options = SampleOptions(**{field: value})  # drafts > 1 needs a multi-draft verifier, refused first
    with pytest.raises(SamplerError, match=f"plain_sample has no {field} option"):
        plain_sample(GMMProblem(dim=2).chain(10), 5, seed=0, options=options)
    with pytest.raises(SamplerError, match="options must be a SampleOptions"):
        plain_sample(GMMProblem(dim=2).chain(10), 5, options={"dtype": torch.float64})
    with pytest.raises(SamplerError, match="parts must be"):
        SampleOptions(parts="coupling")


def test_model_nan_is_an_error_naming_the_step():
    def mean(x, k):
        return torch.where((k == 3).view(-1, 1), torch.nan, 0.5 * x)

    chain = gaussian_chain(mean, np.full(6, 0.5), (2,))
    with pytest.raises(ChainError, match=r"NaN or Inf at chain steps \[3\]"):
        speculative_sample(chain, make_drafter("frozen-drift"), 4, window=3, seed=0)
    with pytest.raises(ChainError, match="NaN"):
        plain_sample(chain, 4, seed=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_oracle_identity():
    chain = GMMProblem(dim=8).chain(30)
    noise = TableNoise.draw(64, 30, (8,), seed=0, device="cuda", dtype=torch.float64)
    x0 = torch.randn(64, 8, dtype=torch.float64, device="cuda")
    a = plain_sample(chain, 64, options=SampleOptions(noise=noise, x0=x0, dtype=torch.float64))
    b, st = speculative_sample(chain, make_drafter("oracle"), 64, window=8,
                               options=SampleOptions(noise=noise, x0=x0, dtype=torch.float64))
    assert a.device.type == "cuda" and torch.equal(a, b) and st.acceptance_rate == 1.0


# One-sample tests against an exact law. The chain x_{k+1} = c_k x_k + g_k + s_k z is
# linear-Gaussian, so x_T ~ N(m_T, v_T I) exactly (scalar recursion); drafters with poor acceptance exercise
# the rejection path on many steps.
def _linear_chain(d=4, steps=40):
    rng = np.random.default_rng(0)
    c = rng.uniform(0.85, 1.05, size=steps)
    g = rng.uniform(-0.2, 0.2, size=steps)
    s = rng.uniform(0.1, 0.5, size=steps)
    ct, gt = torch.tensor(c), torch.tensor(g)

    def mean(x, k):
        return ct.to(x)[k].view(-1, 1) * x + gt.to(x)[k].view(-1, 1)

    m, v = 0.0, 1.0
    for k in range(steps):
        m, v = c[k] * m + g[k], c[k] ** 2 * v + s[k] ** 2
    return gaussian_chain(mean, s, (d,)), m, v


def _battery(x, m, v):
    """The shared whitened battery (tests/_stats.py) on (x - m) / sqrt(v), Holm at ALPHA (KS asymptotic, pinned)."""
    return standard_normal_battery((x - m) / np.sqrt(v), ALPHA, method="asymp")


@pytest.mark.parametrize("drafter,window,policy", [("frozen-drift", 16, "accepted+1"),
                                                   ("frozen-denoiser", 4, "accepted+1"),
                                                   ("independent", 8, "accepted+1"),
                                                   ("frozen-denoiser", 4, "window-start")])
def test_speculative_output_has_the_exact_law(drafter, window, policy):
    chain, m, v = _linear_chain()
    kw = {}
    if drafter == "independent":  # a deliberately poor draft: acceptance well below 1
        kw["draft_chain"] = gaussian_chain(lambda x, k: 0.7 * x, chain.sigma, chain.shape)
    x, st = speculative_sample(chain, make_drafter(drafter, **kw), 20000, window=window, seed=11,
                               options=SampleOptions(dtype=torch.float64, policy=policy))
    assert st.acceptance_rate < 0.99  # the rejection path is exercised
    result = _battery(x.numpy(), m, v)
    assert not result.rejected, result.summary()


def test_one_sample_battery_has_power():
    """Negative control: the same battery rejects a sampler whose reflection is skipped (the no-reflection mutant)."""
    chain, m, v = _linear_chain()
    bad = gaussian_chain(lambda x, k: 0.7 * x, chain.sigma, chain.shape)
    x, st = speculative_sample(chain, make_drafter("independent", draft_chain=bad), 20000, window=8, seed=11,
                               options=mutant_options("no-reflection", SampleOptions(dtype=torch.float64)))
    assert st.acceptance_rate < 0.99  # the rejection path is exercised
    assert _battery(x.numpy(), m, v).rejected


def test_stats_fields_declare_their_kind_and_pool_by_it():
    """Every SpecStats field has a kind; two halves of a run pooled by kind give the whole run's counts (but
    rounds_total, the batch loop's rounds, which adds up per shard), and to_dict writes the setting and count
    fields (and the derived rates), not the per-trajectory and per-step ones."""
    import dataclasses

    from specverify.cli.sharding import merge_stats
    from specverify.sampler.speculative import KINDS, SpecStats

    assert {SpecStats.kind(f.name) for f in dataclasses.fields(SpecStats)} == set(KINDS)
    chain = _chains()["gmm-ddpm"]
    table = TableNoise.draw(8, chain.n_steps, chain.shape, seed=1, dtype=torch.float64)
    x0 = chain.prior(8, torch.Generator().manual_seed(2), dtype=torch.float64)
    o = SampleOptions(noise=table, x0=x0, dtype=torch.float64)
    _, whole = speculative_sample(chain, make_drafter("frozen-denoiser"), 8, window=4, options=o)
    halves = [speculative_sample(chain, make_drafter("frozen-denoiser"), 4, window=4, options=dataclasses.replace(
        o, x0=x0[i:i + 4], noise=TableNoise(table.z[i:i + 4], table.u[i:i + 4])))[1] for i in (0, 4)]
    merged = merge_stats([{f.name: np.asarray(getattr(h, f.name)) for f in dataclasses.fields(h)} for h in halves])
    m, w = merged.to_dict(), whole.to_dict()
    assert m.pop("rounds_total") == sum(h.rounds_total for h in halves)  # batch loops: each shard runs its own
    w.pop("rounds_total")
    assert m == w
    assert np.array_equal(merged.rounds, whole.rounds)
    written = {f.name for f in dataclasses.fields(SpecStats) if SpecStats.kind(f.name) in ("setting", "count")}
    assert written <= set(whole.to_dict()) and not {"rounds", "accepted_per_step"} & set(whole.to_dict())
