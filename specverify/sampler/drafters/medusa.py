"""Medusa-like drafter: small heads that predict the target's future model outputs from the window start.

At a window start (x_n, step n) the target output f(x_n, n) is known (the anchor). Head j (j = 1 .. L - 1)
predicts f at the state the chain reaches j steps later, from (x_n, f(x_n, n), n); the draft mean at drafted
position j is then a_k y + b_k f_hat_j with each step's own coefficients (position 0 uses the anchor itself, as
the frozen-denoiser drafter does). The heads are one small MLP with a residual output: f_hat_j = f(x_n, n) +
delta_j, and delta starts at exactly zero, so an untrained drafter IS the frozen-denoiser drafter.

Training (:func:`train_heads`) regresses the heads on target rollouts of the chain (the plain sampler, seeded),
deterministically on CPU; :func:`load_or_train` caches the weights under ``<cache root>/medusa/`` (the root:
``$SPECVERIFY_CACHE``, else the user cache folder, see :mod:`specverify.sampler.cache`).
Exactness is untouched: the draft mean is a function of the past only, so only acceptance changes.
"""

from __future__ import annotations

import hashlib
import math
import os
import time
from pathlib import Path

import torch

from specverify._files import atomic_write
from specverify.errors import SamplerError
from specverify.sampler.cache import resolve
from specverify.sampler.chains import GaussianChain
from specverify.sampler.drafters.base import Drafter

__all__ = ["Heads", "Medusa", "cache_path", "load_or_train", "train_heads"]

CACHE_NAME = "medusa"  # the folder under the cache root
CACHE_VERSION = 2  # part of the file name: 2 stores {"state", "seconds"} (1 stored the bare state dict)
LR = 1e-3  # the heads' Adam learning rate


