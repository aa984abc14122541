"""The committed path (``path=True``): exact tests, no statistics.

Endpoints equal the run without path, the oracle's path equals the plain sampler's under injected noise, every
transition is consistent with the chain (zero-noise steps are the mean, the plain path's innovations are the
injected noise), batches and compaction change nothing, the compiled core records the same path, mutants record.
"""

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from specverify.sampler import kernel, window_start
from specverify.sampler import speculative as spec_mod
from specverify.sampler.chains import gaussian_chain
from specverify.sampler.drafters import make_drafter
from specverify.sampler.mutants import mutant_options
from specverify.sampler.noise import TableNoise
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import GMMProblem
from specverify.sampler.speculative import ROUND_POLICIES, plain_sample, speculative_sample

F64 = torch.float64


def _gmm(steps=20):
    return GMMProblem(dim=2).chain(steps)


def _zero_chain(steps=16):
    """A nonlinear chain with zero-noise steps inside (4, 9, 10) and at the end: direct steps, and under
    window-start free steps (a full window ending at a zero-noise step keeps the anchor that step needs)."""
    sigma = np.full(steps, 0.4)
    sigma[[4, 9, 10, steps - 1]] = 0.0

    def mean(x, k):
        return 0.9 * x + 0.1 * torch.tanh(x) * (1 + k.to(x.dtype)).view(-1, 1) / steps

    return gaussian_chain(mean, sigma, (2,))


def _drafter(name, chain):
    if name == "independent":
        target32 = chain.to(dtype=torch.float32)  # a perturbed copy of the target on the same schedule
        return make_drafter("independent", draft_chain=gaussian_chain(
            lambda x, k: 0.95 * target32.mean(x, k), chain.sigma, chain.shape))
    return make_drafter(name)


def _x0(chain, n, seed=2):
    return chain.prior(n, torch.Generator().manual_seed(seed), dtype=F64)


def _step_means(chain, path):
    """m(path[:, k], k) for k = 0 .. T - 1, shape (n, T, *shape)."""
    c = chain.to(dtype=F64)
    n, T = path.shape[0], chain.n_steps
    return torch.stack([c.mean(path[:, k], torch.full((n,), k, dtype=torch.long)) for k in range(T)], 1)


def _check_transitions(chain, path):
    """Zero-noise steps are the mean (to 1e-12); the other steps' innovations are finite. Returns them."""
    m = _step_means(chain, path)
    sig = torch.tensor(np.array(chain.sigma), dtype=F64)
    zero = sig == 0
    torch.testing.assert_close(path[:, 1:][:, zero], m[:, zero], rtol=0, atol=1e-12)
    z = (path[:, 1:][:, ~zero] - m[:, ~zero]) / sig[~zero].view(1, -1, *[1] * (path.ndim - 2))
    assert torch.isfinite(z).all() and not torch.isnan(z).any()
    return z


@pytest.mark.parametrize("policy", ROUND_POLICIES)
@pytest.mark.parametrize("window", [1, 3, 8])
@pytest.mark.parametrize("drafter", ["frozen-denoiser", "independent"])
@pytest.mark.parametrize("chain_name", ["gmm", "zero"])
def test_path_ends_where_the_run_ends(policy, window, drafter, chain_name):
    """path[:, 0] = x0 and path[:, T] = the x_T of the same seeded run without path, bit for bit; the stats are
    those of the run without path; every transition is consistent with the chain."""
    chain = _gmm() if chain_name == "gmm" else _zero_chain()
    n = 40
    o = SampleOptions(x0=_x0(chain, n), dtype=F64, policy=policy)
    x, st = speculative_sample(chain, _drafter(drafter, chain), n, window=window, seed=7, options=o)
    path, stp = speculative_sample(chain, _drafter(drafter, chain), n, window=window, seed=7,
                                   options=dataclasses.replace(o, path=True))
    assert path.shape == (n, chain.n_steps + 1, *chain.shape) and path.dtype == F64
    assert torch.equal(path[:, -1], x)
    assert torch.equal(path[:, 0], o.x0)
    assert st.to_dict() == stp.to_dict()
    _check_transitions(chain, path)


def test_plain_path_ends_where_the_run_ends():
    chain = _zero_chain()
    x = plain_sample(chain, 30, seed=4, options=SampleOptions(x0=_x0(chain, 30), dtype=F64))
    path = plain_sample(chain, 30, seed=4, options=SampleOptions(x0=_x0(chain, 30), dtype=F64, path=True))
    assert path.shape == (30, chain.n_steps + 1, 2)
    assert torch.equal(path[:, -1], x) and torch.equal(path[:, 0], _x0(chain, 30))


@pytest.mark.parametrize("policy", ROUND_POLICIES)
@pytest.mark.parametrize("window", [1, 3, 8])
@pytest.mark.parametrize("chain_name", ["gmm", "zero"])
def test_oracle_path_is_the_plain_path(policy, window, chain_name):
    """Under TableNoise the oracle drafter's committed path is the plain sampler's path, every step."""
    chain = _gmm() if chain_name == "gmm" else _zero_chain()
    n = 24
    noise = TableNoise.draw(n, chain.n_steps, chain.shape, seed=1, dtype=F64)
    o = SampleOptions(noise=noise, x0=_x0(chain, n), dtype=F64, path=True)
    plain = plain_sample(chain, n, options=o)
    path, st = speculative_sample(chain, make_drafter("oracle"), n, window=window,
                                  options=dataclasses.replace(o, policy=policy))
    assert st.acceptance_rate == 1.0
    assert torch.equal(path, plain)


