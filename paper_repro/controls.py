"""Chain-level negative controls, written as a third party would: only the third-party view, none of our code.

A speculative sampler ``sampler(view, n, seed)`` (the chain contract of ``specverify check --contract chain``)
with the paper's frozen-drift drafter: at each window start x_n (chain step k) it calls the target once,
freezes the increment m_p(x_n, k) - x_n and drafts y_{j+1} = y_j + (m_p(x_n, k) - x_n) + s_{k+j} z_j for up
to ``WINDOW`` steps; it verifies every drafted step against m_p(y_j, k + j) with the reflection maximal coupling
(accept with probability min(1, exp(-<z, D> - |D|^2 / 2)), D = (m_q - m_p) / s; at the first rejection commit
m_p + s (I - 2 e e^T) z, e = D / |D|); after a fully accepted window it draws a bonus step from the target at the
last drafted state. A step with s = 0 is taken plainly. It uses ``view.mean``, ``view.sigma``, ``view.n_steps``
and the initial law ``view.prior_mean``, ``view.prior_std``, and returns its committed paths
(``"trajectories"``, (n, T + 1, d) float64: [:, 0] the initial states, then per round the accepted drafts and
the reflected, bonus or plain state), the samples (= trajectories[:, T]) and its acceptance counts per
trajectory.

``CONTROLS`` maps a name to a sampler. Exact variants (``EXACT``; each must pass):

- ``correct``: the sampler above (window 4);
- ``correct-window-8``: the same with window 8;
- ``correct-random-walk``: a different, valid drafter: no drift, y_{j+1} = y_j + s_{k+j} z_j (low acceptance, so
  the reflection path carries most steps).

Planted bugs (``BUGS``), each a one-line slip a third party could make:

- ``acceptance-sign``: the log acceptance ratio with the sign of <z, D> flipped (same acceptance rate, wrong law);
- ``relaxed-acceptance``: a "tolerance" in the acceptance rule, accept with probability min(1, 1.1 ratio);
- ``shared-uniform``: one uniform per round, reused for every drafted step of the window (u drawn outside the loop);
- ``sigma-floor``: sigma clamped at ``SIGMA_FLOOR`` = 0.1 inside the acceptance ratio only (a guard against
  dividing by a small sigma): D is too small at the last, small-sigma steps, so they accept too often;
- ``unreflected-rejection``: at a rejection, commit m_p + s z (the reflection forgotten);
- ``rejection-from-draft``: at a rejection, commit a fresh draw from the draft, m_q + s z';
- ``reflection-normalised-wrong``: e = D / (|D| + 0.1) (a "safe" normalisation): a partial reflection;
- ``bonus-from-draft``: the bonus step after a fully accepted window drawn from the draft, not the target;
- ``bonus-reuses-last-noise``: the bonus step reuses the last drafted step's noise z_{L-1} (a stale loop variable);
- ``reused-noise``: the window after a rejection starts with the rejected step's noise instead of fresh noise;
- ``noise-shared-across-window``: one noise vector drawn per round and used for every drafted step;
- ``duplicated-trajectories``: the batch is run as two halves with the same seed (data-parallel workers seeded
  alike): trajectories i and i + ceil(n / 2) share all their noise, x_0 included.

``paper_repro/stress_controls.py`` checks each at the default problem and under ``--stress``;
``paper_repro/innovation_power.py`` measures the transition-level check against the terminal battery on them.
"""

from __future__ import annotations

import math
from types import SimpleNamespace
from typing import NamedTuple

import numpy as np
import torch

WINDOW = 4
SIGMA_FLOOR = 0.1
RELAX = 1.1
BUGS = ("acceptance-sign", "relaxed-acceptance", "shared-uniform", "sigma-floor", "unreflected-rejection",
        "rejection-from-draft", "reflection-normalised-wrong", "bonus-from-draft", "bonus-reuses-last-noise",
        "reused-noise", "noise-shared-across-window", "duplicated-trajectories")


class Variant(NamedTuple):  # not a dataclass: the CLI loads this file without registering it as a module
    """A control: its bug (None: exact), window and drafter (drift_scale 1: frozen drift, 0: random walk)."""

    bug: str | None = None
    window: int = WINDOW
    drift_scale: float = 1.0


EXACT = {"correct": Variant(), "correct-window-8": Variant(window=8), "correct-random-walk": Variant(drift_scale=0.0)}


def _stop(sigma: np.ndarray) -> np.ndarray:
    """stop[k]: the first step at or after k with sigma = 0 (n_steps if none)."""
    stop = np.full(sigma.size + 1, sigma.size, dtype=np.int64)
    for k in range(sigma.size - 1, -1, -1):
        stop[k] = k if sigma[k] == 0 else stop[k + 1]
    return stop


