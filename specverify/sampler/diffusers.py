"""diffusers models as chains: a ``UNet2DModel`` with a ``DDPMScheduler`` or a ``DDIMScheduler`` (eta > 0).

:func:`chain_from_diffusers` reads the scheduler's ``alphas_cumprod``, timesteps, ``prediction_type`` and variance
rule and returns the :class:`~specverify.sampler.chains.GaussianChain` whose step k is diffusers' ``scheduler.step`` at
``t = scheduler.timesteps[k]``, written as x_{k+1} ~ N(a_k x + b_k unet(x, t).sample, sigma_k^2 I). The mean comes
from :func:`specverify.sampler.chains.ddpm` (full schedule) or :func:`specverify.sampler.chains.ddim` (subsequences),
the noise scale from diffusers' own rule:

- ``DDPMScheduler``, full schedule (no ``set_timesteps``, or ``num_inference_steps = num_train_timesteps``): Ho et
  al. 2020, Alg. 2 = ``ddpm(...)``. ``variance_type="fixed_small"`` (and ``"fixed_small_log"``, the same scale) is
  the posterior variance; ``"fixed_large"`` is beta_t. diffusers adds no noise at t = 0, so the chain's last step
  has sigma = 0 with either (``ddpm(variance="beta")`` alone would add sqrt(beta_0) there).
- ``DDPMScheduler`` on a subsequence t_0 > t_1 > ... (``num_inference_steps`` or custom timesteps): diffusers steps
  from t_i to t_{i+1} (to abar = 1 after the last) with beta' = 1 - abar_t / abar_prev. Its posterior mean and
  variance are DDIM with eta = 1 on the same subsequence (Song et al. 2021, eq. 16), so the mean is
  ``ddim(..., eta=1, timesteps=...)``; ``"fixed_large"`` keeps that mean with sigma^2 = beta'.
- ``DDIMScheduler`` with eta > 0: Song et al. 2021, eq. 12 = ``ddim(..., eta=eta, timesteps=...)``. diffusers
  steps from t to t - num_train_timesteps // num_inference_steps (not to the next timestep in its list), so
  the adapter accepts only schedules where the two agree ("leading" with steps_offset below the ratio, or
  "trailing" with num_train_timesteps a multiple of num_inference_steps; not "linspace") and
  ``set_alpha_to_one=True``.

The schedule is diffusers' own: the betas handed to ``ddpm`` / ``ddim`` are 1 - abar_t / abar_{t-1} from the
scheduler's (float32) ``alphas_cumprod``, so the chain's abar equals diffusers' to float64 rounding.

Refused, with the fix in the message: ``clip_sample=True`` and ``thresholding=True`` (they clip the predicted x0,
which makes the mean a nonlinear function of the model output: rebuild the scheduler with
``type(scheduler).from_config(scheduler.config, clip_sample=False)``; the law is then the unclipped sampler's),
DDIM with eta = 0 (deterministic: no noise to couple), learned variances, zero terminal SNR, other schedulers.

Contract: for an accepted (unet, scheduler), every step's mean and sigma equal those of diffusers' ``step`` for the
same state and model output (``tests/test_diffusers_adapter.py`` checks this in float64 to 1e-10), up to one
documented difference: where diffusers' DDPM ``fixed_small`` rule clamps a zero variance to 1e-20 (the last step
of a subsequence ending at t > 0) it adds noise of std 1e-10; the chain's step is deterministic there.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch

from specverify.errors import ChainError
from specverify.sampler.chains import GaussianChain, ddim, ddpm

__all__ = ["PREDICTIONS", "VARIANCES", "DiffusersModel", "chain_from_diffusers", "diffusers_sample"]

# diffusers prediction_type -> the chain's prediction
PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
# DDPMScheduler variance_type -> the noise scale used ("fixed_small_log" draws with the same std as "fixed_small")
VARIANCES = {"fixed_small": "posterior", "fixed_small_log": "posterior", "fixed_large": "beta"}
_REBUILD = "type(scheduler).from_config(scheduler.config, {})"


class DiffusersModel(torch.nn.Module):
    """``unet(x, t).sample`` as ``model(x, t)`` for batched states x and integer diffusion times t of shape (b,)."""

    def __init__(self, unet: torch.nn.Module):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        out = self.unet(x, t)
        if hasattr(out, "sample"):
            return out.sample
        return out[0] if isinstance(out, tuple) else out


def _diffusers():
    try:
        import diffusers
    except ImportError as e:
        raise ImportError("the diffusers adapter needs diffusers: pip install 'specverify[diffusers]' "
                          "(or pip install diffusers)") from e
    return diffusers


def _scheduler_kind(scheduler) -> str:
    d = _diffusers()
    if type(scheduler) is d.DDPMScheduler:
        return "ddpm"
    if type(scheduler) is d.DDIMScheduler:
        return "ddim"
    raise ChainError(f"{type(scheduler).__name__} is not supported: the adapter maps DDPMScheduler and DDIMScheduler "
                     f"(eta > 0). For a model trained with DDPM, build one with "
                     f"DDPMScheduler.from_config(scheduler.config) or DDIMScheduler.from_config(scheduler.config)")


def _check_config(scheduler, kind: str) -> str:
    """Refuse what the Gaussian-chain form cannot express; return the chain's prediction name."""
    cfg = scheduler.config
    if cfg.get("thresholding", False):
        raise ChainError("thresholding=True rescales the predicted x0 per sample (dynamic thresholding), so the step "
                         "mean is not affine in the model output; rebuild the scheduler with "
                         + _REBUILD.format("thresholding=False, clip_sample=False")
                         + " (the chain then samples the unthresholded law)")
    if cfg.get("clip_sample", False):
        raise ChainError(f"clip_sample=True clips the predicted x0 to +-{cfg.get('clip_sample_range', 1.0)}, so the "
                         f"step mean is not affine in the model output; rebuild the scheduler with "
                         + _REBUILD.format("clip_sample=False")
                         + " (the chain then samples the unclipped law, e.g. Ho et al.'s Alg. 2 for DDPM)")
    if cfg.get("rescale_betas_zero_snr", False):
        raise ChainError("rescale_betas_zero_snr=True makes abar = 0 at the last training timestep, where the eps and "
                         "x0 parametrisations divide by zero; use a scheduler without it")
    pred = cfg.get("prediction_type", "epsilon")
    if pred not in PREDICTIONS:
        raise ChainError(f"prediction_type={pred!r} is not supported; use one of {sorted(PREDICTIONS)}")
    if kind == "ddpm":
        variance = getattr(scheduler, "variance_type", cfg.get("variance_type"))
        if variance not in VARIANCES:
            why = ("the variance depends on the state (a model output), but a chain step's sigma must not"
                   if variance in ("learned", "learned_range") else "diffusers' own step turns it into NaN")
            raise ChainError(f"variance_type={variance!r} is not supported ({why}); use one of {sorted(VARIANCES)}, "
                             f"e.g. " + _REBUILD.format("variance_type='fixed_small'"))
    if float(getattr(scheduler, "init_noise_sigma", 1.0)) != 1.0:
        raise ChainError(f"init_noise_sigma = {scheduler.init_noise_sigma}; the chain's prior is N(0, I)")
    return PREDICTIONS[pred]


