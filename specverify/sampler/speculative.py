"""Plain and speculative samplers for Gaussian chains.

Speculative sampling (De Bortoli, Galashov, Gretton, Doucet, ICML 2025, Alg. 2), batched over samples that
each sit at their own step. One round is one batched target call:

1. Every active sample whose window can start drafts up to L steps: y_{j+1} = m_q(y_j, n + j) + s z_j.
   A window stops in front of a zero-noise step and at the end of the chain.
2. The target is evaluated at all the states it needs, for all active samples, in ONE model call: the
   drafted states y_1 .. y_L (y_L only if it is not the final state), and x_n itself when its target output
   is not cached.
3. Each drafted step is verified by the reflection maximal coupling (log space); the first rejected step is
   replaced by the reflected draw and the later drafts are discarded; the next window starts there.

Policies (counted honestly in :class:`SpecStats`):
- No bonus step. When a window is accepted in full, the target output at its last drafted state (already
  computed in the round's call) is cached and anchors the next window, instead of being spent on one extra
  step. After a rejection nothing is cached.
- Drafters that need the target at the window start (frozen drift, frozen denoiser) spend a round on x_n
  alone when nothing is cached (a warm-up call: the first window, and after each rejection).
- A zero-noise step (sigma = 0) is taken by the target directly: free when its output is cached, else it
  takes part in the round's call.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from specverify.errors import SamplerError
from specverify.sampler.chains import GaussianChain, _bcast
from specverify.sampler.drafters.base import Drafter
from specverify.sampler.noise import GeneratorNoise, NoiseSource
from specverify.sampler.window import _speculative_batch

__all__ = ["Faults", "SpecStats", "plain_sample", "speculative_sample"]


@dataclasses.dataclass(frozen=True)
class SpecStats:
    """Counters of one speculative run, in the style of LLM speculative decoding.

    Per window position j (0-based): ``proposed`` drafted steps, ``verified`` steps whose acceptance was
    decided (up to and including the first rejection), ``accepted`` accepted steps, ``predicted_accepted``
    the sum of 2 Phi(-|D| / 2) over the verified steps (the expectation of ``accepted`` given the path).
    The ``*_per_sample`` arrays hold the same three counts per trajectory (the acceptance test's unit), and the
    ``*_per_step`` arrays, of shape (n_steps, window), per chain step k (row) and window position j (column).
    """

    n_samples: int
    n_steps: int
    window: int
    drafter: str
    rounds: np.ndarray
    rounds_total: int
    target_evaluations: int
    draft_evaluations: int
    windows: int
    warmup_evaluations: int
    direct_steps: int
    proposed_per_position: np.ndarray
    verified_per_position: np.ndarray
    accepted_per_position: np.ndarray
    predicted_accepted_per_position: np.ndarray
    accepted_per_sample: np.ndarray
    verified_per_sample: np.ndarray
    predicted_per_sample: np.ndarray
    verified_per_step: np.ndarray
    accepted_per_step: np.ndarray
    predicted_per_step: np.ndarray

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

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out[f.name] = v.tolist() if isinstance(v, np.ndarray) else v
        for name in ("rounds", "accepted_per_sample", "verified_per_sample", "predicted_per_sample",
                     "verified_per_step", "accepted_per_step", "predicted_per_step"):
            del out[name]
        for name in ("rounds_mean", "nfe_ratio", "acceptance_rate", "predicted_acceptance_rate",
                     "mean_accepted_length"):
            out[name] = getattr(self, name)
        out["rounds_per_sample"] = {"min": int(self.rounds.min()), "max": int(self.rounds.max()),
                                    "mean": self.rounds_mean}
        return out


def _ratio(num, den) -> float:
    """num / den as a float, NaN when den is 0 (nothing counted)."""
    return float(num / den) if den else float("nan")


def _setup(chain, n, seed, noise, x0, device, dtype):
    if not isinstance(chain, GaussianChain):
        raise SamplerError(f"chain must be a GaussianChain, got {type(chain).__name__}")
    if not isinstance(n, int) or n < 1:
        raise SamplerError(f"n must be a positive int, got {n!r}")
    if dtype not in (torch.float32, torch.float64):
        raise SamplerError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    device = torch.device(device) if device is not None else (x0.device if x0 is not None else torch.device("cpu"))
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
    return chain, (noise if noise is not None else GeneratorNoise(gen)), x0.clone()


def _progress(total, enabled, desc):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="step", leave=False)


@torch.no_grad()
def plain_sample(chain: GaussianChain, n: int, *, seed: int | None = None, noise: NoiseSource | None = None,
                 x0: torch.Tensor | None = None, device=None, dtype=torch.float32, progress=False) -> torch.Tensor:
    """Run the chain step by step (one target call per step). Returns x_T of shape (n, *shape)."""
    chain, noise, x = _setup(chain, n, seed, noise, x0, device, dtype)
    _, _, sig = chain.coefs(x)
    ids = torch.arange(n, device=x.device)
    bar = _progress(chain.n_steps, progress, "plain")
    for k in range(chain.n_steps):
        kk = torch.full((n,), k, device=x.device, dtype=torch.long)
        m = chain.mean(x, kk)
        x = m + _bcast(sig[kk], m) * noise.normal(ids, kk, m) if chain.sigma[k] > 0 else m
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return x


@dataclasses.dataclass(frozen=True)
class Faults:
    """Deliberate bugs for mutation testing (``specverify.sampler.mutants``); each non-default field breaks exactness.

    ``coupling`` replaces :func:`specverify.sampler.coupling.couple`; ``sigma_shift`` verifies step k with the noise
    scale of step k + shift; ``reuse_noise`` makes every drafted step of a window reuse the first step's z;
    ``continue_after_reject`` commits the whole window (the later drafts follow the rejected draft);
    ``stale_target`` verifies drafted step j with the target output at the previous drafted state.
    """

    coupling: object = None
    sigma_shift: int = 0
    reuse_noise: bool = False
    continue_after_reject: bool = False
    stale_target: bool = False


_NO_FAULTS = Faults()

# Auto chunking: at most this many elements in one (batch, window + 1, *shape) block (256 MB in float64).
_CHUNK_ELEMENTS = 2**25


@torch.no_grad()
def speculative_sample(chain: GaussianChain, drafter: Drafter, n: int, *, window: int, seed: int | None = None,
                       noise: NoiseSource | None = None, x0: torch.Tensor | None = None, device=None,
                       dtype=torch.float32, max_batch: int | None = None, progress=False,
                       _faults: Faults | None = None) -> tuple[torch.Tensor, SpecStats]:
    """Speculative sampling of ``chain`` with ``drafter`` and windows of up to ``window`` drafted steps.

    Contract: for any drafter, the output has exactly the law of :func:`plain_sample` (the discretised chain),
    and with ``TableNoise`` and the oracle drafter it equals plain_sample's output under the same noise.
    Samples run in batches of at most ``max_batch`` (default: as many as keep one (batch, window + 1, *shape)
    block under 2^25 elements), one batch after the other; ``rounds_total`` counts the calls of all batches.
    Returns ``(x_T, stats)``. ``_faults`` injects bugs, for the mutation tests only.
    """
    if not isinstance(window, int) or isinstance(window, bool) or window < 1:
        raise SamplerError(f"window must be an int >= 1, got {window!r}")
    if not isinstance(drafter, Drafter):
        raise SamplerError(f"drafter must be a Drafter (see specverify.sampler.drafters.make_drafter), got {drafter!r}")
    if max_batch is not None and (not isinstance(max_batch, int) or isinstance(max_batch, bool) or max_batch < 1):
        raise SamplerError(f"max_batch must be a positive int or None, got {max_batch!r}")
    drafter.check(chain)
    chain, noise, x = _setup(chain, n, seed, noise, x0, device, dtype)
    drafter = drafter.to(device=x.device, dtype=x.dtype)
    T, L, dev = chain.n_steps, window, x.device
    if max_batch is None:
        max_batch = max(1, _CHUNK_ELEMENTS // ((L + 1) * chain.dim))
    rounds = torch.zeros(n, dtype=torch.long, device=dev)
    c = dict(rounds_total=0, target_evaluations=0, draft_evaluations=0, windows=0, warmup_evaluations=0,
             direct_steps=0)
    per_pos = {name: torch.zeros(L, dtype=torch.float64, device=dev)
               for name in ("proposed", "verified", "accepted", "predicted")}
    per_sample = {name: torch.zeros(n, dtype=torch.float64, device=dev) for name in ("accepted", "verified",
                                                                                       "predicted")}
    per_step = {name: torch.zeros(T * L, dtype=torch.float64, device=dev) for name in ("verified", "accepted",
                                                                                         "predicted")}
    bar = _progress(n * T, progress, f"speculative ({drafter.name}, L={L})")
    for start in range(0, n, max_batch):
        sl = slice(start, min(n, start + max_batch))
        gid = torch.arange(sl.start, sl.stop, device=dev)
        x[sl] = _speculative_batch(chain, drafter, x[sl], gid, noise, L, rounds[sl], c, per_pos,
                                   {k: v[sl] for k, v in per_sample.items()} | {"step": per_step}, bar,
                                   _faults or _NO_FAULTS)
    if bar is not None:
        bar.close()
    proposed, verified, accepted, predicted = per_pos.values()

    stats = SpecStats(
        n_samples=n, n_steps=T, window=L, drafter=drafter.name, rounds=rounds.cpu().numpy(),
        proposed_per_position=proposed.cpu().numpy().astype(np.int64),
        verified_per_position=verified.cpu().numpy().astype(np.int64),
        accepted_per_position=accepted.cpu().numpy().astype(np.int64),
        predicted_accepted_per_position=predicted.cpu().numpy(),
        accepted_per_sample=per_sample["accepted"].cpu().numpy().astype(np.int64),
        verified_per_sample=per_sample["verified"].cpu().numpy().astype(np.int64),
        predicted_per_sample=per_sample["predicted"].cpu().numpy(),
        **{f"{k}_per_step": v.view(T, L).cpu().numpy() for k, v in per_step.items()}, **c)
    return x, stats
