"""The verifiers beyond reflection (block, dgrs; ``specverify.sampler.verifiers``).

Exact tests first (the residual's inverse CDF, K = 1 and L = 1 reduce to reflection's acceptance, closed-form
acceptance figures, the oracle identity, row counting, path recording, bad input), then node-level Monte Carlo
tests of the output law (declared alpha, fixed seeds), then one-sample tests of whole runs against the exact law
of a linear-Gaussian chain; the new mutants fail the same tests.
"""

import dataclasses
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from specverify.errors import SamplerError
from specverify.sampler.coupling import accept, acceptance_probability
from specverify.sampler.drafters import make_drafter
from specverify.sampler.mutants import mutant_options
from specverify.sampler.noise import GeneratorNoise, TableNoise
from specverify.sampler.options import SampleOptions
from specverify.sampler.residual import log_mass_above, residual_projection
from specverify.sampler.speculative import plain_sample, speculative_sample
from specverify.sampler.verifiers import VERIFIERS, block_prefix, dgrs_select
from tests._stats import standard_normal_battery
from tests.sampler.test_speculative import _chains, _linear_chain

ALPHA = 1e-3  # false-failure rate of each statistical test in this file
F64 = torch.float64
CASES = [(0.0, 0.0, 1.0), (math.log(0.3), 0.0, 0.7), (0.0, math.log(1.8), 2.0), (math.log(0.05), 0.0, 0.2)]


def _t(*a):
    return tuple(torch.full((1,), float(v), dtype=F64) for v in a)


@pytest.mark.parametrize("log_a,log_b,delta", CASES)
def test_residual_inverse_cdf_is_exact(log_a, log_b, delta):
    """log R(S(u)) - log R(t) = log(1 - u) to rounding: the bisection inverts the residual's own tail mass (here
    also where R(t) is ~1e-51)."""
    la, lb, d = (torch.full((999,), float(v), dtype=F64) for v in (log_a, log_b, delta))
    u = torch.linspace(0.001, 0.999, 999, dtype=F64)
    s = residual_projection(la, lb, d, u)
    t = d / 2 + (lb - la) / d
    torch.testing.assert_close(log_mass_above(s, la, lb, d) - log_mass_above(t, la, lb, d), torch.log1p(-u), rtol=0,
                               atol=1e-9)
    assert bool((s >= t).all()) and bool((torch.diff(s) > 0).all())


@pytest.mark.parametrize("log_a,log_b,delta", CASES)
def test_residual_law(log_a, log_b, delta):
    """KS test of S(U) against the residual's CDF computed by quadrature of its density (alpha = ALPHA)."""
    a, b = math.exp(log_a), math.exp(log_b)
    t = delta / 2 + (log_b - log_a) / delta
    dens = lambda s: max(a * stats.norm.pdf(s - delta) - b * stats.norm.pdf(s), 0.0)  # noqa: E731
    total = integrate.quad(dens, t, np.inf)[0]
    cdf = np.vectorize(lambda s: integrate.quad(dens, t, s)[0] / total if s > t else 0.0)
    u = torch.rand(4000, generator=torch.Generator().manual_seed(1), dtype=F64)
    s = residual_projection(*(torch.full((4000,), v, dtype=F64) for v in (log_a, log_b, delta)), u)
    assert stats.kstest(s.numpy(), cdf).pvalue > ALPHA


def test_dgrs_with_one_draft_is_reflection_acceptance():
    g = torch.Generator().manual_seed(2)
    log_rho = 2 * torch.randn(5000, 1, generator=g, dtype=F64)
    dist = torch.rand(5000, generator=g, dtype=F64) * 3 + 0.01
    u = torch.rand(5000, 1, generator=g, dtype=F64)
    chosen, log_lam, p = dgrs_select(log_rho, dist, u, 1e-7)
    assert torch.equal(chosen == 0, accept(u[:, 0], torch.clamp(log_rho[:, 0], max=0.0)))
    torch.testing.assert_close(p, acceptance_probability(dist), rtol=1e-12, atol=0)
    assert bool((log_lam == 0).all())


@pytest.mark.parametrize("delta,expected", [(1.0, (0.617, 0.714, 0.798, 0.864)), (2.0, (0.317, 0.404, 0.497, 0.588))])
def test_dgrs_node_acceptance_figures(delta, expected):
    """1 - G_{K+1} at K = 1, 2, 4, 8 (../shared/VERIFIERS.md, three decimals)."""
    for K, want in zip((1, 2, 4, 8), expected, strict=True):
        _, _, p = dgrs_select(torch.zeros(1, K, dtype=F64), torch.tensor([delta], dtype=F64), torch.ones(1, K,
                                                                                                     dtype=F64), 1e-7)
        assert round(float(p), 3) == want