def _timesteps(scheduler, kind: str, num_inference_steps) -> tuple[object, np.ndarray, np.ndarray]:
    """(scheduler copy with its timesteps set, timesteps t_k, the timestep diffusers' step k goes to)."""
    sch = copy.deepcopy(scheduler)  # set_timesteps mutates: keep the caller's scheduler as it is
    if num_inference_steps is not None:
        sch.set_timesteps(int(num_inference_steps))
    n_train = int(sch.config.num_train_timesteps)
    if kind == "ddim" and sch.num_inference_steps is None:
        raise ChainError("a DDIMScheduler needs its timesteps: pass num_inference_steps= (or call "
                         "scheduler.set_timesteps(n) first)")
    ts = sch.timesteps.detach().cpu().numpy().astype(np.int64)
    if ts.ndim != 1 or ts.size == 0 or np.any(np.diff(ts) >= 0) or ts.min() < 0 or ts.max() >= n_train:
        raise ChainError(f"scheduler.timesteps must be strictly decreasing in [0, {n_train}); got {ts[:5]}...")
    if kind == "ddpm":
        prev = np.array([int(sch.previous_timestep(int(t))) for t in ts], dtype=np.int64)
    else:
        prev = ts - n_train // sch.num_inference_steps
    if not (np.array_equal(prev[:-1], ts[1:]) and prev[-1] < 0):
        bad = int(np.flatnonzero(np.append(prev[:-1] != ts[1:], prev[-1] >= 0))[0])
        goes = f"t = {prev[bad]}" if prev[bad] >= 0 else "abar = 1"
        nxt = f"t = {ts[bad + 1]}" if bad + 1 < ts.size else "abar = 1 (the end)"
        raise ChainError(f"diffusers' step at t = {ts[bad]} goes to {goes} but the next step starts from {nxt} "
                         f"(timestep_spacing={sch.config.get('timestep_spacing')!r}); the chain needs each step to "
                         f"end where the next begins. Use timestep_spacing='leading' with steps_offset below "
                         f"num_train_timesteps // num_inference_steps, or 'trailing' with num_inference_steps "
                         f"dividing num_train_timesteps ({n_train})")
    if kind == "ddim" and float(sch.final_alpha_cumprod) != 1.0:
        raise ChainError("set_alpha_to_one=False makes DDIM's last step go to abar_0 instead of 1, which "
                         "specverify.sampler.chains.ddim does not express; rebuild with "
                         + _REBUILD.format("set_alpha_to_one=True"))
    return sch, ts, prev


