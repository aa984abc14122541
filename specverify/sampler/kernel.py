"""One speculative round as pure parts: ``noise`` -> ``draft`` -> ``target_call`` -> ``verify`` -> ``commit``.

Each part is a function of the run's fixed :class:`Env` and an explicit round state; none mutates its inputs.
The round's randomness is drawn first, in one place (:func:`draw_noise`), so that the rest of the round is a
deterministic function of (state, noise): the part ``torch.compile`` compiles when asked (``Env.core``).
A round is ``round_step(env, state) -> (state, info)`` (the style of blackjax kernels): ``info`` is a
:class:`RoundInfo` record, and :mod:`specverify.sampler.tally` folds the records into ``SpecStats``.

Batches keep a fixed shape: every row drafts ``window`` positions and the target sees every row's window start
and drafted states in one call; masks (not index compaction) say which positions count. The only host read of
a round is the caller's "all done?" check.

Round policies (``theory/rounds.md``) replace parts of the round (:class:`RoundPolicy`), chosen once per run by
name. This module's round is the default, ``"accepted+1"``: every round commits accepted + 1 steps. A rejection
at position r commits r drafts and the reflected draw; a fully accepted window also takes a bonus step, an exact
draw from the target transition at its last drafted state (whose target output the round computed). Drafters
that need a target output anchor on the latest one computed, the committed state's parent: no round is spent on a
warm-up. A row with nothing to draft (its first step, for an anchored drafter, or a zero-noise step) takes one
target step. ``"window-start"`` lives in :mod:`specverify.sampler.window_start`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from specverify.sampler.chains import GaussianChain, _bcast, first_zero_noise
from specverify.sampler.coupling import acceptance_probability, couple
from specverify.sampler.drafters.base import Drafter
from specverify.sampler.noise import NoiseSource
from specverify.sampler.records import Draft, RecordedRound, RoundInfo, RoundNoise, RoundState, Targets, Verdict

# the round's records (specverify.sampler.records) are named here too: the parts take and return them
__all__ = ["Draft", "Env", "Parts", "RecordedRound", "RoundConfig", "RoundInfo", "RoundNoise", "RoundPolicy",
           "RoundState", "Targets",
           "Verdict", "anchor_latest", "commit", "commit_accepted_plus_one", "draft", "draw_noise", "init_state",
           "make_env", "round_info", "round_step", "target_call", "target_means", "verdict", "verify"]


@dataclasses.dataclass(frozen=True)
class Parts:
    """The replaceable parts of a round; a mutant replaces one (``specverify.sampler.mutants``)."""

    noise: Callable = None
    draft: Callable = None
    target_call: Callable = None
    verify: Callable = None
    commit: Callable = None
    coupling: Callable = couple

    def __post_init__(self):
        for name, default in (("noise", draw_noise), ("draft", draft), ("target_call", target_call),
                              ("verify", verify), ("commit", commit)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)


@dataclasses.dataclass(frozen=True)
class RoundPolicy:
    """A round policy as the parts of the round it fixes (the defaults: accepted+1's); ``name`` for reports.
    ``start(env, s) -> (s, free)``: steps taken before the round's noise, and the rows that took one (None: none;
    they count as direct steps). ``anchor(env, s) -> (fresh, ready)``: the rows whose anchor is the target output
    at the window start itself (the call reuses it), and the rows an anchored drafter may draft.
    ``commit(env, s, d, t, v) -> (s, info)``: what the round commits and the next anchor (:func:`commit`)."""

    name: str
    start: Callable = None
    anchor: Callable = None
    commit: Callable = None

    def __post_init__(self):
        for name, default in (("start", _no_start), ("anchor", anchor_latest), ("commit", commit_accepted_plus_one)):
            if getattr(self, name) is None:
                object.__setattr__(self, name, default)


@dataclasses.dataclass(frozen=True, eq=False)
class Env:
    """What a run fixes: the chain, drafter, noise, window L, round policy, parts, and per-step tensors on the
    states' device: ``sig`` (T,), ``stop`` (T + 1,) the first zero-noise step at or after k, ``pos`` 0 .. L;
    ``core``: the round after its noise, ``(env, state, noise) -> (state, info)`` (``torch.compile``-d if asked);
    ``record``: the core returns a :class:`RecordedRound` (the window Y with the info); ``drafts``: the drafts
    per node at the window's first position (``specverify.sampler.verifiers``)."""

    chain: GaussianChain
    drafter: Drafter
    noise: NoiseSource
    L: int
    policy: RoundPolicy
    parts: Parts
    T: int
    sig: torch.Tensor
    stop: torch.Tensor
    pos: torch.Tensor
    vectorise: bool
    core: Callable
    record: bool = False
    drafts: int = 1