def _phi(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * torch.erfc(-x / math.sqrt(2))


def _draft(view, x, k, sig, gen, carry, v: Variant):
    """The window's draft: noise z (W, b, d), drafted states ys, draft means mq, target means mp, uniforms u."""
    b, d, T, W = x.shape[0], x.shape[1], view.n_steps, v.window
    anchor = view.mean(x, k)
    drift = v.drift_scale * (anchor - x)
    z = torch.randn((1 if v.bug == "noise-shared-across-window" else W, b, d), generator=gen, dtype=x.dtype)
    z = z.expand(W, b, d).clone()
    if v.bug == "reused-noise" and carry is not None:
        z[0] = torch.where(carry[1][:, None], carry[0], z[0])
    ys, mq = [x], []
    for j in range(W):
        mq.append(ys[-1] + drift)
        ys.append(mq[-1] + sig[torch.clamp(k + j, max=T - 1)][:, None] * z[j])
    steps = torch.clamp(k[None] + torch.arange(W + 1)[:, None], max=T - 1)  # (W + 1, b)
    mp = view.mean(torch.cat(ys), steps.reshape(-1)).reshape(W + 1, b, d)  # one target call
    mp[0] = anchor
    u = torch.rand((1 if v.bug == "shared-uniform" else W, b), generator=gen, dtype=x.dtype).expand(W, b)
    return SimpleNamespace(anchor=anchor, drift=drift, z=z, ys=ys, mq=mq, mp=mp, u=u)


def _rejection_output(D, s, zj, mpj, mqj, gen, bug):
    """The state committed at a rejected drafted step."""
    if bug == "unreflected-rejection":
        return mpj + s * zj
    if bug == "rejection-from-draft":
        return mqj + s * torch.randn(zj.shape, generator=gen, dtype=zj.dtype)
    norm = (D * D).sum(1).sqrt()
    if bug == "reflection-normalised-wrong":
        norm = norm + 0.1
    e = D / norm.clamp_min(1e-300)[:, None]
    return mpj + s * (zj - 2 * e * (e * zj).sum(1, keepdim=True))


def _verify(x, k, sig, T, length, gen, r, bug):
    """Verify the drafted steps in order; fills r.states (W + 1, b, d), the committed state per position."""
    b, W = x.shape[0], r.z.shape[0]
    alive = length > 0  # still accepting
    r.new_x, r.new_k, r.states = x.clone(), k.clone(), torch.cat([torch.stack(r.ys[1:]), x[None]])
    acc = torch.zeros(b, dtype=x.dtype)
    ver, pred, pvar = torch.zeros_like(acc), torch.zeros_like(acc), torch.zeros_like(acc)
    r.rejected_noise, r.rejected = torch.zeros_like(x), torch.zeros(b, dtype=torch.bool)
    for j in range(W):
        active = alive & (j < length)
        s = sig[torch.clamp(k + j, max=T - 1)][:, None]
        D = (r.mq[j] - r.mp[j]) / s
        Da = (r.mq[j] - r.mp[j]) / s.clamp_min(SIGMA_FLOOR) if bug == "sigma-floor" else D
        dz, dd = (r.z[j] * Da).sum(1), (Da * Da).sum(1)
        log_ratio = (dz if bug == "acceptance-sign" else -dz) - dd / 2
        if bug == "relaxed-acceptance":
            log_ratio = log_ratio + math.log(RELAX)
        ok = torch.log(r.u[j]) < torch.clamp(log_ratio, max=0.0)
        p = torch.where(active, 2 * _phi(-dd.sqrt() / 2), 0.0)
        ver, pred, pvar = ver + active, pred + active * p, pvar + active * p * (1 - p)
        take, rej = active & ok, active & ~ok
        acc = acc + take
        out = _rejection_output(D, s, r.z[j], r.mp[j], r.mq[j], gen, bug)
        r.states[j] = torch.where(rej[:, None], out, r.states[j])
        r.new_x = torch.where(take[:, None], r.ys[j + 1], torch.where(rej[:, None], out, r.new_x))
        r.new_k = torch.where(take | rej, k + j + 1, r.new_k)
        r.rejected_noise = torch.where(rej[:, None], r.z[j], r.rejected_noise)
        r.rejected, alive = r.rejected | rej, alive & ~rej
    return alive, (acc, ver, pred, pvar)


def _round(view, x, k, sig, stop, gen, carry, v: Variant):
    """One speculative round for trajectories x (b, d) at steps k (b,). Returns the new states and steps, the
    committed states per position (W + 1, b, d: position j is step k + 1 + j), the per-trajectory (accepted,
    verified, predicted, predicted_var) of this round and the carried noise."""
    b, T, W = x.shape[0], view.n_steps, v.window
    length = torch.clamp(torch.minimum(torch.full_like(k, W), stop[k] - k), min=0)  # drafted steps
    r = _draft(view, x, k, sig, gen, carry, v)
    alive, counts = _verify(x, k, sig, T, length, gen, r, v.bug)
    rows = torch.arange(b)
    # a fully accepted window: the bonus step from the target at the last drafted state (when it has noise)
    last = torch.clamp(k + length, max=T - 1)
    bonus = alive & (k + length < T) & (sig[last] > 0)
    zb = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    m_last = r.mp[length.clamp(max=W), rows]
    if v.bug == "bonus-from-draft":
        m_last = r.new_x + r.drift
    noise = r.z[(length - 1).clamp(min=0), rows] if v.bug == "bonus-reuses-last-noise" else zb
    xb = m_last + sig[last][:, None] * noise
    r.new_x = torch.where(bonus[:, None], xb, r.new_x)
    r.states[length.clamp(max=W)[bonus], rows[bonus]] = xb[bonus]
    r.new_k = torch.where(bonus, r.new_k + 1, r.new_k)
    # a step that cannot be speculated (s = 0): taken plainly
    plain = (length == 0) & (k < T)
    if plain.any():
        xp = r.anchor + sig[k.clamp(max=T - 1)][:, None] * zb
        r.new_x = torch.where(plain[:, None], xp, r.new_x)
        r.states[0, plain] = xp[plain]
        r.new_k = torch.where(plain, k + 1, r.new_k)
    return r.new_x, r.new_k, r.states, counts, (r.rejected_noise, r.rejected)


def _run(view, n, seed, v: Variant) -> dict:
    gen = torch.Generator().manual_seed(int(seed))
    d, T = math.prod(view.shape), view.n_steps
    sig = torch.tensor(np.array(view.sigma, dtype=np.float64))
    stop = torch.as_tensor(_stop(np.asarray(view.sigma)))
    x = view.prior_mean + view.prior_std * torch.randn((n, d), generator=gen, dtype=torch.float64)
    paths = torch.zeros((n, T + 1, d), dtype=torch.float64)
    paths[:, 0] = x
    k = torch.zeros(n, dtype=torch.long)
    counts = [torch.zeros(n, dtype=torch.float64) for _ in range(4)]
    carry = None
    while (k < T).any():
        idx = torch.nonzero(k < T).squeeze(1)
        c = None if carry is None else (carry[0][idx], carry[1][idx])
        k0 = k[idx]
        xi, ki, states, cnt, ci = _round(view, x[idx], k0, sig, stop, gen, c, v)
        for j in range(states.shape[0]):  # the committed path: positions 0 .. ki - k0 - 1
            m = ki - k0 > j
            paths[idx[m], k0[m] + 1 + j] = states[j][m]
        x[idx], k[idx] = xi, ki
        for total, part in zip(counts, cnt, strict=True):
            total[idx] += part
        carry = (torch.zeros_like(x), torch.zeros(n, dtype=torch.bool))
        carry[0][idx], carry[1][idx] = ci
    acc, ver, pred, pvar = (c.numpy() for c in counts)
    return {"trajectories": paths.numpy(), "samples": x.numpy(), "accepted": acc, "verified": ver,
            "predicted": pred, "predicted_var": pvar}


def speculative(view, n, seed, bug=None, *, window: int = WINDOW, drift_scale: float = 1.0) -> dict:
    """The chain-level speculative sampler on ``view``; ``bug``: one of :data:`BUGS` or None (exact)."""
    v = Variant(bug, window, drift_scale)
    if bug == "duplicated-trajectories":  # two workers, one seed: the second half repeats the first
        h = (n + 1) // 2
        half = _run(view, h, seed, v._replace(bug=None))
        return {key: np.concatenate([a, a[: n - h]]) for key, a in half.items()}
    return _run(view, n, seed, v)


def _control(name, v: Variant):
    def sampler(view, n, seed):
        return speculative(view, n, seed, v.bug, window=v.window, drift_scale=v.drift_scale)

    sampler.__name__ = name.replace("-", "_")
    return sampler


CONTROLS = {name: _control(name, v) for name, v in {**EXACT, **{b: Variant(b) for b in BUGS}}.items()}
globals().update({name.replace("-", "_"): fn for name, fn in CONTROLS.items()})  # correct, reused_noise, ...
correct = CONTROLS["correct"]