class Heads(torch.nn.Module):
    """delta_1 .. delta_{L-1} from (x_n, f(x_n, n), n): one MLP, output zero-initialised."""

    def __init__(self, dim: int, n_steps: int, window: int, hidden: int = 128):
        super().__init__()
        self.dim, self.n_steps, self.window = dim, n_steps, window
        self.net = torch.nn.Sequential(torch.nn.Linear(2 * dim + 16, hidden), torch.nn.SiLU(),
                                       torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
                                       torch.nn.Linear(hidden, max(window - 1, 1) * dim))
        torch.nn.init.zeros_(self.net[-1].weight)
        torch.nn.init.zeros_(self.net[-1].bias)

    def embed(self, k: torch.Tensor) -> torch.Tensor:
        freqs = torch.exp(torch.arange(8, dtype=torch.float64, device=k.device) * -math.log(100.0) / 7)
        ang = (k.to(torch.float64) / self.n_steps)[:, None] * freqs * 2 * math.pi
        return torch.cat([ang.sin(), ang.cos()], dim=1)  # float64, cast to the inputs' dtype by forward

    def forward(self, x: torch.Tensor, f: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        """(b, L - 1, d) predicted outputs at positions 1 .. L - 1 (b, d inputs, flattened samples)."""
        h = torch.cat([x, f, self.embed(k).to(x.dtype)], dim=1)
        return f[:, None, :] + self.net(h).view(x.shape[0], -1, self.dim)[:, : self.window - 1]


class Medusa(Drafter):
    """Draft with trained heads (see the module docstring); ``heads`` from :func:`train_heads`."""

    name = "medusa"
    needs_anchor = True

    def __init__(self, heads: Heads):
        if not isinstance(heads, Heads):
            raise SamplerError("the medusa drafter needs heads=: train them with specverify.sampler.drafters.medusa."
                               "load_or_train(chain, window)")
        self.heads = heads

    def check(self, chain: GaussianChain) -> None:
        if chain.n_steps != self.heads.n_steps or chain.dim != self.heads.dim:
            raise SamplerError(f"heads were trained for {self.heads.n_steps} steps of dimension {self.heads.dim}; "
                               f"the chain has {chain.n_steps} of {chain.dim}: train heads for this chain")

    def to(self, device=None, dtype=None):
        return Medusa(self.heads.to(device=device, dtype=dtype))

    def start(self, chain, x, k, f):
        b = x.shape[0]
        future = self.heads(x.reshape(b, -1), f.reshape(b, -1), k)
        return torch.cat([f.reshape(b, 1, -1), future], dim=1), k  # outputs per position, window start

    def mean(self, chain, state, y, k):
        outs, k0 = state
        j = (k - k0).clamp(0, outs.shape[1] - 1)
        f = outs[torch.arange(y.shape[0], device=y.device), j].view_as(y)
        return chain.mean_from(y, k, f)

    def affine(self, chain, state, k):
        outs, k0 = state
        a, b, _ = chain.coefs(outs)
        j = (k - k0[:, None]).clamp(0, outs.shape[1] - 1)
        f = torch.gather(outs, 1, j[..., None].expand(-1, -1, outs.shape[2]))  # (b, L, d)
        return a[k], (b[k][..., None] * f).view(*k.shape, *chain.shape)

    def select(self, state, rows):
        return state[0][rows], state[1][rows]


def _rollouts(chain: GaussianChain, n: int, seed: int):
    """States x_k (T, n, d) and target outputs f(x_k, k) along plain-sampler trajectories."""
    gen = torch.Generator().manual_seed(seed)
    x = chain.prior(n, gen, dtype=torch.float64)
    xs, fs = [], []
    for k in range(chain.n_steps):
        kk = torch.full((n,), k, dtype=torch.long)
        f = chain.evaluate(x, kk)
        xs.append(x.reshape(n, -1))
        fs.append(f.reshape(n, -1))
        m = chain.mean_from(x, kk, f)
        x = m + float(chain.sigma[k]) * torch.randn(m.shape, generator=gen, dtype=torch.float64) if chain.sigma[k] > 0 \
            else m
    return torch.stack(xs), torch.stack(fs)


def _check_memory(chain: GaussianChain, window: int, n_traj: int) -> None:
    """Refuse a training whose targets (steps x rollouts x (window - 1) x d, float64 and a float32 copy) would take
    more than half of this machine's memory, before the rollouts run."""
    need = chain.n_steps * n_traj * (window - 1) * chain.dim * 12
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else None
    if total and need > total / 2:
        fit = max(1, int(n_traj * total / 2 / need))
        raise SamplerError(f"medusa heads at d={chain.dim}, {chain.n_steps} steps, window {window} with {n_traj} "
                           f"rollouts need about {need / 2**30:.0f} GiB of training targets (this machine has "
                           f"{total / 2**30:.0f} GiB): train on fewer rollouts (n_traj <= {fit}, e.g. "
                           "bridge.make_builtin_drafter(..., medusa_train={'n_traj': ...})) or use a smaller window")


def train_heads(chain: GaussianChain, window: int, *, n_traj: int = 1000, epochs: int = 10, hidden: int = 128,
                seed: int = 0) -> Heads:
    """Fit the heads on ``n_traj`` target rollouts (float64) in float32 with Adam at learning rate :data:`LR`
    (deterministic for a seed, on CPU)."""
    if window < 2:
        raise SamplerError("medusa heads predict positions 1 .. window - 1: use window >= 2")
    _check_memory(chain, window, n_traj)
    chain = chain.to(dtype=torch.float64, device="cpu")
    torch.manual_seed(seed)
    xs, fs = _rollouts(chain, n_traj, seed)
    T, _, d = xs.shape
    heads = Heads(d, T, window, hidden)
    # training pairs: every start k with the outputs at k + 1 .. k + L - 1 (clamped at the chain's end)
    ks = torch.arange(T)
    future = torch.stack([fs[(ks + j).clamp(max=T - 1)] for j in range(1, window)], dim=2)  # (T, n, L-1, d)
    valid = torch.stack([(ks + j) < T for j in range(1, window)], dim=1)  # (T, L-1)
    X, F = xs.reshape(T * n_traj, d).float(), fs.reshape(T * n_traj, d).float()
    K = ks.repeat_interleave(n_traj)
    Y = future.reshape(T * n_traj, window - 1, d).float()
    W = valid.repeat_interleave(n_traj, dim=0).float()
    opt = torch.optim.Adam(heads.parameters(), lr=LR)
    gen = torch.Generator().manual_seed(seed + 1)
    batch = 1024
    for _ in range(epochs):
        order = torch.randperm(X.shape[0], generator=gen)
        for i in range(0, X.shape[0], batch):
            idx = order[i:i + batch]
            err = (heads(X[idx], F[idx], K[idx]) - Y[idx]).square().mean(2)
            loss = (err * W[idx]).sum() / W[idx].sum().clamp(min=1)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return heads.to(torch.float64).eval().requires_grad_(False)


def cache_path(chain: GaussianChain, window: int, *, key: str, cache: Path | str | bool = True, **train) -> Path:
    """Where :func:`load_or_train` keeps the heads for ``chain`` (named by ``key`` and the training options);
    ``cache``: a folder, or True for ``cache_dir("medusa")``."""
    tag = hashlib.sha256(repr((key, chain.n_steps, chain.dim, window, sorted(train.items()), CACHE_VERSION))
                         .encode()).hexdigest()
    folder = resolve(cache, CACHE_NAME)
    if folder is None:
        raise SamplerError("cache_path needs a cache folder (or True for the default); got None")
    return folder / f"{tag[:16]}.pt"


def load_or_train(chain: GaussianChain, window: int, *, key: str, cache: Path | str | bool | None = True,
                  **train) -> Heads:
    """Heads for ``chain`` from the cache (file named by ``key`` and the training options) or trained now.
    ``cache``: a folder, True (default: ``cache_dir("medusa")``, under ``$SPECVERIFY_CACHE`` or the user cache) or
    None (train, save nothing). ``heads.fit_info`` records ``seconds`` (the training time, measured when it was
    trained) and ``cached``."""
    path = None if resolve(cache, CACHE_NAME) is None else cache_path(chain, window, key=key, cache=cache, **train)
    if path is not None and path.exists():
        heads = Heads(chain.dim, chain.n_steps, window, train.get("hidden", 128)).to(torch.float64)
        saved = torch.load(path, weights_only=True)
        heads.load_state_dict(saved["state"])
        heads.fit_info = {"seconds": saved["seconds"], "cached": True}
        return heads.eval().requires_grad_(False)
    t0 = time.perf_counter()
    heads = train_heads(chain, window, **train)
    heads.fit_info = {"seconds": time.perf_counter() - t0, "cached": False}
    if path is not None:
        saved = {"state": heads.state_dict(), "seconds": heads.fit_info["seconds"]}
        atomic_write(path, lambda tmp: torch.save(saved, tmp))
    return heads
