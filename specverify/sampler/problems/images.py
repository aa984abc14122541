"""The `images` problem, torch side: N photo crops smoothed by N(0, std^2 I), with their exact denoiser.

Data: N crops of s x s pixels, 3 channels (d = 3 s^2; 32 x 32, d = 3072 by default), cut on a grid of
non-overlapping tiles from the two photos that scikit-learn ships (``sklearn.datasets.load_sample_images``:
china.jpg and flower.jpg, 427 x 640, no download), shuffled with a seed, the first N kept, pixels scaled from
0..255 to [-1, 1]. The data law is their empirical law smoothed, x0 ~ (1 / N) sum_i N(x_i, std^2 I): the `gmm`
problem with N equal-weight isotropic components at image positions (its plain data is a ``GMMSpec``). With
v = std^2, a = sqrt(abar_t) and s_t^2 = a^2 v + 1 - a^2 the posterior mean is

    E[x0 | x_t] = ((1 - a^2) sum_i r_i x_i + a v x_t) / s_t^2,
    r = softmax_i((a <x_t, x_i> - a^2 |x_i|^2 / 2) / s_t^2)          (the |x_t|^2 term is common to all i).

Cost: two (b, d) x (d, N) products per call, about 4 N d flops per sample and step (N = 64, d = 3072: 0.8
Mflop), plus a few passes over the (b, d) state, which bound the cost at small N. The products run on blocks
of :data:`BLOCK` rows (zero-padded): BLAS chooses its kernel by shape, and a plain ``x @ mu.T`` differs in the
last bits between batch sizes, while the oracle identity test needs a model whose output for a sample does not
depend on its batch.

``--dim``: d = 3 s^2 picks the crop side s (192: 8 x 8, 768: 16 x 16, 3072: 32 x 32, the default); any other d is
refused. N (``n_images``), ``std`` and the crop ``seed`` are constructor options (``make_setup(...,
options={"n_images": 256})``). The independent drafter's model is the moment-matched isotropic Gaussian (as for
`gmm`). The law of the chain has no closed form; its reference is the JAX sampler.

Declared twin: :func:`specverify.harness.reference.images.images_x0` (JAX) writes the same posterior mean.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
import torch

from specverify.errors import ChainError
from specverify.sampler.problems.base import DiffusionProblem, X0Denoiser
from specverify.sampler.problems.gmm import IsotropicGaussianDenoiser
from specverify.specs import GMMSpec

__all__ = ["BLOCK", "DEFAULT_IMAGES", "DEFAULT_STD", "ImagesConfig", "ImagesDenoiser", "ImagesProblem",
           "diffusers_unet", "image_crops"]

BLOCK = 128  # rows per matrix product (see the module docstring)
DEFAULT_IMAGES = 64  # N: the law's photo crops (a default `specverify check --problem images`: 58 s to 88 s on 2 cores)
DEFAULT_STD = 0.1  # smoothing std (pixels in [-1, 1]): the chain's law is N blobs, not N points
CHANNELS = 3


@functools.lru_cache(maxsize=4)
def _tiles(size: int) -> np.ndarray:
    """Every non-overlapping size x size tile of the two sample photos, (M, 3, size, size) in [-1, 1]."""
    from sklearn.datasets import load_sample_images

    tiles = []
    for img in load_sample_images().images:  # (427, 640, 3) uint8 each
        h, w = img.shape[0] // size, img.shape[1] // size
        t = img[: h * size, : w * size].reshape(h, size, w, size, CHANNELS).transpose(0, 2, 4, 1, 3)
        tiles.append(t.reshape(-1, CHANNELS, size, size))
    x = np.concatenate(tiles).astype(np.float64) / 127.5 - 1.0
    x.setflags(write=False)
    return x


def image_crops(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """n distinct size x size crops (n, 3, size, size) in [-1, 1]: the photos' tiles, shuffled by ``seed``."""
    tiles = _tiles(int(size))
    if not 1 <= n <= len(tiles):
        raise ChainError(f"images: n_images must be in 1..{len(tiles)} for {size} x {size} crops (the two photos "
                         f"hold {len(tiles)} tiles), got {n}")
    return tiles[np.random.default_rng(seed).permutation(len(tiles))[:n]].copy()


