"""Plain and speculative samplers for Gaussian chains.

Speculative sampling (De Bortoli, Galashov, Gretton, Doucet, ICML 2025), batched over samples that each sit at
their own step. One round is one batched target call; :mod:`specverify.sampler.kernel` writes it as four pure
parts (draft -> target call -> verify -> commit) under one of two policies (:data:`POLICIES`, each a
:class:`specverify.sampler.kernel.RoundPolicy`):

- ``"accepted+1"`` (default): every round commits its accepted drafts plus one step (the reflected draw at the
  first rejection, or a bonus step from the target after a full window); drafters anchor on the latest target
  output (the committed state's parent), so there is no warm-up round.
- ``"window-start"``: a fresh anchor at every window start (a warm-up round after each rejection), no bonus step
  (:mod:`specverify.sampler.window_start`).

:class:`SpecStats` is a fold of the rounds' records (:mod:`specverify.sampler.tally`).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from specverify.errors import ChainError, SamplerError
from specverify.sampler.chains import GaussianChain, _bcast
from specverify.sampler.drafters.base import Drafter
from specverify.sampler.kernel import RoundConfig, RoundPolicy, init_state, make_env, round_step
from specverify.sampler.noise import GeneratorNoise
from specverify.sampler.options import SampleOptions, check_plain
from specverify.sampler.tally import Tally
from specverify.sampler.verifiers import VERIFIERS, verifier_parts
from specverify.sampler.window_start import WINDOW_START
from specverify.specs import ROUND_POLICIES

__all__ = ["KINDS", "POLICIES", "ROUND_POLICIES", "VERIFIERS", "SampleOptions", "SpecStats", "plain_sample",
           "speculative_sample"]

# The round policies by name (the names: ROUND_POLICIES): accepted+1 is the kernel's round as it stands,
# window-start replaces three of its parts. Looked up once per run.
POLICIES = {p.name: p for p in (RoundPolicy("accepted+1"), WINDOW_START)}


KINDS = {"setting": "the run's setting: equal across shards, serialised",
         "count": "a count or a per-position table: summed across shards, serialised",
         "sample": "one value per trajectory: stacked across shards, not serialised",
         "step": "a (n_steps, window) table: summed across shards, not serialised"}


def _kind(kind: str):
    return dataclasses.field(metadata={"kind": kind})


@dataclasses.dataclass(frozen=True)
class SpecStats:
    """Counters of one speculative run, in the style of LLM speculative decoding.

    Per window position j (0-based): ``proposed`` drafted steps, ``verified`` steps whose acceptance was
    decided (up to and including the first rejection), ``accepted`` accepted steps, ``predicted_accepted``
    the sum of 2 Phi(-|D| / 2) over the verified steps (the expectation of ``accepted`` given the path).
    The ``*_per_sample`` arrays hold the same three counts per trajectory (the acceptance test's unit; with
    ``predicted_var_per_sample``, the sum of p (1 - p) over those steps: the variance of accepted - predicted),
    and the ``*_per_step`` arrays, of shape (n_steps, window), per chain step k (row) and window position j
    (column); the per-position totals are their column sums. Steps taken by the target without a draft: ``bonus_steps``
    (after a fully accepted window), ``direct_steps`` (a row with nothing to draft: an anchored drafter's first
    step, a zero-noise step); ``warmup_evaluations``: window-start rounds that only fetched an anchor.
    Every field declares its kind (:data:`KINDS`, :meth:`kind`): how shards pool it and whether ``to_dict``
    writes it.
    """

    n_samples: int = _kind("count")
    n_steps: int = _kind("setting")
    window: int = _kind("setting")
    drafter: str = _kind("setting")
    policy: str = _kind("setting")
    verifier: str = _kind("setting")
    drafts: int = _kind("setting")
    rounds: np.ndarray = _kind("sample")
    rounds_total: int = _kind("count")
    target_evaluations: int = _kind("count")
    draft_evaluations: int = _kind("count")
    windows: int = _kind("count")
    warmup_evaluations: int = _kind("count")
    direct_steps: int = _kind("count")
    bonus_steps: int = _kind("count")
    proposed_per_position: np.ndarray = _kind("count")
    verified_per_position: np.ndarray = _kind("count")
    accepted_per_position: np.ndarray = _kind("count")
    predicted_accepted_per_position: np.ndarray = _kind("count")
    accepted_per_sample: np.ndarray = _kind("sample")
    verified_per_sample: np.ndarray = _kind("sample")
    predicted_per_sample: np.ndarray = _kind("sample")
    predicted_var_per_sample: np.ndarray = _kind("sample")
    proposed_per_step: np.ndarray = _kind("step")
    verified_per_step: np.ndarray = _kind("step")
    accepted_per_step: np.ndarray = _kind("step")
    predicted_per_step: np.ndarray = _kind("step")

    @property
    def rounds_mean(self) -> float:
        return float(self.rounds.mean())

    @property
    def nfe_ratio(self) -> float:
        """n_steps / mean rounds: sequential target calls of the plain sampler over the speculative one."""
        return self.n_steps / self.rounds_mean

    @property
    def acceptance_rate(self) -> float:
        """Accepted over verified steps: the per-step acceptance, comparable to 2 Phi(-|D| / 2)."""
        return _ratio(self.accepted_per_position.sum(), self.verified_per_position.sum())

    @property
    def predicted_acceptance_rate(self) -> float:
        return _ratio(self.predicted_accepted_per_position.sum(), self.verified_per_position.sum())

    @property
    def mean_accepted_length(self) -> float:
        """Accepted drafted steps per window."""
        return _ratio(self.accepted_per_position.sum(), self.windows)

    @classmethod
    def kind(cls, name: str) -> str:
        """How field ``name`` pools and serialises: a key of :data:`KINDS`."""
        return cls.__dataclass_fields__[name].metadata["kind"]

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        for f in dataclasses.fields(self):
            if f.metadata["kind"] in ("sample", "step"):
                del out[f.name]
        for name in ("rounds_mean", "nfe_ratio", "acceptance_rate", "predicted_acceptance_rate",
                     "mean_accepted_length"):
            out[name] = getattr(self, name)
        out["rounds_per_sample"] = {"min": int(self.rounds.min()), "max": int(self.rounds.max()),
                                    "mean": self.rounds_mean}
        return out


def _ratio(num, den) -> float:
    """num / den as a float, NaN when den is 0 (nothing counted)."""
    return float(num / den) if den else float("nan")


def _options(options) -> SampleOptions:
    if options is None:
        return SampleOptions()
    if not isinstance(options, SampleOptions):
        raise SamplerError(f"options must be a SampleOptions (specverify.SampleOptions(dtype=..., ...)) or None, got "
                           f"{type(options).__name__}")
    return options


def _setup(chain, n, seed, o: SampleOptions):
    """The chain on the run's device and dtype, the noise and the initial states (checked)."""
    if not isinstance(chain, GaussianChain):
        raise SamplerError(f"chain must be a GaussianChain, got {type(chain).__name__}")
    if not isinstance(n, int) or n < 1:
        raise SamplerError(f"n must be a positive int, got {n!r}")
    x0, dtype = o.x0, o.dtype
    device = torch.device(o.device) if o.device is not None else (x0.device if x0 is not None else torch.device("cpu"))
    chain = chain.to(device=device, dtype=dtype)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed) if seed is not None else gen.seed()
    if x0 is None:
        x0 = chain.prior(n, gen, device=device, dtype=dtype)
    if tuple(x0.shape) != (n, *chain.shape):
        raise SamplerError(f"x0 has shape {tuple(x0.shape)}; expected {(n, *chain.shape)}")
    if not torch.isfinite(x0).all():
        raise SamplerError("x0 has NaN or Inf entries")
    x0 = x0.to(device=device, dtype=dtype)
    return chain, (o.noise if o.noise is not None else GeneratorNoise(gen)), x0.clone()


