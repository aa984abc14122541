"""The Medusa-like drafter: starts as the frozen denoiser, trains deterministically, caches, stays exact, and
raises acceptance over the frozen denoiser on gmm."""

import numpy as np
import pytest
import torch
from scipy import stats

from specverify.errors import SamplerError
from specverify.harness import reference as ref
from specverify.harness.stats import gaussian_one_sample
from specverify.sampler import cache
from specverify.sampler.drafters import make_drafter
from specverify.sampler.drafters.medusa import Heads, Medusa, cache_path, load_or_train, train_heads
from specverify.sampler.noise import TableNoise
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import make_problem
from specverify.sampler.speculative import speculative_sample
from specverify.specs import beta_schedule

ALPHA = 1e-3
SMALL = dict(n_traj=300, epochs=5, hidden=64, seed=0)


@pytest.fixture(scope="module")
def gmm():
    chain = make_problem("gmm", dim=2).chain(50)
    return chain, train_heads(chain, 6, **SMALL)


def test_untrained_heads_are_the_frozen_denoiser():
    chain = make_problem("gmm", dim=2).chain(30)
    noise = TableNoise.draw(200, chain.n_steps, chain.shape, seed=3, dtype=torch.float64)
    a, sa = speculative_sample(chain, Medusa(Heads(2, 30, 6).double()), 200, window=6, seed=4,
                               options=SampleOptions(noise=noise, dtype=torch.float64))
    b, sb = speculative_sample(chain, make_drafter("frozen-denoiser"), 200, window=6, seed=4,
                               options=SampleOptions(noise=noise, dtype=torch.float64))
    assert torch.equal(a, b) and (sa.rounds == sb.rounds).all()


def test_training_is_deterministic_and_cached(gmm, tmp_path):
    chain, heads = gmm
    again = train_heads(chain, 6, **SMALL)
    assert all(torch.equal(p, q) for p, q in zip(heads.state_dict().values(), again.state_dict().values(),
                                                  strict=True))
    first = load_or_train(chain, 6, key="t", cache=tmp_path, **SMALL)
    assert len(list(tmp_path.iterdir())) == 1
    second = load_or_train(chain, 6, key="t", cache=tmp_path, **SMALL)
    assert all(torch.equal(p, q) for p, q in zip(first.state_dict().values(), second.state_dict().values(),
                                                  strict=True))


def test_heads_are_cached_under_specverify_cache_from_any_working_directory(gmm, tmp_path, monkeypatch):
    chain, heads = gmm
    monkeypatch.setenv(cache.ENV, str(tmp_path / "root"))
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    first = load_or_train(chain, 6, key="t", **SMALL)  # the default cache
    assert not first.fit_info["cached"]
    assert list((tmp_path / "root" / "medusa").iterdir()) == [cache_path(chain, 6, key="t", **SMALL)]
    monkeypatch.chdir(tmp_path / "b")
    second = load_or_train(chain, 6, key="t", **SMALL)
    assert second.fit_info["cached"] and second.fit_info["seconds"] == first.fit_info["seconds"]
    assert all(torch.equal(p, q) for p, q in zip(heads.state_dict().values(), second.state_dict().values(),
                                                  strict=True))
    assert list((tmp_path / "a").iterdir()) == list((tmp_path / "b").iterdir()) == []


def test_medusa_raises_acceptance_over_the_frozen_denoiser(gmm):
    """Per-trajectory predicted acceptance (sum of 2 Phi(-|D|/2) over verified steps, per verified step) is
    higher with the heads: Welch t-test at ALPHA on independent runs."""
    chain, heads = gmm
    rates = []
    for d, seed in [(Medusa(heads), 1), (make_drafter("frozen-denoiser"), 2)]:
        _, st = speculative_sample(chain, d, 3000, window=6, seed=seed, options=SampleOptions(dtype=torch.float64))
        rates.append(st.predicted_per_sample / st.verified_per_sample)
    r = stats.ttest_ind(rates[0], rates[1], equal_var=False, alternative="greater")
    assert r.pvalue < ALPHA, (rates[0].mean(), rates[1].mean())


def test_medusa_output_has_the_exact_law():
    p = make_problem("gaussian", dim=2)
    chain = p.chain(20)
    law = ref.gaussian_chain_law(p.spec, ref.diffusion_transition(beta_schedule("linear", 20), "ddpm")).final
    x, _ = speculative_sample(chain, Medusa(train_heads(chain, 4, **SMALL)), 20000, window=4, seed=5,
                              options=SampleOptions(dtype=torch.float64))
    b = gaussian_one_sample(x.numpy(), law.mean, law.eigvals, law.eigvecs, ALPHA)
    assert not b.reject, b.summary()


def test_medusa_needs_heads_for_its_chain(gmm):
    with pytest.raises(SamplerError, match="needs heads"):
        make_drafter("medusa")
    with pytest.raises(SamplerError, match="trained for 50 steps"):
        speculative_sample(make_problem("gmm", dim=2).chain(40), Medusa(gmm[1]), 10, window=4)
    with pytest.raises(SamplerError, match="window >= 2"):
        train_heads(gmm[0], 1)
    assert np.isfinite(gmm[1].embed(torch.arange(50)).numpy()).all()


def test_training_that_cannot_fit_in_memory_is_refused_before_it_runs(monkeypatch):
    import os

    chain = make_problem("gmm", dim=2).chain(50)
    pages = {"SC_PAGE_SIZE": 4096, "SC_PHYS_PAGES": 64}  # a 256 KiB machine: 50 x 1000 x 5 x 2 x 12 bytes do not fit
    monkeypatch.setattr(os, "sysconf", lambda name: pages[name])
    with pytest.raises(SamplerError, match=r"fewer rollouts \(n_traj <= 21"):
        train_heads(chain, 6)
    train_heads(chain, 6, n_traj=20, epochs=1, hidden=8)  # what the message offers does fit
