"""Chain-level negative controls, written as a third party would: only the third-party view, none of our code.

A speculative sampler ``sampler(view, n, seed)`` (the chain contract of ``specverify check --contract chain``)
with the paper's frozen-drift drafter: at each window start x_n (chain step k) it calls the target once,
freezes the increment m_p(x_n, k) - x_n and drafts y_{j+1} = y_j + (m_p(x_n, k) - x_n) + s_{k+j} z_j for up
to ``WINDOW`` steps; it verifies every drafted step against m_p(y_j, k + j) with the reflection maximal coupling
(accept with probability min(1, exp(-<z, D> - |D|^2 / 2)), D = (m_q - m_p) / s; at the first rejection commit
m_p + s (I - 2 e e^T) z, e = D / |D|); after a fully accepted window it draws a bonus step from the target at the
last drafted state. A step with s = 0 is taken plainly. It uses ``view.mean``, ``view.sigma``, ``view.n_steps``
and the initial law ``view.prior_mean``, ``view.prior_std``, and reports its acceptance counts per trajectory.

``CONTROLS`` maps a name to a sampler: ``correct`` and one planted bug each, all on the rejection path or next
to it (the draft-accept path is the same in all of them):

- ``acceptance-sign``: the log acceptance ratio with the sign of <z, D> flipped (same acceptance rate, wrong law);
- ``unreflected-rejection``: at a rejection, commit m_p + s z (the reflection forgotten);
- ``rejection-from-draft``: at a rejection, commit a fresh draw from the draft, m_q + s z';
- ``reused-noise``: the window after a rejection starts with the rejected step's noise instead of fresh noise;
- ``bonus-from-draft``: the bonus step after a fully accepted window drawn from the draft, not the target.

``paper_repro/stress_controls.py`` checks each at the default problem and under ``--stress``.
"""

from __future__ import annotations

import math

import numpy as np
import torch

WINDOW = 4
BUGS = ("acceptance-sign", "unreflected-rejection", "rejection-from-draft", "reused-noise", "bonus-from-draft")


def _stop(sigma: np.ndarray) -> np.ndarray:
    """stop[k]: the first step at or after k with sigma = 0 (n_steps if none)."""
    stop = np.full(sigma.size + 1, sigma.size, dtype=np.int64)
    for k in range(sigma.size - 1, -1, -1):
        stop[k] = k if sigma[k] == 0 else stop[k + 1]
    return stop


def _phi(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2))


