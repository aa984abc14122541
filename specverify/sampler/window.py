"""One batch of the speculative sampler, round by round: free zero-noise steps, draft, one target call,
warm-ups and direct steps, verify and commit (used by :func:`specverify.sampler.speculative.speculative_sample`)."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import torch

from specverify.sampler.chains import GaussianChain, _bcast, first_zero_noise
from specverify.sampler.coupling import acceptance_probability, couple
from specverify.sampler.drafters.base import Drafter
from specverify.sampler.noise import NoiseSource

if TYPE_CHECKING:
    from specverify.sampler.speculative import Faults


@dataclasses.dataclass
class _Batch:
    """The moving parts of one batch: states, steps, cached target outputs and the counters they feed."""

    chain: GaussianChain
    drafter: Drafter
    noise: NoiseSource
    L: int
    x: torch.Tensor
    gid: torch.Tensor
    rounds: torch.Tensor
    c: dict
    per_pos: dict
    per_sample: dict
    faults: Faults

    def __post_init__(self):
        dev, n = self.x.device, self.x.shape[0]
        self.T, self.sig = self.chain.n_steps, self.chain.coefs(self.x)[2]
        self.stop = torch.as_tensor(first_zero_noise(self.chain.sigma), device=dev)  # first zero-noise step at/after k
        self.pos = torch.arange(self.L + 1, device=dev)
        self.k = torch.zeros(n, dtype=torch.long, device=dev)
        self.cached = torch.zeros(n, dtype=torch.bool, device=dev)
        self.fcache = torch.zeros_like(self.x)


def _speculative_batch(chain, drafter, x, gid, noise, L, rounds, c, per_pos, per_sample, bar, faults):
    """Run one batch of samples (global ids ``gid``) to the end of the chain; update the counters in place.

    A round: free zero-noise steps, then draft, one target call, warm-ups and direct steps, verify and commit."""
    b = _Batch(chain, drafter, noise, L, x, gid, rounds, c, per_pos, per_sample, faults)
    while True:
        _free_steps(b)
        act = (b.k < b.T).nonzero().squeeze(1)
        if act.numel() == 0:
            break
        ka, ca = b.k[act], b.cached[act]
        span = torch.minimum(b.stop[ka] - ka, torch.full_like(ka, L))
        rows = ((span > 0) & (ca | (not drafter.needs_anchor))).nonzero().squeeze(1)
        Y, mq_all, z_all = _draft(b, act, span, rows)
        need, F = _target_call(b, act, span, rows, Y)
        _warmup_and_direct(b, act, span, rows, F)
        if rows.numel():
            _verify_and_commit(b, act, span, rows, Y, F, need, mq_all, z_all)
        if bar is not None:
            bar.update(int((b.k[act] - ka).sum()))
    return b.x


def _free_steps(b: _Batch) -> None:
    """Zero-noise steps whose target output is cached cost nothing."""
    free = ((b.k < b.T) & b.cached).nonzero().squeeze(1)
    free = free[b.sig[b.k[free]] == 0]
    if free.numel():
        b.x[free] = b.chain.mean_from(b.x[free], b.k[free], b.fcache[free])
        b.k[free] += 1
        b.cached[free] = False
        b.c["direct_steps"] += free.numel()


def _draft(b: _Batch, act, span, rows):
    """Drafted states Y (act, L + 1, ...) with Y[:, 0] the window start, and the draft means and noise (rows, L)."""
    x, L = b.x, b.L
    xa = x[act]
    Y = xa.unsqueeze(1).repeat(1, L + 1, *([1] * (x.ndim - 1)))
    mq_all = torch.zeros((rows.numel(), L) + tuple(x.shape[1:]), dtype=x.dtype, device=x.device)
    z_all = torch.zeros_like(mq_all)
    if not rows.numel():
        return Y, mq_all, z_all
    ks, sp, ids = b.k[act][rows], span[rows], act[rows]
    state = b.drafter.start(b.chain, xa[rows], ks, b.fcache[ids] if b.drafter.needs_anchor else None)
    y = xa[rows]
    for j in range(int(sp.max())):
        live = (sp > j).nonzero().squeeze(1)
        full = live.numel() == rows.numel()
        kj = ks[live] + j
        st = state if full else b.drafter.select(state, live)
        mq = b.drafter.mean(b.chain, st, y if full else y[live], kj)
        z = b.noise.normal(b.gid[ids[live]], kj, mq)
        if b.faults.reuse_noise and j > 0:
            z = z_all[live, 0]
        if full:
            y = mq + _bcast(b.sig[kj], mq) * z
        else:
            y = y.clone()
            y[live] = mq + _bcast(b.sig[kj], mq) * z
        mq_all[live, j], z_all[live, j] = mq, z
        Y[rows[live], j + 1] = y[live]
        b.c["draft_evaluations"] += b.drafter.cost * live.numel()
    pos = b.pos[:L]
    b.per_pos["proposed"] += torch.bincount(pos.expand(rows.numel(), L)[pos < sp[:, None]], minlength=L)
    return Y, mq_all, z_all


def _target_call(b: _Batch, act, span, rows, Y):
    """One target call for every state that needs it; returns the mask and the outputs F (act, L + 1, ...)."""
    ka, ca = b.k[act], b.cached[act]
    need = torch.zeros((act.numel(), b.L + 1), dtype=torch.bool, device=Y.device)
    need[:, 0] = ~ca
    if rows.numel():
        need[rows, 1:] = (b.pos[1:] <= span[rows][:, None]) & (ka[rows][:, None] + b.pos[1:] < b.T)
    steps = ka[:, None] + b.pos
    F = torch.zeros_like(Y)
    m = int(need.sum())
    if m:
        F[need] = b.chain.evaluate(Y[need], steps[need])
        b.rounds[act[need.any(1)]] += 1
        b.c["rounds_total"] += 1
        b.c["target_evaluations"] += m
    F[ca, 0] = b.fcache[act[ca]]
    return need, F


def _warmup_and_direct(b: _Batch, act, span, rows, F) -> None:
    """Warm-up (anchor cached, drafting next round) and direct zero-noise steps."""
    ka, ca = b.k[act], b.cached[act]
    drafting = torch.zeros_like(ca)
    drafting[rows] = True
    warm = ~ca & (span > 0) & ~drafting
    if warm.any():
        b.fcache[act[warm]] = F[warm, 0]
        b.cached[act[warm]] = True
        b.c["warmup_evaluations"] += int(warm.sum())
    direct = span == 0
    if direct.any():
        d_idx = act[direct]
        b.x[d_idx] = b.chain.mean_from(b.x[d_idx], ka[direct], F[direct, 0])
        b.k[d_idx] += 1
        b.c["direct_steps"] += int(direct.sum())


def _verify_and_commit(b: _Batch, act, span, rows, Y, F, need, mq_all, z_all) -> None:
    """Verify the drafted windows; commit up to and including the first rejection."""
    T, faults, sig = b.T, b.faults, b.sig
    ks, sp, ids = b.k[act][rows], span[rows], act[rows]
    xr = b.x[ids]
    Ld = int(sp.max())
    pos = b.pos[:Ld]
    valid = pos < sp[:, None]
    kv = torch.where(valid, ks[:, None] + pos, ks[:, None])
    Yv, Fv = Y[rows, :Ld], F[rows, :Ld]
    if faults.stale_target:
        Fv = torch.cat([Fv[:, :1], Fv[:, :-1]], dim=1)
    mp = b.chain.mean_from(Yv.flatten(0, 1), kv.flatten(), Fv.flatten(0, 1)).view_as(Yv)
    mq = torch.where(_bcast(valid, mp), mq_all[:, :Ld], mp)
    s = torch.where(valid, sig[kv], torch.ones_like(sig[kv]))
    if faults.sigma_shift:
        s_bad = sig[(kv + faults.sigma_shift).clamp(0, T - 1)]
        s = torch.where(valid & (s_bad > 0), s_bad, s)
    u = torch.full(valid.shape, 0.5, dtype=torch.float64, device=xr.device)
    u[valid] = b.noise.uniform(b.gid[ids][:, None].expand_as(valid)[valid], kv[valid])
    out, acc, dist = (faults.coupling or couple)(mp, mq, s, z_all[:, :Ld], u, batch_ndim=2)
    rej = ~acc & valid
    has = rej.any(1)
    r = rej.to(torch.int8).argmax(1)
    n_acc = torch.where(has, r, sp)
    _count(b, ids, kv, pos, n_acc, has, acceptance_probability(dist.to(torch.float64)))
    ar = torch.arange(rows.numel(), device=xr.device)
    if faults.continue_after_reject:
        b.x[ids], b.k[ids], b.cached[ids] = out[ar, sp - 1], ks + sp, False
    else:
        b.x[ids] = torch.where(_bcast(has, xr), out[ar, r], Y[rows, sp])
        b.k[ids] = ks + torch.where(has, r + 1, sp)
        keep = ~has & need[rows, sp]
        b.cached[ids] = keep
        b.fcache[ids[keep]] = F[rows[keep], sp[keep]]


def _count(b: _Batch, ids, kv, pos, n_acc, has, p_acc) -> None:
    """Per-position, per-sample and per-(step, position) counts of one round's verified windows."""
    Ld, L, per_sample = pos.numel(), b.L, b.per_sample
    ver = pos < (n_acc + has)[:, None]
    acc_mask = pos < n_acc[:, None]
    b.per_pos["verified"][:Ld] += ver.sum(0)
    b.per_pos["accepted"][:Ld] += acc_mask.sum(0)
    p_ver = torch.where(ver, p_acc, 0)
    b.per_pos["predicted"][:Ld] += p_ver.sum(0)
    per_sample["accepted"][ids] += n_acc.to(torch.float64)
    per_sample["verified"][ids] += (n_acc + has).to(torch.float64)
    per_sample["predicted"][ids] += p_ver.sum(1)
    cell = (kv * L + pos)[ver]  # (chain step, window position) of each verified step
    per_sample["step"]["verified"].index_add_(0, cell, torch.ones_like(cell, dtype=torch.float64))
    acc_cell = (kv * L + pos)[acc_mask]
    per_sample["step"]["accepted"].index_add_(0, acc_cell, torch.ones_like(acc_cell, dtype=torch.float64))
    per_sample["step"]["predicted"].index_add_(0, cell, p_ver[ver])
    b.c["windows"] += ids.numel()
