"""The window-start round policy (``theory/rounds.md``), kept for comparison with the default, accepted+1.

A fresh anchor at every window start, paid for with a warm-up round after each rejection, and no bonus step: a
fully accepted window keeps its last target output as the next window's anchor, and a zero-noise step whose
output is at hand is free (taken before the round's noise). It replaces three parts of the kernel's round
(:class:`specverify.sampler.kernel.RoundPolicy`): ``start`` (:func:`free_steps`), ``anchor``
(:func:`fresh_anchor`) and ``commit`` (:func:`commit`); every verifier's round runs under it unchanged.
"""

from __future__ import annotations

import dataclasses

import torch

from specverify.sampler import kernel
from specverify.sampler.chains import _bcast
from specverify.sampler.kernel import Draft, Env, RoundInfo, RoundState, Targets, Verdict

__all__ = ["WINDOW_START", "commit", "free_steps", "fresh_anchor"]


def fresh_anchor(env: Env, s: RoundState) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows whose anchor is the target output at their window start; only they draft (an anchored drafter)."""
    fresh = s.anchored & (s.anchor_k == s.k)
    return fresh, fresh


def free_steps(env: Env, s: RoundState) -> tuple[RoundState, torch.Tensor]:
    """A zero-noise step whose target output is at hand (the anchor) costs no call. Returns the new state and
    the rows that took one."""
    kc = torch.clamp(s.k, max=env.T - 1)
    free = fresh_anchor(env, s)[0] & (s.k < env.T) & (env.sig[kc] == 0)
    x = torch.where(_bcast(free, s.x), env.chain.mean_from(s.x, kc, s.anchor_f), s.x)
    return dataclasses.replace(s, x=x, k=torch.where(free, s.k + 1, s.k), anchored=s.anchored & ~free), free


def commit(env: Env, s: RoundState, d: Draft, t: Targets, v: Verdict) -> tuple[RoundState, RoundInfo]:
    """Rejection: r drafts and the reflected draw, no anchor. Full window: its drafts, and its last target
    output as the next anchor. No draft: a zero-noise step (direct), else a warm-up (anchor, no step)."""
    T = env.T
    active = s.k < T
    end = s.k + d.span
    none = active & (d.span == 0)
    direct = none & (env.sig[d.steps[:, 0]] == 0)
    warm = none & ~direct
    f0, x_direct = t.F[:, 0], v.mean_p[:, 0]
    x = torch.where(_bcast(v.rejected, s.x), kernel._gather(v.out, v.first), kernel._gather(d.Y, d.span))
    x = torch.where(_bcast(direct, s.x), x_direct, x)
    x = torch.where(_bcast(active & ~warm, s.x), x, s.x)
    k = torch.where(v.rejected, s.k + v.first + 1, torch.where(direct, s.k + 1, end))
    k = torch.where(active, k, s.k)
    f_end = kernel._gather(t.F, d.span)
    keep = active & ~v.rejected & (d.span > 0) & (end < T)
    anchored = keep | warm
    new = RoundState(x, k, s.ids, torch.where(_bcast(warm, s.x), s.x, x),
                     torch.clamp(torch.where(warm, s.k, k), max=T - 1), torch.where(_bcast(warm, s.x), f0, f_end),
                     anchored)
    info = kernel.round_info(d, t, v, s.k, took=direct, warmup=warm)
    return new, info


WINDOW_START = kernel.RoundPolicy("window-start", start=free_steps, anchor=fresh_anchor, commit=commit)
