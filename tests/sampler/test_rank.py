"""Rank-selection verifiers (``rank``, ``rank-max``, ``rank-uniform``; ``specverify.sampler.rank``).

Exact tests first (acceptance figures of ../shared/VERIFIERS.md, uniform weights reduce to the single-draft
acceptance, the residual's inverse CDF against quadrature, the sign changes against a 64 times finer grid, the
sampler's acceptance against the judge's twin, the oracle identity, row counting), then node-level Monte Carlo
tests of the output law and of the kernel contract (declared alpha, fixed seeds), then whole runs of the
linear-Gaussian chain against its exact law and innovations; the two rank mutants fail the same tests.
"""

import dataclasses
import functools
import math

import pytest
import torch
from scipy import integrate, stats

from specverify.harness.multidraft_check import check_multidraft
from specverify.harness.node_laws import rank_acceptance
from specverify.sampler import rank, verifiers
from specverify.sampler.drafters import make_drafter
from specverify.sampler.mutants import _realised_pick, _unsorted_pick
from specverify.sampler.noise import TableNoise
from specverify.sampler.options import SampleOptions
from specverify.sampler.speculative import plain_sample, speculative_sample
from tests.sampler.test_speculative import _chains
from tests.sampler.test_verifiers import _run, _TableAndFresh

ALPHA = 1e-3  # false-failure rate of each statistical test in this file
F64 = torch.float64


def _acc(delta, K, kind):
    d = torch.tensor([delta], dtype=F64)
    return 1 - float(rank.residual_mass(d, rank.rank_weights(d, K, kind))[0])


@pytest.mark.parametrize("delta,K,expected", [(1.0, 2, 0.790), (1.0, 4, 0.896), (1.0, 8, 0.946), (0.5, 8, 0.992)])
def test_lp_acceptance_figures(delta, expected, K):
    assert round(_acc(delta, K, "lp"), 3) == expected


@pytest.mark.parametrize("K", [1, 3, 8])
@pytest.mark.parametrize("delta", [0.01, 0.7, 3.0])
def test_uniform_weights_give_the_single_draft_acceptance(delta, K):
    assert _acc(delta, K, "uniform") == pytest.approx(math.erfc(delta / (2 * math.sqrt(2))), abs=1e-12)


@pytest.mark.parametrize("kind", rank.RANK_WEIGHTS)
@pytest.mark.parametrize("K", [2, 5, 8])
def test_acceptance_matches_the_judges_twin(kind, K):
    """The sampler's 1 - (residual mass) against the judge's own LP and quadrature (node_laws)."""
    for delta in (0.05, 0.6, 1.3, 4.0):
        assert _acc(delta, K, kind) == pytest.approx(float(rank_acceptance(delta, K, kind)), abs=2e-6)


@pytest.mark.parametrize("kind,K", [("lp", 8), ("max", 4), ("lp", 3)])
def test_residual_inverse_cdf_is_exact(kind, K):
    """The residual's mass below its draw at u, by quadrature of (f - g)_+, is u times its total."""
    delta = torch.tensor([0.4, 1.0, 2.5], dtype=F64)
    lam = rank.rank_weights(delta, K, kind)
    crossings = rank._crossings(delta[:, None], torch.log(lam))[0]
    for u in (0.1, 0.5, 0.93):
        s, total = rank.residual_projection(delta, lam, torch.full((3,), u, dtype=F64))
        for i in range(3):
            def dens(x, i=i):
                t = torch.tensor([[x]], dtype=F64)
                return max(0.0, math.exp(-(x - delta[i].item()) ** 2 / 2) / math.sqrt(2 * math.pi)
                           * (1 - math.exp(-rank.log_f_over_g(t, delta[i], torch.log(lam[i:i + 1])).item())))
            cuts = [c for c in crossings[i].tolist() if c < s[i].item()]  # quad needs the kinks
            below = integrate.quad(dens, -rank.REACH, s[i].item(), points=cuts or None, limit=400, epsabs=1e-13)[0]
            assert below == pytest.approx(u * total[i].item(), rel=1e-6, abs=1e-12)


@pytest.mark.parametrize("K", [4, 8])
def test_sign_changes_match_a_fine_grid(K, monkeypatch):
    """Every sign change of log f - log g with LP weights (pockets between two grid points included) is found:
    the same count and residual mass as on a grid 64 times finer, over 200 values of |D|."""
    delta = torch.exp(torch.linspace(-6, 3, 200, dtype=F64))
    lam = rank.rank_weights(delta, K, "lp")
    cross, _, hi, _ = rank._crossings(delta[:, None], torch.log(lam))
    mass = rank.residual_mass(delta, lam)
    monkeypatch.setattr(rank, "GRID", 64 * rank.GRID)
    fine, _, fine_hi, _ = rank._crossings(delta[:, None], torch.log(lam))
    assert torch.equal((cross < hi).sum(1), (fine < fine_hi).sum(1))
    torch.testing.assert_close(mass, rank.residual_mass(delta, lam), rtol=0, atol=1e-13)


