"""The diffusers adapter on a tiny randomly initialised UNet2DModel (seeded; 1 x 8 x 8 samples, d = 64).

1. Exact: for DDPM (full schedule and subsequences, every variance rule and prediction type) and DDIM (eta > 0),
   every step's mean and sigma equal diffusers' ``scheduler.step`` for the same state and model output, in float64
   to 1e-10. The step's noise is set to 0 and to 1 (DDIM: ``variance_noise``; DDPM: its ``randn_tensor``), which
   reads its mean and its noise scale.
2. In law: diffusers' own loop, our plain sampler and the speculative sampler (frozen denoiser, window 4), N
   samples each with its own fixed seed, pairwise two-sample batteries (``two_sample_minp``: KS, MMD, energy,
   minP-adjusted, family-wise level ALPHA each, B = ceil(1 / ALPHA) - 1 permutations). Six batteries, all of a
   true null: a correct adapter fails one over fresh seeds with probability at most 6 * ALPHA = 0.6%. These
   confirm the samplers and diffusers' loop agree; they are not what catches a mis-mapped schedule: at this N a
   DDPM chain with fixed_small against diffusers' fixed_large loop is NOT rejected (min adjusted p = 0.007 in
   a trial run), while the exact test above separates the two rules by orders of magnitude beyond 1e-10.
3. Refusals (clip_sample, thresholding, DDIM eta = 0, ...) and the CIFAR-10 script's --help, missing-path error
   and a run on a tiny local pipeline.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("diffusers")

from diffusers import DDIMScheduler, DDPMScheduler, PNDMScheduler, UNet2DModel  # noqa: E402
from diffusers.schedulers import scheduling_ddpm  # noqa: E402

from specverify.errors import ChainError  # noqa: E402
from specverify.harness.stats.omnibus import Permutations, two_sample_minp  # noqa: E402
from specverify.harness.stats.permutation import min_permutations  # noqa: E402
from specverify.sampler.diffusers import chain_from_diffusers, diffusers_sample  # noqa: E402
from specverify.sampler.drafters import make_drafter  # noqa: E402
from specverify.sampler.options import SampleOptions  # noqa: E402
from specverify.sampler.speculative import plain_sample, speculative_sample  # noqa: E402

ALPHA = 1e-3  # family-wise false-failure probability of each two-sample battery
N_PERM = min_permutations(ALPHA)  # 999: the fewest permutations that can reject at ALPHA
N = 2000  # samples per sampler in the law tests
TOL = 1e-10  # float64 agreement of the chain's step with diffusers' step
ROOT = Path(__file__).resolve().parents[2]

UNET = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
            down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
            norm_num_groups=4, add_attention=False)
DDPM20 = dict(num_train_timesteps=20, beta_start=0.01, beta_end=0.25, clip_sample=False)
LINEAR100 = dict(num_train_timesteps=100, beta_start=0.001, beta_end=0.05, clip_sample=False)


@functools.cache
def _unet(dtype=torch.float32) -> UNet2DModel:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DModel(**UNET)
    return unet.to(dtype).eval().requires_grad_(False)


def _float64(sch):
    """The scheduler with its abar in float64 (same values), so that its step runs in float64 arithmetic."""
    sch.alphas_cumprod = sch.alphas_cumprod.double()
    if isinstance(sch, DDPMScheduler):
        sch.one = torch.tensor(1.0, dtype=torch.float64)
    else:
        sch.final_alpha_cumprod = torch.tensor(float(sch.final_alpha_cumprod), dtype=torch.float64)
    return sch


def _step(sch, f, t, x, eta, z, monkeypatch):
    """diffusers' step with its noise set to z."""
    if isinstance(sch, DDIMScheduler):
        return sch.step(f, t, x, eta=eta, variance_noise=z).prev_sample
    monkeypatch.setattr(scheduling_ddpm, "randn_tensor", lambda shape, **kw: z)
    return sch.step(f, t, x).prev_sample