def _sample_shape(unet, sample_shape) -> tuple[int, ...]:
    if sample_shape is not None:
        return tuple(int(s) for s in sample_shape)
    cfg = getattr(unet, "config", None)
    size = getattr(cfg, "sample_size", None) if cfg is not None else None
    channels = getattr(cfg, "in_channels", None) if cfg is not None else None
    if size is None or channels is None:
        raise ChainError("cannot read the sample shape from unet.config (sample_size, in_channels): pass "
                         "sample_shape=(channels, height, width)")
    size = (size, size) if isinstance(size, int) else tuple(size)
    return (int(channels), *(int(s) for s in size))


def chain_from_diffusers(unet: torch.nn.Module, scheduler, *, num_inference_steps: int | None = None,
                         eta: float | None = None, sample_shape=None, name: str | None = None) -> GaussianChain:
    """The Gaussian chain of diffusers' sampling loop ``x = scheduler.step(unet(x, t).sample, t, x).prev_sample``.

    ``unet``: a ``UNet2DModel`` (or any module called as ``unet(x, t)`` with a (b,) tensor of integer timesteps,
    returning ``.sample`` or a tensor shaped like x). ``scheduler``: a ``DDPMScheduler`` or ``DDIMScheduler``; it is
    not modified. ``num_inference_steps``: calls ``set_timesteps`` on a copy (default: the scheduler's current
    timesteps, which for a fresh DDPMScheduler is the full schedule). ``eta``: DDIM's noise weight, required
    (> 0, <= 1) for DDIM and not accepted for DDPM. ``sample_shape`` defaults to
    ``(in_channels, sample_size, sample_size)`` from ``unet.config``.

    Contract: chain step k is diffusers' step at ``t = timesteps[k]`` (same mean and noise scale, see the module
    docstring for the one 1e-10 exception); the prior is N(0, I) (``init_noise_sigma = 1``). The unet is wrapped,
    not copied; ``chain.to(dtype=torch.float64)`` (the samplers' ``dtype=``) moves a copy.
    """
    if not isinstance(unet, torch.nn.Module):
        raise ChainError(f"unet must be a torch module called as unet(x, t), got {type(unet).__name__}")
    if getattr(getattr(unet, "config", None), "num_class_embeds", None):
        raise ChainError("the unet is class-conditional (num_class_embeds): wrap it in a module that passes fixed "
                         "class_labels and give that module, with sample_shape=")
    kind = _scheduler_kind(scheduler)
    prediction = _check_config(scheduler, kind)
    if kind == "ddpm" and eta is not None:
        raise ChainError("eta is DDIM's noise weight; a DDPMScheduler takes none (its variance_type sets the noise)")
    if kind == "ddim" and (eta is None or not eta > 0):
        raise ChainError(f"DDIM needs eta > 0, got eta={eta}: with eta = 0 every step is deterministic, so there is no "
                         f"noise to couple and nothing to speculate; pass eta=1.0 (DDPM-like noise) or any "
                         f"0 < eta <= 1")
    sch, ts, prev = _timesteps(scheduler, kind, num_inference_steps)
    shape = _sample_shape(unet, sample_shape)

    abar_all = sch.alphas_cumprod.detach().cpu().double().numpy()
    betas = 1 - abar_all / np.concatenate([[1.0], abar_all[:-1]])  # cumprod(1 - betas) = diffusers' abar
    if not np.all((betas > 0) & (betas < 1)):
        raise ChainError("the scheduler's alphas_cumprod must decrease strictly from below 1 to above 0")
    model = DiffusersModel(unet)
    n_train = abar_all.size
    label = name or f"diffusers-{kind}"
    if kind == "ddim":
        return dataclasses.replace(ddim(model, betas, shape, eta=float(eta), timesteps=ts, prediction=prediction),
                                   name=label)
    if np.array_equal(ts, np.arange(n_train)[::-1]):
        chain = ddpm(model, betas, shape, prediction=prediction, variance="posterior")
    else:  # DDPM's posterior on a subsequence is DDIM with eta = 1 there
        chain = ddim(model, betas, shape, eta=1.0, timesteps=ts, prediction=prediction)
    if VARIANCES[sch.variance_type] == "beta":  # beta' = 1 - abar_t / abar_prev; no noise at t = 0
        abar_prev = np.where(prev >= 0, abar_all[np.maximum(prev, 0)], 1.0)
        sigma = np.where(ts > 0, np.sqrt(1 - abar_all[ts] / abar_prev), 0.0)
        return dataclasses.replace(chain, sigma=sigma, name=label)
    return dataclasses.replace(chain, name=label)