def _progress(total, enabled, desc):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


@torch.no_grad()
def plain_sample(chain: GaussianChain, n: int, *, seed: int | None = None,
                 options: SampleOptions | None = None) -> torch.Tensor:
    """Run the chain step by step (one target call per step). Returns x_T of shape (n, *shape); with
    ``options.path``, the whole path instead, of shape (n, T + 1, *shape): path[:, k] the state after k steps
    (path[:, 0] the initial states, path[:, T] = x_T, bit for bit the x_T of the same run without path).
    ``options`` (:class:`SampleOptions`): noise, x0, device, dtype, progress and path; the speculative sampler's
    own options (policy, verifier, drafts, max_batch, compile, parts) are refused away from their defaults."""
    o = _options(options)
    check_plain(o)
    chain, noise, x = _setup(chain, n, seed, o)
    path = o.path
    _, _, sig = chain.coefs(x)
    ids = torch.arange(n, device=x.device)
    states = x.new_empty((n, chain.n_steps + 1, *chain.shape)) if path else None
    if states is not None:
        states[:, 0] = x
    bar = _progress(chain.n_steps, o.progress, "plain")
    for k in range(chain.n_steps):
        kk = torch.full((n,), k, device=x.device, dtype=torch.long)
        m = chain.mean(x, kk)
        x = m + _bcast(sig[kk], m) * noise.normal(ids, kk, m) if chain.sigma[k] > 0 else m
        if states is not None:
            states[:, k + 1] = x
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return states if states is not None else x


