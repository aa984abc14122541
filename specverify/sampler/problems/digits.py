"""The `digits` problem: DDPM on scikit-learn's 8x8 digits with a small eps-prediction network trained here.

Data: ``sklearn.datasets.load_digits`` (1797 images shipped with scikit-learn, no download), scaled from 0..16
to [-1, 1], shape (1, 8, 8); a fixed split holds out 297 images for sample-quality figures.

Model: ``eps(x_t, lambda)`` = the exact eps of a per-pixel Gaussian fit of the training digits plus a residual
MLP, conditioned on the log signal-to-noise ratio lambda = log(abar / (1 - abar)) (clipped to [-15, 15]), not on
a step index, so one trained network serves chains of any length and either schedule: a chain built on
``beta_schedule(schedule, steps)`` passes lambda of its own ``abar[t]``. Training (Ho et al. 2020, eq. 14, the
"simple" loss) draws lambda from the continuous-time limits of the linear and the cosine schedules (half each);
the pixels are dequantized (uniform noise over each of the 17 grey levels' bins, which lowers the held-out MMD
of the samples); Adam with a cosine learning-rate decay; an exponential moving average of the weights is the
model. The draft model for the ``independent`` drafter is a smaller network trained the same way.

Contract: training is deterministic for a config on CPU (seeded init, one ``torch.Generator`` for data order,
noise levels and noise; the caller's global RNG is left as it was); :func:`load_or_train` caches the weights
under ``<cache root>/digits/<config hash>.pt`` (the root: ``$SPECVERIFY_CACHE``, else the user cache folder, see
:mod:`specverify.sampler.cache`; never the working directory) and rebuilds them when missing. Weights are bitwise equal
for one torch build (1 and 2 threads gave equal weights here; other builds or thread counts may differ in the
last bits). The law of the chain has no closed form: the reference is our plain sampler on the same chain.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import math
import os
import time
from pathlib import Path

import numpy as np
import torch

from specverify._files import atomic_write
from specverify.errors import ChainError
from specverify.sampler.cache import resolve
from specverify.sampler.chains import GaussianChain, beta_schedule, ddim, ddpm
from specverify.sampler.problems.base import DiffusionProblem

__all__ = ["CONFIGS", "DigitsConfig", "DigitsDenoiser", "DigitsProblem", "EpsNet", "digits_images",
           "digits_labels", "load_or_train", "train"]

CACHE_NAME = "digits"  # the folder under the cache root
ENV = "SPECVERIFY_DIGITS_CONFIG"  # a test override of the default config (tests/conftest.py sets "quick")
SHAPE = (1, 8, 8)
N_TEST = 297  # held-out images (1797 - 1500)
LOG_SNR_MAX = 15.0  # |lambda| is clipped here: abar in [3e-7, 1 - 3e-7] covers every chain's conditioning
VERSION = 1  # bump when training changes: it is part of the cache key


@functools.lru_cache(maxsize=1)
def _all() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.images))  # fixed split, independent of training seeds
    x = (data.images.astype(np.float64) / 8.0 - 1.0)[order].reshape(-1, *SHAPE)  # 0..16 -> [-1, 1]
    y = data.target[order]
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def _split(split: str) -> slice:
    parts = {"train": slice(N_TEST, None), "test": slice(0, N_TEST), "all": slice(None)}
    if split not in parts:
        raise ChainError(f"split must be 'train', 'test' or 'all', got {split!r}")
    return parts[split]


def digits_images(split: str = "train") -> np.ndarray:
    """The digits in [-1, 1], shape (N, 1, 8, 8): ``"train"`` (1500 images), ``"test"`` (297) or ``"all"``."""
    return _all()[0][_split(split)].copy()


def digits_labels(split: str = "train") -> np.ndarray:
    """The class (0..9) of each image of :func:`digits_images` (for the sample-quality classifier)."""
    return _all()[1][_split(split)].copy()


# ----------------------------------------------------------------------------------------------- network


class EpsNet(torch.nn.Module):
    """eps(x_t, lambda) on (b, 1, 8, 8): the exact eps of the per-pixel Gaussian fit of the training digits (the
    skip) plus a residual MLP on the input scaled to unit variance, with a sinusoidal embedding of lambda added
    inside every block. The skip makes the easy part exact: x_t itself at low SNR, constant border pixels."""

    def __init__(self, hidden: int = 256, blocks: int = 3, n_freq: int = 16):
        super().__init__()
        train = digits_images("train").reshape(-1, 64)
        self.register_buffer("mu", torch.tensor(train.mean(0), dtype=torch.float32))
        self.register_buffer("var", torch.tensor(train.var(0), dtype=torch.float32))
        self.register_buffer("freqs", torch.exp(torch.linspace(0.0, math.log(64.0), n_freq)) / LOG_SNR_MAX)
        self.embed = torch.nn.Sequential(torch.nn.Linear(2 * n_freq, 64), torch.nn.SiLU())
        self.inp = torch.nn.Linear(64, hidden)
        self.time = torch.nn.ModuleList(torch.nn.Linear(64, hidden) for _ in range(blocks))
        self.blocks = torch.nn.ModuleList(
            torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Linear(hidden, hidden), torch.nn.SiLU(),
                                torch.nn.Linear(hidden, hidden)) for _ in range(blocks))
        self.out = torch.nn.Sequential(torch.nn.SiLU(), torch.nn.Linear(hidden, 64))

    def forward(self, x: torch.Tensor, log_snr: torch.Tensor) -> torch.Tensor:
        abar = torch.sigmoid(log_snr)[:, None]
        sa, sb2 = abar.sqrt(), torch.sigmoid(-log_snr)[:, None]  # 1 - abar without cancellation
        centred = x.flatten(1) - sa * self.mu
        var_t = abar * self.var + sb2  # per-pixel variance of x_t under the Gaussian fit
        skip = sb2.sqrt() * centred / var_t
        ang = log_snr[:, None] * self.freqs
        e = self.embed(torch.cat([ang.sin(), ang.cos()], 1))
        h = self.inp(centred * torch.rsqrt(var_t))
        for block, time_proj in zip(self.blocks, self.time, strict=True):
            h = h + block(h + time_proj(e))
        return (skip + self.out(h)).view_as(x)


class DigitsDenoiser(torch.nn.Module):
    """``model(x, t)`` for the chain: the trained network at lambda(abar[t]) of this schedule, as eps, x0 or v."""

    def __init__(self, net: EpsNet, betas, prediction: str = "eps"):
        super().__init__()
        if prediction not in ("eps", "x0", "v"):
            raise ChainError(f"prediction must be 'eps', 'x0' or 'v', got {prediction!r}")
        self.net, self.prediction = net, prediction
        abar = np.cumprod(1 - np.asarray(betas, dtype=np.float64))
        self.register_buffer("abar", torch.tensor(abar))
        self.register_buffer("log_snr", torch.tensor(np.clip(np.log(abar) - np.log1p(-abar), -LOG_SNR_MAX,
                                                             LOG_SNR_MAX)))

    def forward(self, x, t):
        eps = self.net(x, self.log_snr[t].to(x.dtype))
        if self.prediction == "eps":
            return eps
        sa = self.abar[t].to(x.dtype).sqrt().view(-1, *([1] * (x.ndim - 1)))
        sb = (1 - self.abar[t].to(x.dtype)).sqrt().view_as(sa)
        x0 = (x - sb * eps) / sa
        return x0 if self.prediction == "x0" else sa * eps - sb * x0


# ----------------------------------------------------------------------------------------------- training


@dataclasses.dataclass(frozen=True)
class DigitsConfig:
    """Everything that determines the trained weights (with the code's ``VERSION``)."""

    hidden: int = 256
    blocks: int = 3
    iterations: int = 10000
    batch: int = 256
    lr: float = 2e-3
    ema: float = 0.999
    dequantize: bool = True
    seed: int = 0

    def tag(self) -> str:
        return hashlib.sha256(repr(("digits", VERSION, dataclasses.astuple(self))).encode()).hexdigest()[:16]


# name -> (target config, draft config): "full" for the paper figures, "quick" (seconds) for tests and CI
CONFIGS = {
    "full": (DigitsConfig(), DigitsConfig(hidden=64, blocks=1, seed=1)),
    "quick": (DigitsConfig(hidden=64, blocks=1, iterations=150, batch=128, ema=0.9),
              DigitsConfig(hidden=32, blocks=1, iterations=150, batch=128, ema=0.9, seed=1)),
}


def _sample_log_snr(n: int, gen: torch.Generator) -> torch.Tensor:
    """lambda from the continuous-time linear schedule (log abar(s) = -(0.1 s + 9.95 s^2), the limit of
    ``beta_schedule("linear", n)``) or cosine schedule (abar(s) = f(s) / f(0)), half each, s ~ U(0, 1)."""
    s = torch.rand(n, generator=gen, dtype=torch.float64)
    use_cosine = torch.rand(n, generator=gen) < 0.5
    log_lin = -(0.1 * s + 9.95 * s**2)
    f = torch.cos((s + 0.008) / 1.008 * math.pi / 2) ** 2
    log_cos = torch.log(f.clamp_min(1e-30) / math.cos(0.008 / 1.008 * math.pi / 2) ** 2)
    log_a = torch.where(use_cosine, log_cos, log_lin).clamp(max=-1e-12)
    return (log_a - torch.log(-torch.expm1(log_a))).clamp(-LOG_SNR_MAX, LOG_SNR_MAX).float()


def _loss(net, x0, log_snr, eps):
    a = torch.sigmoid(log_snr).view(-1, 1, 1, 1)
    return (net(a.sqrt() * x0 + (1 - a).sqrt() * eps, log_snr) - eps).square().mean()


@torch.no_grad()
def _test_loss(net: EpsNet, repeats: int = 8, seed: int = 12345) -> float:
    """The loss on the held-out images, ``repeats`` fixed noise draws each (deterministic)."""
    x0 = torch.tensor(digits_images("test"), dtype=torch.float32).repeat(repeats, 1, 1, 1)
    gen = torch.Generator().manual_seed(seed)
    return float(_loss(net, x0, _sample_log_snr(len(x0), gen), torch.randn(x0.shape, generator=gen)))


def train(config: DigitsConfig, *, threads: int | None = None) -> tuple[EpsNet, dict]:
    """Train ``config`` on the training split (float32, CPU). Returns the EMA network (eval, frozen) and
    ``{"seconds", "train_loss" (mean of the last 10% of batches), "test_loss" (EMA net, held-out)}``."""
    x = torch.tensor(digits_images("train"), dtype=torch.float32)
    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        t0 = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            net = EpsNet(config.hidden, config.blocks)
        ema = copy.deepcopy(net).requires_grad_(False)
        opt = torch.optim.Adam(net.parameters(), lr=config.lr)
        gen = torch.Generator().manual_seed(config.seed + 1)
        tail = max(1, config.iterations // 10)
        losses = []
        for i in range(config.iterations):
            for group in opt.param_groups:  # cosine decay to zero
                group["lr"] = config.lr * 0.5 * (1 + math.cos(math.pi * i / config.iterations))
            idx = torch.randint(len(x), (config.batch,), generator=gen)
            log_snr = _sample_log_snr(config.batch, gen)
            x0 = x[idx]
            if config.dequantize:  # uniform noise over each pixel's bin of width 2 / 16
                x0 = x0 + (torch.rand(x0.shape, generator=gen) - 0.5) / 8
            loss = _loss(net, x0, log_snr, torch.randn((config.batch, *SHAPE), generator=gen))
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                for pe, p in zip(ema.parameters(), net.parameters(), strict=True):
                    pe.lerp_(p, 1 - config.ema)
            if i >= config.iterations - tail:
                losses.append(float(loss.detach()))
        ema.eval()
        info = {"seconds": time.perf_counter() - t0, "train_loss": float(np.mean(losses)),
                "test_loss": _test_loss(ema)}
    finally:
        torch.set_num_threads(old_threads)
    return ema, info


def load_or_train(config: DigitsConfig, *, cache: Path | str | bool | None = True,
                  threads: int | None = None) -> tuple[EpsNet, dict]:
    """The network for ``config`` from ``cache/<config.tag()>.pt``, or trained now and saved there (atomically).
    ``cache``: a folder, True (default: ``cache_dir("digits")``, under ``$SPECVERIFY_CACHE`` or the user cache) or
    None (train, save nothing). ``info`` is the training record (see :func:`train`) plus ``"cached"`` (True when
    loaded)."""
    folder = resolve(cache, CACHE_NAME)
    path = None if folder is None else folder / f"{config.tag()}.pt"
    if path is not None and path.exists():
        saved = torch.load(path, weights_only=True)
        net = EpsNet(config.hidden, config.blocks)
        net.load_state_dict(saved["state"])
        return net.eval().requires_grad_(False), dict(saved["info"], cached=True)
    net, info = train(config, threads=threads)
    if path is not None:
        saved = {"state": net.state_dict(), "info": info, "config": dataclasses.asdict(config)}
        atomic_write(path, lambda tmp: torch.save(saved, tmp))
    return net, dict(info, cached=False)


# ----------------------------------------------------------------------------------------------- problem


class DigitsProblem(DiffusionProblem):
    """Built-in problem `digits`: DDPM (or DDIM, eta > 0) on scikit-learn's 8x8 digits, a network trained here.

    ``config``: ``"full"`` (the default: the paper figures) or ``"quick"`` (seconds: tests and CI), or a pair of
    :class:`DigitsConfig` (target, draft). Pass it explicitly; only when it is left out does the environment
    variable SPECVERIFY_DIGITS_CONFIG, if set, replace the default (a switch for test runs: tests/conftest.py sets
    ``quick``). ``config_name`` records the choice. The networks are loaded (or trained, minutes for "full") on
    first use, from ``cache`` (see :func:`load_or_train`).
    """

    name = "digits"
    exact_law = False
    reference = "our plain sampler (no closed form; trained network, sklearn digits 8x8)"
    params = {"--steps": "number of chain steps (one network serves any)", "--schedule": "linear | cosine",
              "--chain": "ddpm | ddim", "--eta": "DDIM eta > 0", "--prediction": "eps | x0 | v"}
    shape = SHAPE
    dim = math.prod(SHAPE)

    def __init__(self, dim: int | None = None, config=None, *, cache: Path | str | bool | None = True,
                 threads: int | None = None):
        if dim is not None and dim != self.dim:
            raise ChainError(f"digits has a fixed dimension {self.dim} (1 x 8 x 8); got dim={dim}: drop it or pass 64")
        config = (os.environ.get(ENV) or "full") if config is None else config
        self.config_name = config if isinstance(config, str) else "custom"
        if isinstance(config, str):
            if config not in CONFIGS:
                raise ChainError(f"digits config must be one of {', '.join(CONFIGS)}, got {config!r} (from {ENV}?)")
            config = CONFIGS[config]
        self.configs = tuple(config)
        if len(self.configs) != 2 or not all(isinstance(c, DigitsConfig) for c in self.configs):
            raise ChainError("config must be 'full', 'quick' or a pair of DigitsConfig (target, draft)")
        self.cache, self.threads = cache, threads
        self._nets: dict[int, tuple[EpsNet, dict]] = {}

    def _net(self, which: int) -> EpsNet:
        if which not in self._nets:
            self._nets[which] = load_or_train(self.configs[which], cache=self.cache, threads=self.threads)
        return self._nets[which][0]

    @property
    def training(self) -> dict:
        """Training records of the two networks (trains or loads them)."""
        self._net(0), self._net(1)
        return {"target": self._nets[0][1], "draft": self._nets[1][1]}

    def model(self, betas, prediction: str = "eps") -> DigitsDenoiser:
        return DigitsDenoiser(self._net(0), betas, prediction)

    eps_model = model

    def _make(self, which, steps, schedule, sampler, prediction, eta) -> GaussianChain:
        """Network ``which`` (0: the target, 1: the draft) in a chain, named after the problem and its role."""
        name = f"{self.name}-{sampler}" if which == 0 else f"{self.name}-draft"
        betas = beta_schedule(schedule, steps)
        model = DigitsDenoiser(self._net(which), betas, prediction)
        if sampler == "ddpm":
            return dataclasses.replace(ddpm(model, betas, SHAPE, prediction=prediction), name=name)
        if sampler == "ddim":
            return dataclasses.replace(ddim(model, betas, SHAPE, eta=eta, prediction=prediction), name=name)
        raise ChainError(f"sampler must be 'ddpm' or 'ddim', got {sampler!r}")

    def chain(self, steps=100, *, schedule="linear", sampler="ddpm", prediction="eps", eta=1.0) -> GaussianChain:
        """The target chain on states of shape (1, 8, 8)."""
        return self._make(0, steps, schedule, sampler, prediction, eta)

    def draft_chain(self, steps=100, *, schedule="linear", sampler="ddpm", prediction="eps", eta=1.0):
        """The same schedule with the smaller draft network, for the independent drafter."""
        return self._make(1, steps, schedule, sampler, prediction, eta)

    def data_sample(self, n: int, seed: int = 0, split: str = "test") -> np.ndarray:
        """``n`` distinct images of ``split`` (shape (n, 1, 8, 8)), drawn without replacement."""
        x = digits_images(split)
        if not 1 <= n <= len(x):
            raise ChainError(f"n must be in 1..{len(x)} for the {split!r} split, got {n}")
        return x[np.random.default_rng(seed).choice(len(x), n, replace=False)]