@dataclasses.dataclass(frozen=True)
class RoundConfig:
    """What a run fixes about its rounds besides the chain, drafter and noise: the ``window`` L, the round
    ``policy``, the ``parts``, the ``drafts`` per node at the window's first position; ``compile``: run the round's
    deterministic core through ``torch.compile`` (True: its default backend, or a backend's name); ``record``:
    every round's info also carries its window Y (:class:`RecordedRound`)."""

    window: int
    policy: RoundPolicy = dataclasses.field(default_factory=lambda: RoundPolicy("accepted+1"))
    parts: Parts = dataclasses.field(default_factory=Parts)
    drafts: int = 1
    compile: bool | str = False
    record: bool = False


def make_env(chain, drafter, noise, like: torch.Tensor, config: RoundConfig) -> Env:
    """The run's Env on the device of ``like``. ``vectorise``: affine drafters draft a whole window at once, where
    every a_k > 0 (see :func:`_draft_affine`)."""
    c = config
    stop = torch.as_tensor(first_zero_noise(chain.sigma), device=like.device)
    return Env(chain, drafter, noise, c.window, c.policy, c.parts, chain.n_steps, chain.coefs(like)[2], stop,
               torch.arange(c.window + 1, device=like.device), bool((chain.a > 0).all()),
               _compiled(c.compile) if c.compile else _core, c.record, c.drafts)


def _compiled(backend):
    return torch.compile(_core) if backend is True else torch.compile(_core, backend=backend)


def init_state(x: torch.Tensor, ids: torch.Tensor) -> RoundState:
    k = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
    # copies, not aliases: a compiled core guards on aliasing, and would recompile after round 1
    return RoundState(x, k, ids, x.clone(), k.clone(), torch.zeros_like(x), torch.zeros_like(k, dtype=torch.bool))


def round_step(env: Env, state: RoundState) -> tuple[RoundState, RoundInfo]:
    """One round: the policy's start (window-start: free steps; a free step's state is then the core's window
    start, Y[:, 0] at ``info.k``), the round's noise, then the core: draft, one target call, verify, commit."""
    state, free = env.policy.start(env, state)
    state, info = env.core(env, state, env.parts.noise(env, state))
    return state, (info if free is None else dataclasses.replace(info, direct=info.direct | free))


def _no_start(env: Env, s: RoundState) -> tuple[RoundState, None]:
    return s, None


def _core(env: Env, state: RoundState, noise: RoundNoise) -> tuple[RoundState, RoundInfo]:
    p = env.parts
    d = p.draft(env, state, noise)
    t = p.target_call(env, state, d)
    v = p.verify(env, state, d, t)
    new, info = p.commit(env, state, d, t, v)
    if env.record:  # the committed window Y, whatever the commit part (a mutant's too)
        info = RecordedRound(**{f.name: getattr(info, f.name) for f in dataclasses.fields(RoundInfo)},
                             Y=getattr(v, "draft", d).Y)
    return new, info


def draw_noise(env: Env, s: RoundState) -> RoundNoise:
    """The round's noise, keyed by (sample id, step k + j) for j = 0 .. L (steps clamped to the chain)."""
    steps = torch.clamp(s.k[:, None] + env.pos, max=env.T - 1)
    ids = s.ids[:, None].expand(-1, env.L + 1)
    z = env.noise.normal(ids, steps, s.x.new_empty((s.x.shape[0], env.L + 1, *env.chain.shape)))
    return RoundNoise(z, env.noise.uniform(ids[:, :-1], steps[:, :-1]))


