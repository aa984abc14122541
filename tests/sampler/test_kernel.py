"""The round's parts (specverify.sampler.kernel): pure, vectorised drafting equal to the loop, mutants as parts."""

import dataclasses

import numpy as np
import pytest
import torch

from specverify.sampler import kernel
from specverify.sampler.drafters import make_drafter
from specverify.sampler.drafters.medusa import Heads
from specverify.sampler.mutants import MUTANTS
from specverify.sampler.noise import TableNoise
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import GMMProblem
from specverify.sampler.speculative import POLICIES, ROUND_POLICIES


def _env(drafter, policy="accepted+1", *, vectorise=True, window=6, steps=30, n=16):
    chain = GMMProblem(dim=3).chain(steps, sampler="ddim", eta=0.7).to(dtype=torch.float64)
    noise = TableNoise.draw(n, steps, chain.shape, seed=0, dtype=torch.float64)
    x = chain.prior(n, torch.Generator().manual_seed(1), dtype=torch.float64)
    env = kernel.make_env(chain, drafter, noise, x, kernel.RoundConfig(window, POLICIES[policy]))
    return dataclasses.replace(env, vectorise=vectorise), kernel.init_state(x, torch.arange(n))


def _advance(env, state, rounds):
    for _ in range(rounds):
        state, _ = kernel.round_step(env, state)
    return state


@pytest.mark.parametrize("name", ["frozen-drift", "frozen-denoiser", "medusa"])
def test_affine_draft_equals_the_loop(name):
    """A whole window drafted at once (cumulative products) equals the position-by-position loop to rounding."""
    drafter = make_drafter(name, **({"heads": Heads(3, 30, 7).to(torch.float64)} if name == "medusa" else {}))
    env, state = _env(drafter)
    state = _advance(env, state, 3)  # anchored, mid-chain, rows at different steps
    noise = kernel.draw_noise(env, state)
    fast = kernel.draft(env, state, noise)
    slow = kernel.draft(dataclasses.replace(env, vectorise=False), state, noise)
    assert drafter.affine(env.chain, None if not drafter.needs_anchor else drafter.start(
        env.chain, state.anchor_x, state.anchor_k, state.anchor_f), state.k[:, None]) is not None
    torch.testing.assert_close(fast.Y, slow.Y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(fast.mean_q, slow.mean_q, rtol=1e-12, atol=1e-12)
    assert torch.equal(fast.span, slow.span)


@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_round_is_pure(policy):
    """round_step reads its state and returns a new one: the input tensors are left as they were."""
    env, state = _env(make_drafter("frozen-denoiser"), policy)
    state = _advance(env, state, 2)
    before = {f.name: getattr(state, f.name).clone() for f in dataclasses.fields(state)}
    new, info = kernel.round_step(env, state)
    for name, value in before.items():
        assert torch.equal(getattr(state, name), value), name
    assert (new.k >= state.k).all() and info.k.shape == state.k.shape


def test_accepted_plus_one_commits_accepted_plus_one():
    """Per row and round: the step moves by the accepted drafts plus one (the reflected draw or the bonus step),
    up to the chain's end; window-start moves by at most the window, and by 0 on a warm-up."""
    env, state = _env(make_drafter("frozen-drift"))
    for _ in range(6):
        new, info = kernel.round_step(env, state)
        active = state.k < env.T
        assert torch.equal((new.k - state.k)[active], torch.clamp(info.n_acc + 1, max=env.T - state.k)[active])
        state = new
    env, state = _env(make_drafter("frozen-drift"), "window-start")
    for _ in range(6):
        new, info = kernel.round_step(env, state)
        assert ((new.k - state.k) <= env.L).all() and (new.k[info.warmup] == state.k[info.warmup]).all()
        state = new


def test_policies_are_replaced_parts_of_the_default_round():
    """Every policy name has its record; accepted+1 is the kernel's round as it stands, window-start replaces parts
    of it (its own module) and keeps the rest."""
    from specverify.sampler import window_start

    assert tuple(POLICIES) == ROUND_POLICIES and all(p.name == name for name, p in POLICIES.items())
    default, ws = POLICIES["accepted+1"], POLICIES["window-start"]
    assert default.commit is kernel.commit_accepted_plus_one and default.anchor is kernel.anchor_latest
    assert (ws.start, ws.anchor, ws.commit) == (window_start.free_steps, window_start.fresh_anchor, window_start.commit)


def test_every_mutant_replaces_exactly_one_part():
    from specverify.sampler.verifiers import verifier_parts

    for m in MUTANTS.values():
        default = verifier_parts(m.verifier, m.drafts)  # the parts of the verifier the mutant breaks
        changed = [f.name for f in dataclasses.fields(default)
                   if getattr(m.parts, f.name) is not getattr(default, f.name)]
        assert len(changed) == 1, (m.name, changed)
        assert (changed[0] == "coupling") == (m.level == "coupling"), m.name


def _gmm_run(**kw):
    from specverify.sampler.speculative import speculative_sample

    chain = GMMProblem(dim=3).chain(12)
    return speculative_sample(chain, make_drafter("frozen-denoiser"), 8, window=3, seed=5,
                              options=SampleOptions(dtype=torch.float64, **kw))


@pytest.mark.parametrize("policy", ROUND_POLICIES)
def test_compiled_core_traces_to_the_same_run(policy):
    """compile= runs the round's core through torch.compile; with the tracing-only backend the run is the
    eager run bit for bit (the noise is drawn outside the compiled core, so the seed means the same)."""
    x, st = _gmm_run(policy=policy)
    xc, stc = _gmm_run(policy=policy, compile="eager")
    assert torch.equal(x, xc) and np.array_equal(st.rounds, stc.rounds)


def test_compiled_core_is_not_recompiled_for_every_batch_size():
    """A batch shrinks as its rows finish (compaction); the compiled core then recompiles once, with dynamic
    shapes, not once per batch size (a per-size cache inside the core used to force that, up to dynamo's limit)."""
    from specverify.sampler.speculative import speculative_sample

    graphs = []

    def counting(gm, example_inputs):
        graphs.append(len(example_inputs))
        return gm.forward

    torch._dynamo.reset()
    chain = GMMProblem(dim=2).chain(40)
    _, st = speculative_sample(chain, make_drafter("frozen-drift"), 512, window=4, seed=0,
                               options=SampleOptions(compile=counting))
    sizes = {int(r) for r in st.rounds}
    assert len(sizes) > 3  # rows finish in different rounds, so the batch is compacted more than once
    assert len(graphs) <= 2, f"the core was compiled {len(graphs)} times"


@pytest.mark.slow
def test_compiled_core_with_inductor_matches_eager():
    """The default backend (generated code, float64): the same accept decisions and the same output to rounding."""
    x, st = _gmm_run()
    xc, stc = _gmm_run(compile=True)
    torch.testing.assert_close(x, xc, rtol=1e-10, atol=1e-10)
    assert np.array_equal(st.rounds, stc.rounds)
    assert st.accepted_per_position.tolist() == stc.accepted_per_position.tolist()