def _crop_side(dim: int) -> int:
    s = math.isqrt(max(int(dim) // CHANNELS, 0))
    if isinstance(dim, bool) or int(dim) != dim or s < 1 or CHANNELS * s * s != dim:
        raise ChainError(f"images takes d = 3 s^2 for s x s crops (192: 8 x 8, 768: 16 x 16, 3072: 32 x 32, the "
                         f"default; s <= 213), got dim={dim}")
    return s


def _blocked_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b as batched products over blocks of BLOCK rows of a (the last one zero-padded): every block is the
    same (BLOCK, k) x (k, m) product, so a row's result does not depend on the batch it came in."""
    n, k = a.shape
    full, m = n - n % BLOCK, b.shape[1]
    out = a.new_empty((n, m))
    if full:
        torch.bmm(a[:full].reshape(-1, BLOCK, k), b.expand(full // BLOCK, k, m), out=out[:full].view(-1, BLOCK, m))
    if full < n:
        tail = torch.cat([a[full:], a.new_zeros((BLOCK - (n - full), k))])
        out[full:] = torch.bmm(tail[None], b[None])[0, : n - full]
    return out


class ImagesDenoiser(X0Denoiser):
    """Closed-form ``model(x, t)`` of the smoothed empirical law (equal weights, one variance): eps, x0 or v."""

    def __init__(self, spec: GMMSpec, betas, prediction: str = "eps"):
        super().__init__(betas, prediction)
        if np.ptp(spec.weights) > 1e-12 or np.ptp(spec.variances) > 0:
            raise ChainError("ImagesDenoiser needs equal weights and one shared variance (an empirical law)")
        self.register_buffer("mu", torch.tensor(spec.means))  # (N, d)
        self.register_buffer("mu_sq", torch.tensor((spec.means**2).sum(1)))  # (N,)
        self.var = float(spec.variances[0])

    def x0(self, x, t):
        xf = x.flatten(1)
        a2 = self.abar[t][:, None]  # (b, 1)
        a = a2.sqrt()
        s2 = a2 * self.var + (1 - a2)
        logits = (a * _blocked_mm(xf, self.mu.T) - 0.5 * a2 * self.mu_sq) / s2  # (b, N)
        r = torch.softmax(logits, dim=1) * ((1 - a2) / s2)  # the weights folded in: (b, N), not (b, d)
        return torch.addcmul(_blocked_mm(r, self.mu), xf, a * self.var / s2).view_as(x)


@dataclasses.dataclass(frozen=True)
class ImagesConfig:
    """What the data depends on beyond d; its tag keys caches of models trained on the chain (medusa heads)."""

    n_images: int
    std: float
    seed: int

    def tag(self) -> str:
        return f"images-n{self.n_images}-std{self.std!r}-seed{self.seed}"


class ImagesProblem(DiffusionProblem):
    """Built-in problem `images`: DDPM (or DDIM, eta > 0) on N smoothed photo crops, exact denoiser, (3, s, s)."""

    name = "images"
    exact_law = False
    reference = ("no closed-form chain law; JAX reference sampler (empirical-mixture denoiser), numpyro "
                 "MixtureSameFamily data law")
    params = {"--dim": "3 s^2 for s x s crops: 3072 (32 x 32, default), 768, 192, ... (others refused)",
              "--steps": "number of chain steps (default 250: frozen drafters accept 0.1 to 0.3 of their steps)",
              "--schedule": "linear | cosine", "--chain": "ddpm | ddim", "--eta": "DDIM eta > 0",
              "--prediction": "eps | x0 | v"}
    default_steps = 250  # the CLI's --steps when left out (other problems: 100); at 10 steps nothing is accepted
    model_cls = ImagesDenoiser
    draft_cls = IsotropicGaussianDenoiser
    dim = 3072  # the default d (default_dim); an instance may take another 3 s^2

    def __init__(self, dim: int = 3072, n_images: int = DEFAULT_IMAGES, std: float = DEFAULT_STD, seed: int = 0):
        side = _crop_side(dim)
        if not (isinstance(std, (int, float)) and math.isfinite(std) and std > 0):
            raise ChainError(f"images: std must be a finite number > 0 (the smoothing of each crop), got {std!r}")
        self.shape = (CHANNELS, side, side)
        self.dim = CHANNELS * side * side
        self.crops = image_crops(n_images, side, seed)
        n = len(self.crops)
        self.spec = GMMSpec(np.full(n, 1.0 / n), self.crops.reshape(n, -1), np.full(n, float(std) ** 2))
        self.configs = (ImagesConfig(n, float(std), int(seed)),)

    @property
    def event_shape(self) -> tuple[int, ...]:
        return self.shape

    def data_sample(self, n: int, seed: int = 0) -> np.ndarray:
        """Draws (n, 3, s, s) from the data law (not the chain's law) with numpy."""
        rng = np.random.default_rng(seed)
        c = rng.integers(len(self.crops), size=n)
        return self.crops[c] + rng.normal(size=(n, *self.shape)) * math.sqrt(self.spec.variances[0])


class _DiffusersEps(torch.nn.Module):
    """``unet(x, t)`` as diffusers calls it: t a (b,) tensor or a scalar; returns the eps prediction tensor."""

    def __init__(self, denoiser: ImagesDenoiser, shape):
        super().__init__()
        self.denoiser = denoiser
        self.config = type("Config", (), {"sample_size": shape[1], "in_channels": shape[0]})()

    def forward(self, x, t):
        t = torch.as_tensor(t, device=x.device).long().reshape(-1).expand(x.shape[0])
        return self.denoiser(x, t)


def diffusers_unet(problem: ImagesProblem, scheduler) -> torch.nn.Module:
    """The exact denoiser as a diffusers-style eps model on (3, s, s) for ``scheduler`` (DDPMScheduler or
    DDIMScheduler, prediction_type "epsilon"): its abar is the scheduler's ``alphas_cumprod`` (float64 of the
    float32 values), so ``chain_from_diffusers(unet, scheduler, ...)`` samples the same law as the reference side
    run on ``betas = 1 - abar_t / abar_{t-1}`` of those values. float64 (call ``.float()`` for float32)."""
    if scheduler.config.get("prediction_type", "epsilon") != "epsilon":
        raise ChainError("diffusers_unet returns eps predictions: use a scheduler with prediction_type='epsilon'")
    abar = scheduler.alphas_cumprod.detach().cpu().double().numpy()
    betas = 1 - abar / np.concatenate([[1.0], abar[:-1]])
    return _DiffusersEps(ImagesDenoiser(problem.spec, betas, "eps"), problem.shape).double().eval()