# (scheduler, its kwargs, num_inference_steps, custom timesteps set beforehand, eta)
EXACT = {
    "ddpm-full-eps-fixed_large": (DDPMScheduler, dict(DDPM20, variance_type="fixed_large"), None, None, None),
    "ddpm-full-x0-fixed_small": (DDPMScheduler, dict(DDPM20, prediction_type="sample"), None, None, None),
    "ddpm-full-v-fixed_small_log": (DDPMScheduler, dict(DDPM20, prediction_type="v_prediction",
                                                        variance_type="fixed_small_log"), None, None, None),
    "ddpm-set-full-eps": (DDPMScheduler, dict(DDPM20), 20, None, None),
    "ddpm-sub-v-offset1": (DDPMScheduler, dict(LINEAR100, prediction_type="v_prediction", steps_offset=1), 10, None,
                           None),
    "ddpm-sub-trailing-eps-fixed_large": (DDPMScheduler, dict(LINEAR100, timestep_spacing="trailing",
                                                              variance_type="fixed_large"), 10, None, None),
    "ddpm-custom-eps": (DDPMScheduler, dict(LINEAR100), None, [90, 61, 33, 12, 4], None),
    "ddim-eps-eta1": (DDIMScheduler, dict(LINEAR100), 10, None, 1.0),
    "ddim-trailing-cosine-v-eta0.5": (DDIMScheduler, dict(num_train_timesteps=100, clip_sample=False,
                                                          beta_schedule="squaredcos_cap_v2",
                                                          timestep_spacing="trailing",
                                                          prediction_type="v_prediction"), 20, None, 0.5),
    "ddim-offset1-x0-eta0.3": (DDIMScheduler, dict(LINEAR100, steps_offset=1, prediction_type="sample"), 10, None,
                               0.3),
}


@pytest.mark.parametrize("case", EXACT)
def test_step_matches_diffusers(case, monkeypatch):
    cls, kwargs, n_inf, custom, eta = EXACT[case]
    sch = _float64(cls(**kwargs))
    if custom is not None:
        sch.set_timesteps(timesteps=custom)
    unet = _unet(torch.float64)
    chain = chain_from_diffusers(unet, sch, num_inference_steps=n_inf, eta=eta)
    ref = copy.deepcopy(sch)
    if n_inf is not None:
        ref.set_timesteps(n_inf)
    assert chain.n_steps == len(ref.timesteps)
    gen = torch.Generator().manual_seed(0)
    for k, t in enumerate(ref.timesteps):
        x = 2 * torch.randn((3, *chain.shape), generator=gen, dtype=torch.float64)
        kk = torch.full((3,), k)
        f = unet(x, t).sample
        torch.testing.assert_close(chain.evaluate(x, kk), f, rtol=TOL, atol=TOL)  # the model sees t = timesteps[k]
        mean = _step(ref, f, t, x, eta, torch.zeros_like(x), monkeypatch)
        std = _step(ref, f, t, x, eta, torch.ones_like(x), monkeypatch) - mean
        torch.testing.assert_close(chain.mean_from(x, kk, f), mean, rtol=TOL, atol=TOL, msg=f"mean at t={int(t)}")
        sigma = float(std.mean())
        torch.testing.assert_close(std, torch.full_like(std, sigma), rtol=TOL, atol=TOL)
        if chain.sigma[k] == 0 and sigma > 0:  # diffusers' DDPM clamps a zero variance to 1e-20 (documented)
            assert cls is DDPMScheduler and k == chain.n_steps - 1 and sigma <= 1e-10 * (1 + 1e-6), (case, k, sigma)
        else:
            assert abs(chain.sigma[k] - sigma) <= TOL * (1 + sigma), (case, k, chain.sigma[k], sigma)


# ---- in law -------------------------------------------------------------------------------------------------------

LAW = {  # name -> (scheduler factory, num_inference_steps, eta)
    "ddpm-full-eps-fixed_large": (lambda: DDPMScheduler(**DDPM20, variance_type="fixed_large"), None, None),
    "ddim-10-of-100-v-eta0.7": (lambda: DDIMScheduler(**LINEAR100, prediction_type="v_prediction"), 10, 0.7),
}
PAIRS = [("plain", "diffusers"), ("speculative", "diffusers"), ("speculative", "plain")]


def _flat(x: torch.Tensor) -> np.ndarray:
    return x.reshape(x.shape[0], -1).double().numpy()


@functools.cache
def _samples(config: str):
    make, steps, eta = LAW[config]
    unet, sch = _unet(), make()
    chain = chain_from_diffusers(unet, sch, num_inference_steps=steps, eta=eta)
    x_diffusers = diffusers_sample(unet, sch, N, num_inference_steps=steps, eta=eta, seed=1)
    x_plain = plain_sample(chain, N, seed=2)
    x_spec, stats = speculative_sample(chain, make_drafter("frozen-denoiser"), N, window=4, seed=3)
    return {"diffusers": _flat(x_diffusers), "plain": _flat(x_plain), "speculative": _flat(x_spec)}, stats


@pytest.mark.parametrize("pair", PAIRS, ids="-vs-".join)
@pytest.mark.parametrize("config", LAW)
def test_same_law(config, pair):
    samples, _ = _samples(config)
    b = two_sample_minp(samples[pair[0]], samples[pair[1]], ALPHA, Permutations(N_PERM, seed=PAIRS.index(pair)))
    assert not b.reject, f"{config}: {pair[0]} vs {pair[1]}: {b.summary()}"


