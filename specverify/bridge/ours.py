"""Our sampler, the one way the faces start it: :class:`Ours` (every option), :func:`run_ours`, and
:func:`make_candidate` (our sampler as the black box ``candidate(n, seed)`` the harness judges); the built-in
drafters for a problem (:func:`make_builtin_drafter`). Part of the door (:mod:`specverify.bridge`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from specverify.errors import UsageError

if TYPE_CHECKING:
    from specverify.bridge.setups import Setup

__all__ = ["Built", "Ours", "make_builtin_drafter", "make_candidate", "run_ours"]


def make_builtin_drafter(setup: Setup, name: str, window: int, *, stress_delta: float = 1.2, device="cpu",
                         medusa_train: dict | None = None):
    """The named drafter for ``setup``: the independent one gets the problem's draft chain, medusa heads trained
    on the problem's target rollouts (cached in the user cache, specverify.sampler.cache; ``medusa_train``: options
    of ``train_heads``, e.g. ``{"n_traj": 64}`` where 1000 rollouts do not fit in memory), stress its delta.
    Medusa's heads are trained for window + 1 positions: under the default policy the anchor is one step behind
    the window start, so position j needs the output j + 1 steps ahead (``theory/rounds.md``)."""
    from specverify.sampler.drafters import make_drafter

    if name == "independent":
        return make_drafter(name, draft_chain=setup.draft_chain())
    if name == "medusa":
        from specverify.sampler.drafters.medusa import load_or_train

        return make_drafter(name, heads=load_or_train(setup.chain(), window + 1, key=setup.key,
                                                      **(medusa_train or {})))
    if name == "stress":
        return make_drafter(name, delta=stress_delta)
    return make_drafter(name)


@dataclasses.dataclass(frozen=True)
class Ours:
    """Which of our samplers runs, with which options: ``sampler`` plain or speculative; ``drafter`` and
    ``window``; the round ``policy``; the ``verifier`` and its ``drafts`` per node (speculative only); a known-broken
    ``mutant`` instead (``specverify.sampler.mutants``); the stress drafter's ``stress_delta``."""

    sampler: str = "speculative"
    drafter: str = "frozen-denoiser"
    window: int = 8
    policy: str = "accepted+1"
    verifier: str = "reflection"
    drafts: int = 1
    mutant: str | None = None
    stress_delta: float = 1.2

    def __post_init__(self):
        from specverify.sampler.mutants import MUTANTS

        if self.mutant and (self.mutant not in MUTANTS or self.sampler != "speculative"):
            raise UsageError(f"--mutant needs --sampler speculative and one of {', '.join(MUTANTS)}")

    def describe(self) -> dict:
        """The options a report records (the speculative ones only for the speculative sampler)."""
        if self.sampler == "plain":
            return {"sampler": "plain"}
        return {"sampler": self.sampler, "drafter": self.drafter, "window": self.window, "policy": self.policy,
                "verifier": self.verifier, "drafts": self.drafts, **({"mutant": self.mutant} if self.mutant else {})}


@dataclasses.dataclass(frozen=True)
class Built:
    """What a caller already built for a setup and our sampler, to reuse across runs: the setup's ``chain`` and
    the drafter its :class:`Ours` names (None: :func:`run_ours` builds it)."""

    chain: object = None
    drafter: object = None


def run_ours(setup: Setup, ours: Ours, n: int, seed: int | None, options=None, built: Built | None = None):
    """Our sampler on ``setup``: ``(x, stats)``, stats None for the plain sampler; ``x`` the samples (n, *shape)
    or, with ``options.path``, the paths (n, T + 1, *shape). ``options``: how it runs, a
    ``specverify.sampler.options.SampleOptions`` (``bridge.registry.SampleOptions``: device, dtype, progress,
    path, max_batch, compile; default float64 on CPU); its policy, verifier and drafts are ``ours``'s, and the
    plain sampler leaves the speculative ones out. ``built``: the chain and drafter already built (else built
    here)."""
    import torch

    from specverify.sampler.mutants import mutant_options
    from specverify.sampler.options import SPECULATIVE_ONLY, SampleOptions
    from specverify.sampler.speculative import plain_sample, speculative_sample

    o, built = SampleOptions(dtype=torch.float64) if options is None else options, built or Built()
    chain = built.chain or setup.chain()
    if ours.sampler == "plain":
        default = SampleOptions()
        plain = dataclasses.replace(o, **{k: getattr(default, k) for k in SPECULATIVE_ONLY})
        return plain_sample(chain, n, seed=seed, options=plain), None
    d = built.drafter or make_builtin_drafter(setup, ours.drafter, ours.window, stress_delta=ours.stress_delta)
    o = dataclasses.replace(o, policy=ours.policy, verifier=ours.verifier, drafts=ours.drafts)
    return speculative_sample(chain, d, n, window=ours.window, seed=seed,
                              options=mutant_options(ours.mutant, o) if ours.mutant else o)


def make_candidate(setup: Setup, ours: Ours | None = None, *, device="cpu", path: bool = False):
    """Our sampler ``ours`` (default ``Ours()``: the speculative sampler, frozen-denoiser drafter, window 8; a
    mutant with ``ours.mutant``) on ``setup`` as a black box: (n, seed) -> samples and acceptance counts; with
    ``path=True`` also its committed ``"trajectories"`` (n, T + 1, d), for the transition-level check."""
    import torch

    from specverify.sampler.options import SampleOptions

    ours = ours or Ours()
    chain = setup.chain()
    d = None if ours.sampler == "plain" else make_builtin_drafter(setup, ours.drafter, ours.window,
                                                                  stress_delta=ours.stress_delta)
    options, built = SampleOptions(device=device, dtype=torch.float64, path=path), Built(chain, d)

    def output(x, n):  # image states (digits: (n, 1, 8, 8)) are flattened to (n, d) for the harness
        if not path:
            return {"samples": x.cpu().numpy().reshape(n, -1)}
        paths = x.cpu().numpy().reshape(n, chain.n_steps + 1, -1)
        return {"samples": paths[:, -1], "trajectories": paths}

    def candidate(n, seed):
        x, st = run_ours(setup, ours, n, seed, options, built)
        if st is None:
            out = output(x, n)
            return out if path else out["samples"]
        return {**output(x, n), "accepted": st.accepted_per_sample,
                "predicted": st.predicted_per_sample, "verified": st.verified_per_sample,
                "predicted_var": st.predicted_var_per_sample,
                "accepted_per_position": st.accepted_per_position,
                "verified_per_position": st.verified_per_position,
                "predicted_per_position": st.predicted_accepted_per_position}

    return candidate