def _node(kind, K, delta, n, seed, pick=rank.rank_pick):
    g = torch.Generator().manual_seed(seed)
    d = 3
    mp = torch.zeros(n, d, dtype=F64)
    mp[:, 0] = delta
    z = torch.randn(n, K, d, generator=g, dtype=F64)
    u = torch.rand(n, K + 1, generator=g, dtype=F64)
    coupling = verifiers.NodeCoupling(functools.partial(rank.rank_node, weights=kind, pick=pick), "rank selection")
    x, index = coupling(mp, torch.zeros(n, K, d, dtype=F64), torch.ones(n, dtype=F64), z, u)
    return x.numpy(), (index >= 0).numpy()


@pytest.mark.parametrize("kind,K,delta", [("lp", 4, 1.0), ("lp", 8, 0.5), ("max", 4, 2.0), ("uniform", 3, 1.0)])
def test_node_output_has_the_target_law(kind, K, delta):
    """x ~ N((delta, 0, 0), I): KS along e and across it, and the acceptance (exact binomial) against the
    judge's twin, each at ALPHA / 3."""
    x, took = _node(kind, K, delta, 20000, seed=K)
    assert stats.kstest(x[:, 0] - delta, "norm").pvalue > ALPHA / 3
    assert stats.kstest(x[:, 1], "norm").pvalue > ALPHA / 3
    p = float(rank_acceptance(delta, K, kind))
    assert stats.binomtest(int(took.sum()), took.size, p).pvalue > ALPHA / 3


@pytest.mark.parametrize("pick", [_unsorted_pick, _realised_pick])
def test_node_test_has_power(pick):
    """Negative controls: the rank-unsorted and rank-realised mutants' picks."""
    x, _ = _node("lp", 4, 1.0, 20000, seed=4, pick=pick)
    assert stats.kstest(x[:, 0] - 1.0, "norm").pvalue < ALPHA


def test_kernel_contract_passes_and_catches_a_realised_pick():
    assert check_multidraft(verifiers.rank_coupling, rule="rank", n=20000, seed=0).verdict == "pass"
    bad = verifiers.NodeCoupling(functools.partial(rank.rank_node, pick=_realised_pick), "rank selection")
    assert check_multidraft(bad, rule="rank", n=4000, seed=0).verdict == "fail"


@pytest.mark.parametrize("verifier,drafts", [("rank", 3), ("rank-max", 2), ("rank-uniform", 1)])
def test_oracle_equals_plain_and_counts_every_row(verifier, drafts):
    """Under the oracle every draft is accepted: the plain sampler's output, the single-draft rounds, and each
    round evaluates its start once and K times the drafted rows."""
    chain = _chains()["gmm-ddpm"]
    n = 12
    table = TableNoise.draw(n, chain.n_steps, chain.shape, seed=1, dtype=F64)
    x0 = chain.prior(n, torch.Generator().manual_seed(2), dtype=F64)
    o = SampleOptions(noise=_TableAndFresh(table, 3), x0=x0, dtype=F64)
    plain = plain_sample(chain, n, options=SampleOptions(noise=table, x0=x0, dtype=F64))
    _, one = speculative_sample(chain, make_drafter("oracle"), n, window=4, options=o)
    spec, st = speculative_sample(chain, make_drafter("oracle"), n, window=4,
                                  options=dataclasses.replace(o, verifier=verifier, drafts=drafts))
    assert st.acceptance_rate == 1.0 and torch.equal(plain, spec) and (st.rounds == one.rounds).all()
    starts = int(one.rounds.sum())
    assert st.target_evaluations - starts == drafts * (one.target_evaluations - starts)


@pytest.mark.parametrize("verifier", ["rank", "rank-max"])
def test_sampler_prediction_matches_its_acceptance(verifier):
    """Accepted steps against the sum of the sampler's per-step predictions (1 - residual mass at position 0,
    2 Phi(-|D| / 2) below), z-test with the exact variance sum p (1 - p), two-sided at ALPHA."""
    chain = _chains()["gmm-ddpm"]
    _, st = speculative_sample(chain, make_drafter("frozen-denoiser"), 400, window=4, seed=3,
                               options=SampleOptions(verifier=verifier, drafts=4))
    z = (st.accepted_per_sample.sum() - st.predicted_per_sample.sum()) / math.sqrt(st.predicted_var_per_sample.sum())
    assert abs(z) < stats.norm.isf(ALPHA / 2)


@pytest.mark.parametrize("verifier,drafts,policy", [("rank", 4, "accepted+1"), ("rank-max", 2, "window-start")])
def test_output_has_the_exact_law(verifier, drafts, policy):
    """Terminal samples against their exact law, and every step's innovation against N(0, I), one Holm family."""
    result = _run(verifier, drafts, policy)
    assert not result.rejected, result.summary()


@pytest.mark.slow(seconds=60)  # the default lane catches both picks at node level (test_node_test_has_power)
@pytest.mark.parametrize("name", ["rank-unsorted", "rank-realised"])
def test_the_same_battery_rejects_the_rank_mutants(name):
    assert _run(None, None, None, mutant=name).rejected