@pytest.mark.parametrize("config", LAW)
def test_speculative_run_takes_both_branches(config):
    """The law tests cover accepted and rejected drafts (the seeded run's counters, not a statistical claim)."""
    _, stats = _samples(config)
    assert 0 < stats.acceptance_rate < 1 and stats.windows > 0


def test_float64_sampling_leaves_the_callers_objects_alone():
    unet, sch = _unet(), DDIMScheduler(**LINEAR100)
    before = sch.timesteps.clone()
    chain = chain_from_diffusers(unet, sch, num_inference_steps=10, eta=1.0)
    assert torch.equal(sch.timesteps, before) and sch.num_inference_steps is None
    x, _ = speculative_sample(chain, make_drafter("frozen-drift"), 8, window=3, seed=0,
                              options=SampleOptions(dtype=torch.float64))
    assert x.dtype == torch.float64 and torch.isfinite(x).all()
    assert next(unet.parameters()).dtype == torch.float32


# ---- refusals -----------------------------------------------------------------------------------------------------

REFUSED = {
    "clip_sample": (lambda: DDPMScheduler(num_train_timesteps=20), {}, "clip_sample=False"),
    "thresholding": (lambda: DDPMScheduler(**dict(DDPM20, thresholding=True)), {}, "thresholding=False"),
    "ddim-eta-0": (lambda: DDIMScheduler(**LINEAR100), dict(num_inference_steps=10, eta=0.0), "eta > 0"),
    "ddim-eta-missing": (lambda: DDIMScheduler(**LINEAR100), dict(num_inference_steps=10), "eta > 0"),
    "ddim-eta-above-1": (lambda: DDIMScheduler(**LINEAR100), dict(num_inference_steps=10, eta=1.5), "eta <= 1"),
    "ddim-no-timesteps": (lambda: DDIMScheduler(**LINEAR100), dict(eta=1.0), "num_inference_steps="),
    "ddim-linspace": (lambda: DDIMScheduler(**LINEAR100, timestep_spacing="linspace"),
                      dict(num_inference_steps=10, eta=1.0), "where the next begins"),
    "ddim-final-alpha": (lambda: DDIMScheduler(**LINEAR100, set_alpha_to_one=False),
                         dict(num_inference_steps=10, eta=1.0), "set_alpha_to_one=True"),
    "ddpm-eta": (lambda: DDPMScheduler(**DDPM20), dict(eta=1.0), "DDPMScheduler takes none"),
    "ddpm-learned": (lambda: DDPMScheduler(**DDPM20, variance_type="learned_range"), {}, "depends on the state"),
    "zero-snr": (lambda: DDPMScheduler(**DDPM20, rescale_betas_zero_snr=True), {}, "rescale_betas_zero_snr"),
    "pndm": (lambda: PNDMScheduler(num_train_timesteps=20), {}, "DDPMScheduler.from_config"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_refused_with_the_fix(case):
    make, kwargs, match = REFUSED[case]
    with pytest.raises(ChainError, match=match):
        chain_from_diffusers(_unet(), make(), **kwargs)


# ---- paper_repro/cifar10.py ---------------------------------------------------------------------------------------

def _script():
    spec = importlib.util.spec_from_file_location("cifar10", ROOT / "paper_repro" / "cifar10.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_cifar10_help_states_the_paper_setting(capsys):
    with pytest.raises(SystemExit) as e:
        _script().main(["--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0
    assert all(s in out for s in ("CIFAR-10", "32x32", "1000", "frozen-drift", "half", "--checkpoint"))


def test_cifar10_smoke(capsys):
    res = _script().main(["--smoke"])
    out = capsys.readouterr().out
    assert res["steps"] == 10 and res["clip_sample_removed"] and 1 <= res["nfe_ratio"] <= 3 and "nfe_ratio" in out


def test_cifar10_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        _script().main(["--checkpoint", str(tmp_path / "ddpm-cifar10-32")])
    assert e.value.code == 2 and "no such directory" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _script().main(["--checkpoint", str(tmp_path)])
    assert "unet/ or scheduler/" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        _script().main([])
    assert "--checkpoint PATH is required" in capsys.readouterr().err


def test_cifar10_runs_on_a_tiny_local_pipeline(tmp_path, capsys):
    """The script end to end on a saved tiny pipeline whose scheduler clips x0 (DDPMScheduler's default)."""
    _unet().save_pretrained(tmp_path / "unet")
    DDPMScheduler(**dict(DDPM20, clip_sample=True)).save_pretrained(tmp_path / "scheduler")
    res = _script().main(["--checkpoint", str(tmp_path), "--steps", "10", "--n", "4", "--window", "3",
                          "--device", "cpu", "--json", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert "clip_sample=False" in out and "nfe_ratio" in out and res["steps"] == 10 and res["clip_sample_removed"]
    assert json.loads((tmp_path / "r.json").read_text())["nfe_ratio"] == res["nfe_ratio"] > 0