@torch.no_grad()
def diffusers_sample(unet: torch.nn.Module, scheduler, n: int, *, num_inference_steps: int | None = None,
                     eta: float | None = None, seed: int = 0) -> torch.Tensor:
    """diffusers' own loop, for comparisons: x ~ N(0, I), then ``scheduler.step`` at every timestep.

    Runs on a copy of the scheduler, on the unet's device and in its parameters' dtype, with
    ``torch.Generator().manual_seed(seed)`` for the prior and every step's noise (diffusers' ``randn_tensor``); the
    sample shape is ``(in_channels, sample_size, sample_size)`` from ``unet.config`` (a ``UNet2DModel``'s).
    """
    kind = _scheduler_kind(scheduler)
    sch = copy.deepcopy(scheduler)
    if num_inference_steps is not None:
        sch.set_timesteps(int(num_inference_steps))
    weight = next(unet.parameters())
    try:
        shape = _sample_shape(unet, None)
    except ChainError:
        raise ChainError("diffusers_sample reads the sample shape from unet.config (sample_size, in_channels), as a "
                         "UNet2DModel has it; for another module compare chain_from_diffusers(..., sample_shape=...) "
                         "under plain_sample instead") from None
    gen = torch.Generator(device=weight.device).manual_seed(seed)
    x = torch.randn((n, *shape), generator=gen, device=weight.device, dtype=weight.dtype)
    x = x * sch.init_noise_sigma
    kw = {"eta": eta} if kind == "ddim" else {}
    for t in sch.timesteps:
        out = DiffusersModel(unet)(sch.scale_model_input(x, t), t)
        x = sch.step(out, t, x, generator=gen, **kw).prev_sample
    return x