# Auto chunking: at most this many elements in one (batch, window + 1, *shape) block (256 MB in float64).
_CHUNK_ELEMENTS = 2**25
_FOLD_EVERY = 64  # rounds whose records are kept before they are folded into the tally
_COMPACT_MIN = 32  # a batch is compacted (finished rows dropped) once at most half of it, and >= this, is done


def _check_args(window, drafter):
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise SamplerError(f"window must be an int >= 1, got {window!r}")
    if not isinstance(drafter, Drafter):
        raise SamplerError(f"drafter must be a Drafter (see specverify.sampler.drafters.make_drafter), got {drafter!r}")


@torch.no_grad()
def speculative_sample(chain: GaussianChain, drafter: Drafter, n: int, *, window: int, seed: int | None = None,
                       options: SampleOptions | None = None) -> tuple[torch.Tensor, SpecStats]:
    """Speculative sampling of ``chain`` with ``drafter`` and windows of up to ``window`` drafted steps; the rest
    of the run's settings in ``options`` (:class:`SampleOptions`; default ``SampleOptions()``).

    Contract: for any drafter, either ``options.policy`` (see :data:`ROUND_POLICIES`) and every ``options.verifier``
    (one of :data:`specverify.sampler.verifiers.VERIFIERS`, with ``options.drafts`` drafts at each window's first
    position), the output has exactly the law of :func:`plain_sample` (the discretised chain), and with
    ``TableNoise`` and the oracle drafter it equals plain_sample's output under the same noise. Samples run in
    batches of at most ``options.max_batch`` (default: as many as keep one (batch, window + 1, *shape) block under
    2^25 elements), one after the other; ``rounds_total`` counts the calls of all batches. ``options.compile``
    (True or a backend's name) runs each round's deterministic core through ``torch.compile`` (opt-in: the first
    rounds pay tens of seconds of compilation, and the output is the same law; a batch that shrinks as its rows
    finish recompiles once, with dynamic shapes; ``paper_repro/bench_sampler.py --compile`` measures what it buys).
    Returns ``(x_T, stats)``; with ``options.path``, ``(path, stats)``: the committed path, of shape
    (n, T + 1, *shape), path[:, k] the state at step k (path[:, 0] the initial states, path[:, T] bit for bit the
    x_T of the same run without path; drafts committed by a round, a bonus step's parent, a free zero-noise step
    all appear at their steps). Without it nothing is recorded. ``options.parts`` replaces the round's parts
    (:class:`specverify.sampler.kernel.Parts`), for the mutation tests only.
    """
    o = _options(options)
    _check_args(window, drafter)
    drafter.check(chain)
    chain, noise, x = _setup(chain, n, seed, o)
    drafter = drafter.to(device=x.device, dtype=x.dtype)
    T, L, dev = chain.n_steps, window, x.device
    max_batch = o.max_batch or max(1, _CHUNK_ELEMENTS // ((L + 1) * o.drafts * chain.dim))
    config = RoundConfig(L, POLICIES[o.policy], o.parts or verifier_parts(o.verifier, o.drafts), o.drafts, o.compile,
                         bool(o.path))
    env = make_env(chain, drafter, noise, x, config)
    tally = Tally(n, T, L, dev)
    states = None
    if o.path:  # NaN until committed; one row more: the positions a round did not commit go there (no host read)
        states = torch.full((n + 1, T + 1, *chain.shape), torch.nan, dtype=x.dtype, device=dev)
        states[:n, 0] = x
    bar = _progress(n * T, o.progress, f"speculative ({drafter.name}, L={L})")
    for start in range(0, n, max_batch):
        sl = slice(start, min(n, start + max_batch))
        x[sl] = _run_batch(env, x[sl], torch.arange(sl.start, sl.stop, device=dev), tally, bar, states)
    if bar is not None:
        bar.close()
    return (x if states is None else states[:n]), _stats(tally, drafter, o)


def _record(states: torch.Tensor, env, state, info) -> None:
    """Write one round's committed states into ``states`` (n + 1, T + 1, *shape), rows by global sample id.

    A row at step k before the round's core (``info.k``) and k' after it (``state.k``) committed the window's
    Y[:, i] at step k + i for i < k' - k, and its new x at k': under either policy a round commits its accepted
    drafts, then one drawn state (the reflected draw, a bonus or direct step; a full window ending at T or, under
    window-start, at its last draft commits that draft as x). i = 0 is the window start: already recorded, unless
    a window-start free step moved the row there before the core. Warm-up and finished rows: k' = k, only x."""
    keep = env.pos < (state.k - info.k)[:, None]  # (B, L + 1)
    rows = torch.where(keep, state.ids[:, None], states.shape[0] - 1)
    states.index_put_((rows, torch.where(keep, info.k[:, None] + env.pos, 0)), info.Y)
    states.index_put_((state.ids, state.k), state.x)


def _run_batch(env, x, ids, tally: Tally, bar, states=None) -> torch.Tensor:
    """Rounds until every row of the batch reaches the chain's end; one host read per round. ``states``: the
    path to record into (see :func:`_record`), or None."""
    out, first_id = x.clone(), int(ids[0])
    state, pending, steps_left = init_state(x, ids), [], 0
    seen = 0
    while True:
        state, info = round_step(env, state)
        if states is not None:
            _record(states, env, state, info)
            info = dataclasses.replace(info, Y=None)  # the tally's pending records keep no window
        pending.append(info)
        active = state.k < env.T
        n_active, k_sum, bad = torch.stack([active.sum(), state.k.sum(), info.nonfinite.sum()]).tolist()
        if bad:
            steps = (info.k[:, None] + torch.arange(env.L + 1, device=info.k.device))[info.nonfinite]
            raise ChainError(f"model returned NaN or Inf at chain steps {sorted(set(steps.tolist()))[:5]}; check "
                             "the model and its inputs")
        if bar is not None:
            bar.update(k_sum + steps_left - seen)
            seen = k_sum + steps_left
        compact = _compact(n_active, state)
        if n_active == 0 or len(pending) >= _FOLD_EVERY or compact:
            tally.fold(pending, state.ids)
            pending = []
        if n_active == 0:
            break
        if compact:
            done = ~active
            out[state.ids[done] - first_id] = state.x[done]
            steps_left += env.T * int(done.sum())
            state = state.rows(active.nonzero().squeeze(1))
    out[state.ids - first_id] = state.x
    return out


def _compact(n_active: int, state) -> bool:
    B = state.x.shape[0]
    return B - n_active >= _COMPACT_MIN and 2 * n_active <= B


def _stats(tally: Tally, drafter, o: SampleOptions) -> SpecStats:
    c = tally.totals()
    n, drafts = tally.sample["rounds"].shape[0], o.drafts
    proposed = tally.per_position("proposed")

    def arr(t, integer=True):
        a = t.cpu().numpy()
        return a.astype(np.int64) if integer else a

    return SpecStats(
        n_samples=n, n_steps=tally.T, window=tally.L, drafter=drafter.name, policy=o.policy, verifier=o.verifier,
        drafts=drafts,
        rounds=arr(tally.sample["rounds"]), draft_evaluations=int(drafter.cost * drafts * proposed.sum()),
        proposed_per_position=arr(proposed), verified_per_position=arr(tally.per_position("verified")),
        accepted_per_position=arr(tally.per_position("accepted")),
        predicted_accepted_per_position=arr(tally.per_position("predicted"), False),
        accepted_per_sample=arr(tally.sample["accepted"]), verified_per_sample=arr(tally.sample["verified"]),
        predicted_per_sample=arr(tally.sample["predicted"], False),
        predicted_var_per_sample=arr(tally.sample["predicted_var"], False),
        **{f"{k}_per_step": arr(tally.per_step(k), False) for k in ("proposed", "verified", "accepted",
                                                                    "predicted")}, **c)