@pytest.mark.parametrize("chain_name", ["gmm", "zero"])
def test_plain_path_innovations_are_the_injected_noise(chain_name):
    chain = _gmm() if chain_name == "gmm" else _zero_chain()
    n = 30
    noise = TableNoise.draw(n, chain.n_steps, chain.shape, seed=3, dtype=F64)
    path = plain_sample(chain, n, options=SampleOptions(noise=noise, x0=_x0(chain, n), dtype=F64, path=True))
    z = _check_transitions(chain, path)
    torch.testing.assert_close(z, noise.z[:, chain.sigma > 0], rtol=0, atol=1e-10)


@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_window_start_free_steps_are_recorded(policy, monkeypatch):
    """The zero-noise chain takes free steps under window-start (checked), and their states are in the path:
    the transitions stay consistent and the oracle path is still the plain one."""
    taken = []

    def counting(env, s):
        new, free = window_start.free_steps(env, s)
        taken.append(int(free.sum()))
        return new, free

    monkeypatch.setitem(spec_mod.POLICIES, "window-start", dataclasses.replace(window_start.WINDOW_START,
                                                                                 start=counting))
    chain, n = _zero_chain(), 40
    path, _ = speculative_sample(chain, make_drafter("frozen-drift"), n, window=4, seed=1,
                                 options=SampleOptions(x0=_x0(chain, n), dtype=F64, policy=policy, path=True))
    _check_transitions(chain, path)
    assert (sum(taken) > 0) == (policy == "window-start")


@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_batches_and_compaction_record_the_same_path(policy, monkeypatch):
    """n = 100 in batches of 40 (rows dropped as they finish: checked) records what one batch records."""
    compactions = []
    compact = spec_mod._compact

    def counting(n_active, state):
        out = compact(n_active, state)
        compactions.append(out)
        return out

    monkeypatch.setattr(spec_mod, "_compact", counting)
    chain, n = _gmm(), 100
    noise = TableNoise.draw(n, chain.n_steps, chain.shape, seed=5, dtype=F64)
    o = SampleOptions(noise=noise, x0=_x0(chain, n), dtype=F64, policy=policy, path=True)
    one, st1 = speculative_sample(chain, make_drafter("frozen-denoiser"), n, window=3, options=o)
    assert any(compactions)
    compactions.clear()
    many, st2 = speculative_sample(chain, make_drafter("frozen-denoiser"), n, window=3,
                                   options=dataclasses.replace(o, max_batch=40))
    assert any(compactions)
    assert torch.equal(one, many)
    assert np.array_equal(st1.rounds, st2.rounds)


def _compile_run(policy, **kw):
    chain = _gmm(10)
    return speculative_sample(chain, make_drafter("frozen-denoiser"), 8, window=3, seed=5,
                              options=SampleOptions(x0=_x0(chain, 8), dtype=F64, policy=policy, **kw))


_NO_DYNAMO = not hasattr(torch, "compile") or not torch._dynamo.is_dynamo_supported()


@pytest.mark.skipif(_NO_DYNAMO, reason="torch.compile is not available here")
@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_compiled_core_records_the_same_path(policy):
    """The traced core (tracing-only backend) records the eager path bit for bit."""
    path, _ = _compile_run(policy, path=True)
    torch._dynamo.reset()
    xc, _ = _compile_run(policy, compile="eager")
    pc, _ = _compile_run(policy, compile="eager", path=True)
    assert torch.equal(pc, path) and torch.equal(pc[:, -1], xc)


@pytest.mark.slow(seconds=120)
@pytest.mark.skipif(_NO_DYNAMO or shutil.which("cc") is None and shutil.which("g++") is None,
                    reason="torch.compile with inductor is not available here")
@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_inductor_core_records_the_same_path(policy):
    """The default backend (generated code): the same path to rounding; its end is its own x_T, bit for bit."""
    path, _ = _compile_run(policy, path=True)
    xc, _ = _compile_run(policy, compile=True)
    pc, _ = _compile_run(policy, compile=True, path=True)
    torch.testing.assert_close(pc, path, rtol=1e-10, atol=1e-10)
    assert torch.equal(pc[:, -1], xc)


@pytest.mark.parametrize("name", ["continue-after-reject", "noise-reused", "no-reflection"])
def test_mutants_record_their_path(name):
    chain, n = _gmm(), 30
    o = SampleOptions(x0=_x0(chain, n), dtype=F64)
    x, _ = speculative_sample(chain, make_drafter("stress"), n, window=4, seed=2, options=mutant_options(name, o))
    path, _ = speculative_sample(chain, make_drafter("stress"), n, window=4, seed=2,
                                 options=mutant_options(name, dataclasses.replace(o, path=True)))
    assert path.shape == (n, chain.n_steps + 1, 2)
    assert torch.equal(path[:, -1], x) and torch.equal(path[:, 0], o.x0)
    assert torch.isfinite(path).all()


def test_no_window_is_returned_without_path():
    """Without path the core returns the plain RoundInfo (nothing extra kept or computed)."""
    chain = _gmm().to(dtype=F64)
    x = _x0(chain, 6)
    config = kernel.RoundConfig(3, spec_mod.POLICIES["accepted+1"], kernel.Parts())
    env = kernel.make_env(chain, make_drafter("frozen-denoiser"), TableNoise.draw(6, 20, (2,), dtype=F64), x, config)
    _, info = kernel.round_step(env, kernel.init_state(x, torch.arange(6)))
    assert type(info) is kernel.RoundInfo
    env = kernel.make_env(chain, make_drafter("frozen-denoiser"), TableNoise.draw(6, 20, (2,), dtype=F64), x,
                          dataclasses.replace(config, record=True))
    _, info = kernel.round_step(env, kernel.init_state(x, torch.arange(6)))
    assert isinstance(info, kernel.RecordedRound) and info.Y.shape == (6, 4, 2)