def _node(K, delta, n, seed, select=dgrs_select):
    """Node-level D-GRS in the projection: K drafts S_k ~ N(0, 1); returns the output S and the accepted flags."""
    g = torch.Generator().manual_seed(seed)
    S = torch.randn(n, K, generator=g, dtype=F64)
    u = torch.rand(n, K + 1, generator=g, dtype=F64)
    d = torch.full((n,), delta, dtype=F64)
    chosen, log_lam, p = select(delta * S - delta**2 / 2, d, u[:, :K], 1e-7)
    res = residual_projection(torch.zeros(n, dtype=F64), log_lam, d, u[:, K])
    took = chosen < K
    out = torch.where(took, S.gather(1, torch.clamp(chosen, max=K - 1)[:, None])[:, 0], res)
    return out.numpy(), took.numpy(), p.numpy()


@pytest.mark.parametrize("K,delta", [(1, 1.0), (2, 0.5), (4, 1.0), (8, 2.0)])
def test_dgrs_node_output_has_the_target_law(K, delta):
    """Output projection ~ N(delta, 1) (KS), acceptance = 1 - G_{K+1} (exact binomial), each at ALPHA / 2."""
    out, took, p = _node(K, delta, 20000, seed=K)
    assert stats.kstest(out - delta, "norm").pvalue > ALPHA / 2
    assert stats.binomtest(int(took.sum()), took.size, float(p[0])).pvalue > ALPHA / 2


def test_dgrs_node_test_has_power():
    """Negative control: the drafts sorted before the sequence coupling (the dgrs-sorted mutant's rule)."""
    from specverify.sampler.mutants import _sorted_select

    out, _, _ = _node(4, 1.0, 20000, seed=4, select=_sorted_select)
    assert stats.kstest(out - 1.0, "norm").pvalue < ALPHA


def test_block_with_one_position_is_reflection_acceptance():
    g = torch.Generator().manual_seed(3)
    lr = 2 * torch.randn(5000, 1, generator=g, dtype=F64)
    dist = torch.rand(5000, 1, generator=g, dtype=F64) + 0.01
    u = torch.rand(5000, 1, generator=g, dtype=F64)
    tau, _, p = block_prefix(lr, dist, torch.ones(5000, dtype=torch.long), u, 1e-7)
    assert torch.equal(tau == 1, accept(u[:, 0], torch.clamp(lr[:, 0], max=0.0)))
    torch.testing.assert_close(p[:, 0], torch.exp(torch.clamp(lr[:, 0], max=0.0)), rtol=1e-12, atol=0)


def test_block_accepts_a_window_whose_ratios_are_all_above_one():
    lr, u = torch.rand(50, 6, dtype=F64), torch.rand(50, 6, dtype=F64)  # log r >= 0: c stays 1, every h is 1
    tau, log_c, p = block_prefix(lr, torch.rand(50, 6, dtype=F64) + 0.1, torch.full((50,), 6), u, 1e-7)
    assert bool((tau == 6).all()) and bool((log_c == 0).all()) and bool((p == 1).all())


class _TableAndFresh(TableNoise):
    """Table noise per (sample, step), and a generator for the verifiers' fresh draws."""

    def __init__(self, table, seed):
        super().__init__(table.z, table.u)
        self.fresh = GeneratorNoise(seed)

    def fresh_normal(self, like):
        return self.fresh.fresh_normal(like)

    def fresh_uniform(self, shape, device):
        return self.fresh.fresh_uniform(shape, device)


@pytest.mark.parametrize("name", ["gmm-ddpm", "image", "langevin"])
@pytest.mark.parametrize("verifier,drafts", [("block", 1), ("dgrs", 1), ("dgrs", 3)])
@pytest.mark.parametrize("policy", ["accepted+1", "window-start"])
def test_oracle_equals_plain(name, verifier, drafts, policy):
    chain = _chains()[name]
    n = 12
    table = TableNoise.draw(n, chain.n_steps, chain.shape, seed=1, dtype=F64)
    x0 = chain.prior(n, torch.Generator().manual_seed(2), dtype=F64)
    plain = plain_sample(chain, n, options=SampleOptions(noise=table, x0=x0, dtype=F64))
    o = SampleOptions(noise=_TableAndFresh(table, 3), x0=x0, dtype=F64, policy=policy, verifier=verifier,
                      drafts=drafts)
    spec, st = speculative_sample(chain, make_drafter("oracle"), n, window=4, options=o)
    assert st.acceptance_rate == 1.0 and torch.equal(plain, spec)
    assert (st.verifier, st.drafts) == (verifier, drafts)


def test_dgrs_counts_every_target_row():
    """Under the oracle the rounds are the same; each round evaluates its start and K times the drafted rows."""
    chain = _chains()["gmm-ddpm"]
    table = TableNoise.draw(10, chain.n_steps, chain.shape, seed=1, dtype=F64)
    o = SampleOptions(noise=_TableAndFresh(table, 3), x0=chain.prior(10, torch.Generator().manual_seed(2), dtype=F64),
                      dtype=F64)
    _, one = speculative_sample(chain, make_drafter("oracle"), 10, window=5, options=o)
    for K in (2, 5):
        _, st = speculative_sample(chain, make_drafter("oracle"), 10, window=5,
                                   options=dataclasses.replace(o, verifier="dgrs", drafts=K))
        assert st.rounds_total == one.rounds_total and (st.rounds == one.rounds).all()
        starts = int(one.rounds.sum())  # every row's round evaluates its window start once
        assert st.target_evaluations - starts == K * (one.target_evaluations - starts)
        assert st.draft_evaluations == K * one.draft_evaluations