def _round(view, x, k, sig, stop, gen, carry, bug):
    """One speculative round for trajectories x (b, d) at steps k (b,). Returns the new states and steps,
    the per-trajectory (accepted, verified, predicted, predicted_var) of this round and the carried noise."""
    b, d, T = x.shape[0], x.shape[1], view.n_steps
    anchor = view.mean(x, k)
    drift = anchor - x
    length = torch.clamp(torch.minimum(torch.full_like(k, WINDOW), stop[k] - k), min=0)  # drafted steps
    z = torch.randn((WINDOW, b, d), generator=gen, dtype=x.dtype)
    if bug == "reused-noise" and carry is not None:
        z[0] = torch.where(carry[1][:, None], carry[0], z[0])
    ys, mq = [x], []
    for j in range(WINDOW):
        mq.append(ys[-1] + drift)
        ys.append(mq[-1] + sig[torch.clamp(k + j, max=T - 1)][:, None] * z[j])
    steps = torch.clamp(k[None] + torch.arange(WINDOW + 1)[:, None], max=T - 1)  # (L + 1, b)
    mp = view.mean(torch.cat(ys), steps.reshape(-1)).reshape(WINDOW + 1, b, d)  # one target call
    mp[0] = anchor
    u = torch.rand((WINDOW, b), generator=gen, dtype=x.dtype)
    alive = length > 0  # still accepting
    new_x, new_k = x.clone(), k.clone()
    acc = torch.zeros(b, dtype=x.dtype)
    ver, pred, pvar = torch.zeros_like(acc), torch.zeros_like(acc), torch.zeros_like(acc)
    rejected_noise, rejected = torch.zeros_like(x), torch.zeros(b, dtype=torch.bool)
    for j in range(WINDOW):
        active = alive & (j < length)
        s = sig[torch.clamp(k + j, max=T - 1)][:, None]
        D = (mq[j] - mp[j]) / s
        dz = (z[j] * D).sum(1)
        dd = (D * D).sum(1)
        log_ratio = (dz if bug == "acceptance-sign" else -dz) - dd / 2
        ok = torch.log(u[j]) < torch.clamp(log_ratio, max=0.0)
        p = torch.where(active, 2 * _phi(-dd.sqrt() / 2), 0.0)
        ver, pred, pvar = ver + active, pred + active * p, pvar + active * p * (1 - p)
        take, rej = active & ok, active & ~ok
        acc = acc + take
        e = D / dd.sqrt().clamp_min(1e-300)[:, None]
        if bug == "unreflected-rejection":
            out = mp[j] + s * z[j]
        elif bug == "rejection-from-draft":
            out = mq[j] + s * torch.randn(z[j].shape, generator=gen, dtype=x.dtype)
        else:
            out = mp[j] + s * (z[j] - 2 * e * (e * z[j]).sum(1, keepdim=True))
        new_x = torch.where(take[:, None], ys[j + 1], torch.where(rej[:, None], out, new_x))
        new_k = torch.where(take | rej, k + j + 1, new_k)
        rejected_noise = torch.where(rej[:, None], z[j], rejected_noise)
        rejected, alive = rejected | rej, alive & ~rej
    # a fully accepted window: the bonus step from the target at the last drafted state (when it has noise)
    last = torch.clamp(k + length, max=T - 1)
    bonus = alive & (k + length < T) & (sig[last] > 0)
    zb = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    m_last = mp[length.clamp(max=WINDOW), torch.arange(b)]
    if bug == "bonus-from-draft":
        m_last = new_x + drift
    new_x = torch.where(bonus[:, None], m_last + sig[last][:, None] * zb, new_x)
    new_k = torch.where(bonus, new_k + 1, new_k)
    # a step that cannot be speculated (s = 0): taken plainly
    plain = (length == 0) & (k < T)
    if plain.any():
        new_x = torch.where(plain[:, None], anchor + sig[k.clamp(max=T - 1)][:, None] * zb, new_x)
        new_k = torch.where(plain, k + 1, new_k)
    return new_x, new_k, (acc, ver, pred, pvar), (rejected_noise, rejected)


def speculative(view, n, seed, bug=None):
    """The chain-level speculative sampler on ``view``; ``bug``: one of :data:`BUGS` or None (correct)."""
    gen = torch.Generator().manual_seed(int(seed))
    d, T = math.prod(view.shape), view.n_steps
    sig = torch.tensor(np.array(view.sigma, dtype=np.float64))
    stop = torch.as_tensor(_stop(np.asarray(view.sigma)))
    x = view.prior_mean + view.prior_std * torch.randn((n, d), generator=gen, dtype=torch.float64)
    k = torch.zeros(n, dtype=torch.long)
    counts = [torch.zeros(n, dtype=torch.float64) for _ in range(4)]
    carry = None
    while (k < T).any():
        idx = torch.nonzero(k < T).squeeze(1)
        c = None if carry is None else (carry[0][idx], carry[1][idx])
        xi, ki, cnt, ci = _round(view, x[idx], k[idx], sig, stop, gen, c, bug)
        x[idx], k[idx] = xi, ki
        for total, part in zip(counts, cnt, strict=True):
            total[idx] += part
        carry = (torch.zeros_like(x), torch.zeros(n, dtype=torch.bool))
        carry[0][idx], carry[1][idx] = ci
    acc, ver, pred, pvar = (c.numpy() for c in counts)
    return {"samples": x.numpy(), "accepted": acc, "verified": ver, "predicted": pred, "predicted_var": pvar}


def _control(bug):
    def sampler(view, n, seed):
        return speculative(view, n, seed, bug)

    sampler.__name__ = (bug or "correct").replace("-", "_")
    return sampler


CONTROLS = {"correct": _control(None), **{b: _control(b) for b in BUGS}}
correct = CONTROLS["correct"]
acceptance_sign, unreflected_rejection, rejection_from_draft, reused_noise, bonus_from_draft = (
    CONTROLS[b] for b in BUGS)