def anchor_latest(env: Env, s: RoundState) -> tuple[torch.Tensor, torch.Tensor]:
    """accepted+1: an anchored drafter drafts from the latest target output once it has one; no row's anchor is
    at its window start (the start's output is computed in the round's call)."""
    return torch.zeros_like(s.anchored), s.anchored


def draft(env: Env, s: RoundState, noise: RoundNoise) -> Draft:
    """Draft every row's window: y_{j+1} = m_q(y_j, k + j) + sigma_{k+j} z_j, masked to ``span`` positions."""
    chain, drafter, L, T = env.chain, env.drafter, env.L, env.T
    fresh, ready = env.policy.anchor(env, s)
    ready = ready if drafter.needs_anchor else s.k >= 0
    span = torch.where(ready, torch.clamp(env.stop[s.k] - s.k, max=L), 0)
    steps = torch.clamp(s.k[:, None] + env.pos, max=T - 1)
    z = noise.z[:, :L]
    st = drafter.start(chain, s.anchor_x, s.anchor_k, s.anchor_f) if drafter.needs_anchor else \
        drafter.start(chain, s.x, s.k, None)
    ac = drafter.affine(chain, st, steps[:, :L]) if env.vectorise else None
    if ac is not None:
        Y, mq = _draft_affine(s.x, *ac, _bcast(env.sig[steps[:, :L]], z) * z)
        return Draft(Y, mq, span, steps, fresh, noise)
    ys, mqs, y = [s.x], [], s.x
    for j in range(L):
        kj = steps[:, j]
        mq = drafter.mean(chain, st, y, kj)
        y = mq + _bcast(env.sig[kj], mq) * z[:, j]
        ys.append(y)
        mqs.append(mq)
    return Draft(torch.stack(ys, 1), torch.stack(mqs, 1), span, steps, fresh, noise)


def _draft_affine(x, a, c, noise):
    """The whole window of y_{j+1} = a_j y_j + c_j + noise_j at once (a > 0): with P_j = a_0 .. a_j,
    y_{j+1} = P_j (x + sum_{i <= j} (c_i + noise_i) / P_i). Returns Y (B, L + 1, ...) and the means
    y_{j+1} - noise_j (= a_j y_j + c_j up to rounding)."""
    P = _bcast(torch.cumprod(a, 1), c)
    drafts = P * (x.unsqueeze(1) + torch.cumsum((c + noise) / P, 1))
    return torch.cat([x.unsqueeze(1), drafts], 1), drafts - noise


def target_call(env: Env, s: RoundState, d: Draft) -> Targets:
    """ONE target call on every row's window start and drafted states (fixed shape); the states that count:
    the start of every unfinished row (unless its output is at hand) and the drafts up to ``span`` before T."""
    active = s.k < env.T
    need = (env.pos <= d.span[:, None]) & (s.k[:, None] + env.pos < env.T)
    need[:, 0] = active & ~d.fresh
    F = env.chain.evaluate(d.Y.flatten(0, 1), d.steps.flatten(), check_finite=False).view_as(d.Y)
    F = torch.cat([torch.where(_bcast(d.fresh, s.x), s.anchor_f, F[:, 0]).unsqueeze(1), F[:, 1:]], 1)
    nonfinite = need & ~torch.isfinite(F).flatten(2).all(2)
    return Targets(F, need, nonfinite)


def verify(env: Env, s: RoundState, d: Draft, t: Targets) -> Verdict:
    """Couple every drafted step with the target's (reflection maximal coupling, log space)."""
    L = env.L
    valid = env.pos[:L] < d.span[:, None]
    kv = d.steps[:, :L]
    mean_p = target_means(env, d, t)
    sig = torch.where(valid, env.sig[kv], 1.0)  # positions that do not count: any finite values, masked below
    return verdict(mean_p, env.parts.coupling(mean_p[:, :L], d.mean_q, sig, d.z, d.noise.u, batch_ndim=2), valid,
                   d.span)