@pytest.mark.parametrize("verifier,drafts", [("block", 1), ("dgrs", 4)])
def test_path_ends_at_the_samples(verifier, drafts):
    chain = _chains()["gmm-ddpm"]
    o = SampleOptions(dtype=F64, verifier=verifier, drafts=drafts)
    x, _ = speculative_sample(chain, make_drafter("frozen-denoiser"), 30, window=4, seed=5, options=o)
    path, _ = speculative_sample(chain, make_drafter("frozen-denoiser"), 30, window=4, seed=5,
                                 options=dataclasses.replace(o, path=True))
    assert torch.equal(path[:, -1], x) and bool(torch.isfinite(path).all())


def test_bad_verifier_options():
    chain = _chains()["gmm-ddpm"]
    d = make_drafter("frozen-drift")
    with pytest.raises(SamplerError, match="unknown verifier"):
        speculative_sample(chain, d, 4, window=2, options=SampleOptions(verifier="medusa"))
    with pytest.raises(SamplerError, match="one draft per step"):
        speculative_sample(chain, d, 4, window=2, options=SampleOptions(drafts=2))
    with pytest.raises(SamplerError, match="drafts must be an int >= 1"):
        speculative_sample(chain, d, 4, window=2, options=SampleOptions(verifier="dgrs", drafts=0))
    table = TableNoise.draw(4, chain.n_steps, chain.shape, dtype=torch.float32)
    with pytest.raises(SamplerError, match="fresh noise"):
        speculative_sample(chain, d, 4, window=2, options=SampleOptions(verifier="block", noise=table))
    from specverify.cli.parser import MULTI_DRAFT as CLI_MULTI
    from specverify.cli.parser import VERIFIERS as CLI_VERIFIERS
    from specverify.sampler.verifiers import MULTI_DRAFT

    assert VERIFIERS == CLI_VERIFIERS == ("reflection", "block", "dgrs", "rank", "rank-max", "rank-uniform")
    assert MULTI_DRAFT == CLI_MULTI  # the parser's copies (no torch at --help)


def _poor_drafter(chain):
    from specverify.sampler.chains import gaussian_chain

    return make_drafter("independent", draft_chain=gaussian_chain(lambda x, k: 0.7 * x, chain.sigma, chain.shape))


def _innovations(chain, path):
    """(x_{k+1} - m(x_k, k)) / sigma_k at every step of every path, pooled: iid N(0, I) rows for an exact sampler;
    and each one's coordinate along e = (m_p - m_q) / |m_p - m_q| (the poor drafter's m_q = 0.7 x), a function of
    the past: N(0, 1) too, and where a wrong residual shows."""
    n, T = path.shape[0], path.shape[1] - 1
    k = torch.arange(T).repeat(n)
    x = path[:, :-1].flatten(0, 1)
    m = chain.mean(x, k)
    w = (path[:, 1:].flatten(0, 1) - m) / torch.tensor(chain.sigma, dtype=path.dtype)[k].view(-1, 1)
    e = m - 0.7 * x
    along = (w * e).sum(1, keepdim=True) / torch.linalg.vector_norm(e, dim=1, keepdim=True)
    return [w.numpy(), along.numpy()]


def _run(verifier, drafts, policy, mutant=None):
    """The linear chain's paths under a poor drafter: the terminal samples whitened, and the pooled innovations."""
    chain, m, v = _linear_chain()
    if mutant:
        o = mutant_options(mutant, SampleOptions(dtype=F64, path=True))
    else:
        o = SampleOptions(dtype=F64, path=True, policy=policy, verifier=verifier, drafts=drafts)
    path, st = speculative_sample(chain, _poor_drafter(chain), N_PATHS, window=6, seed=11, options=o)
    assert st.acceptance_rate < 0.99  # the rejection path is exercised
    return standard_normal_battery([(path[:, -1].numpy() - m) / np.sqrt(v), *_innovations(chain, path)], ALPHA,
                                   method="asymp")


N_PATHS = 4000


@pytest.mark.parametrize("verifier,drafts,policy", [("block", 1, "accepted+1"), ("dgrs", 4, "accepted+1"),
                                                    ("dgrs", 2, "window-start"), ("block", 1, "window-start")])
def test_output_has_the_exact_law(verifier, drafts, policy):
    """Terminal samples against their exact law, and every step's innovation against N(0, I), one Holm family."""
    result = _run(verifier, drafts, policy)
    assert not result.rejected, result.summary()


@pytest.mark.parametrize("name", ["block-hazard-c", "block-token-residual", "block-bracket", "dgrs-sorted",
                                  "dgrs-bracket"])
def test_the_same_battery_rejects_the_new_mutants(name):
    assert _run(None, None, None, mutant=name).rejected