def verdict(mean_p, coupled, valid, span, p_accept=None) -> Verdict:
    """The Verdict of a window's coupled positions: ``coupled`` the coupling's ``(out, acc, dist)`` (B, L), decided
    at the first rejection among the ``valid`` positions; ``p_accept`` (B, L) float64 each position's acceptance
    probability (default: reflection's, 2 Phi(-|D| / 2) from ``dist``)."""
    out, acc, dist = coupled
    if p_accept is None:
        p_accept = acceptance_probability(dist.to(torch.float64))
    rej = ~acc & valid
    rejected = rej.any(1)
    first = rej.to(torch.uint8).argmax(1) if rej.shape[0] else torch.zeros(0, dtype=torch.long, device=rej.device)
    n_acc = torch.where(rejected, first, span)
    return Verdict(mean_p, out, valid, dist, rejected, first, n_acc, p_accept)


def target_means(env: Env, d: Draft, t: Targets) -> torch.Tensor:
    """m_p = a_k y + b_k f(y) at every state of the window (B, L + 1, *shape)."""
    return env.chain.mean_from(d.Y.flatten(0, 1), d.steps.flatten(), t.F.flatten(0, 1)).view_as(d.Y)


_ROWS: dict = {}


def _gather(t: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
    """t[i, j[i]] for every row i."""
    if torch.compiler.is_compiling():  # traced: the arange fuses, and a cache would guard on every batch size
        return t[torch.arange(t.shape[0], device=t.device), j]
    key = (t.shape[0], t.device)
    if key not in _ROWS:  # one arange per batch size and device, not one per call
        _ROWS.clear() if len(_ROWS) > 64 else None
        _ROWS[key] = torch.arange(t.shape[0], device=t.device)
    return t[_ROWS[key], j]


def commit(env: Env, s: RoundState, d: Draft, t: Targets, v: Verdict) -> tuple[RoundState, RoundInfo]:
    """Commit a round under the env's policy; returns the next state and the round's info record."""
    return env.policy.commit(env, s, d, t, v)


def commit_accepted_plus_one(env: Env, s: RoundState, d: Draft, t: Targets,
                             v: Verdict) -> tuple[RoundState, RoundInfo]:
    """Commit the accepted drafts and one step: the reflected draw, or the bonus step at Y[span] (a row with no
    draft: a direct step); the next anchor is the new state's parent."""
    T = env.T
    active = s.k < T
    j = torch.where(v.rejected, v.n_acc, d.span)  # the parent of the new state: Y[j] at step k + j
    parent, f_parent, k_parent = _gather(d.Y, j), _gather(t.F, j), s.k + j
    kb = torch.clamp(k_parent, max=T - 1)
    zb = _gather(d.noise.z, j)  # the bonus step's own noise (step k + span; unused by the drafts)
    bonus = _gather(v.mean_p, j) + _bcast(env.sig[kb], s.x) * zb
    x = torch.where(_bcast(v.rejected, s.x), _gather(v.out, v.first), torch.where(_bcast(k_parent < T, s.x),
                                                                                     bonus, parent))
    x = torch.where(_bcast(active, s.x), x, s.x)
    k = torch.where(active, torch.clamp(k_parent + 1, max=T), s.k)
    new = RoundState(x, k, s.ids, parent, kb, f_parent, active | s.anchored)
    took = active & ~v.rejected & (k_parent < T)
    return new, round_info(d, t, v, s.k, took=took)


def round_info(d, t, v, k, *, took, warmup=None) -> RoundInfo:
    """The round's info record from its parts' outputs: ``took`` (B,) the rows that took a step from the target
    without a draft, a bonus step after a window's drafts or a direct step where there were none; ``warmup`` the
    rows that fetched only an anchor (default: none)."""
    bonus, direct = took & (d.span > 0), took & (d.span == 0)
    warmup = torch.zeros_like(took) if warmup is None else warmup
    return RoundInfo(k, d.span, v.n_acc, v.rejected, v.dist, v.p_accept, t.need.sum(1), bonus, direct, warmup,
                     t.nonfinite)
