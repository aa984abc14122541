"""The `images` problem, torch side, and its diffusers view; the torch denoiser against its JAX twin.

Exact tests only (no randomness in the verdicts; float64 identities to 1e-10): the crops, --dim handling, the
denoiser against the general GMM formula and against the JAX twin, batch invariance and the oracle identity, and
the diffusers view: every step of a DDPMScheduler (1000 steps, the paper's CIFAR-10 setting) and of a DDIMScheduler
(eta > 0) through ``chain_from_diffusers`` equals ``scheduler.step`` on the same state and model output. Small
crops (8 x 8, d = 192) and N = 16 keep the full-length runs cheap; d = 3072 is checked at a few steps.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from specverify.cli import main
from specverify.errors import ChainError
from specverify.harness import reference as ref
from specverify.sampler.drafters import make_drafter
from specverify.sampler.noise import TableNoise
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import ImagesProblem, fixed_dim, make_problem
from specverify.sampler.problems.gmm import GMMDenoiser
from specverify.sampler.problems.images import diffusers_unet, image_crops
from specverify.sampler.speculative import plain_sample, speculative_sample
from specverify.specs import beta_schedule

F64 = torch.float64
TOL = 1e-10


def _small(n_images=16, dim=192, **kw):
    return ImagesProblem(dim=dim, n_images=n_images, **kw)


def _states(n, shape, seed=0, scale=1.5):
    return scale * torch.randn((n, *shape), generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_crops_are_distinct_photo_tiles_in_range():
    x = image_crops(64)
    assert x.shape == (64, 3, 32, 32) and x.dtype == np.float64
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.2
    assert len({c.tobytes() for c in x}) == 64
    np.testing.assert_array_equal(image_crops(64), x)  # deterministic
    assert not np.array_equal(image_crops(64, seed=1), x)
    assert image_crops(5, size=8).shape == (5, 3, 8, 8)
    with pytest.raises(ChainError, match="1..520"):
        image_crops(521)


def test_dim_is_three_times_a_square_and_defaults_to_3072(capsys):
    assert fixed_dim("images") == 3072
    p = make_problem("images")
    assert p.dim == 3072 and p.shape == (3, 32, 32) and p.spec.means.shape == (64, 3072)
    assert _small().shape == (3, 8, 8) and _small().chain(5).shape == (3, 8, 8)
    for bad in (100, 3073, 0):
        with pytest.raises(ChainError, match="d = 3 s"):
            make_problem("images", dim=bad)
    with pytest.raises(ChainError, match="std must be"):
        _small(std=0.0)
    assert main(["sample", "--problem", "images", "--dim", "100", "--steps", "5", "--n", "5"]) == 2
    assert "d = 3 s^2" in capsys.readouterr().err


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("dim", [192, 3072])
def test_denoiser_equals_the_general_mixture_formula(prediction, dim):
    p = _small(dim=dim)
    betas = beta_schedule("cosine", 40)
    model, general = (cls(p.spec, betas, prediction).to(F64) for cls in (p.model_cls, GMMDenoiser))
    x, t = _states(6, p.shape), torch.tensor([0, 1, 10, 20, 39, 39])
    torch.testing.assert_close(model(x, t), general(x, t), rtol=TOL, atol=TOL)


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("dim,n_images", [(192, 16), (3072, 64)])
def test_denoiser_agrees_with_its_jax_twin(schedule, dim, n_images):
    """The declared twins (ImagesDenoiser, reference.images_eps / images_x0) on the same plain data, float64."""
    p = _small(n_images, dim)
    betas = beta_schedule(schedule, 50)
    x, t = _states(8, p.shape, seed=3), np.array([0, 1, 5, 17, 25, 33, 48, 49])
    xf = x.reshape(8, -1).numpy()
    for prediction, twin in (("eps", ref.images_eps), ("x0", ref.images_x0)):
        got = p.model(betas, prediction).to(F64)(x, torch.tensor(t)).reshape(8, -1).numpy()
        np.testing.assert_allclose(got, np.asarray(twin(p.spec, betas)(xf, t)), rtol=TOL, atol=TOL)


def test_a_samples_output_does_not_depend_on_its_batch():
    p = _small(n_images=32)
    model = p.model(beta_schedule("linear", 30)).to(F64)
    x, t = _states(300, p.shape, seed=4), torch.arange(300) % 30
    full = model(x, t)
    for lo, hi in ((0, 1), (7, 12), (3, 131), (128, 300)):
        assert torch.equal(model(x[lo:hi], t[lo:hi]), full[lo:hi])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_oracle_accepts_everything_and_equals_plain(dtype):
    chain = _small().chain(20, sampler="ddim", eta=0.8)
    noise = TableNoise.draw(12, chain.n_steps, chain.shape, seed=1, dtype=dtype)
    x0 = chain.prior(12, torch.Generator().manual_seed(2), dtype=dtype)
    plain = plain_sample(chain, 12, options=SampleOptions(noise=noise, x0=x0, dtype=dtype))
    spec, st = speculative_sample(chain, make_drafter("oracle"), 12, window=4,
                                  options=SampleOptions(noise=noise, x0=x0, dtype=dtype))
    assert st.acceptance_rate == 1.0 and torch.equal(plain, spec)


def test_data_sample_draws_lie_within_the_smoothing_of_a_crop():
    """|x - x_i|^2 / std^2 ~ chi2(d) for the draw's own crop i, so the nearest crop is closer than the chi2 bound
    at ALPHA / n per draw (a false failure over fresh seeds has probability <= ALPHA = 1e-6)."""
    from scipy import stats

    p, n = _small(n_images=4, std=0.05), 4000
    x = p.data_sample(n, seed=0).reshape(n, -1)
    nearest = ((x[:, None, :] - p.spec.means[None]) ** 2).sum(-1).min(1) / 0.05**2
    assert x.shape == (n, 192) and nearest.max() <= stats.chi2.isf(1e-6 / n, 192)


# ---- the diffusers view -------------------------------------------------------------------------------------------

diffusers = pytest.importorskip("diffusers")

CIFAR_DDPM = dict(num_train_timesteps=1000, beta_start=1e-4, beta_end=0.02, beta_schedule="linear", clip_sample=False)


def _float64(sch):
    """The scheduler with its abar in float64 (same values), so that its step runs in float64 arithmetic."""
    sch.alphas_cumprod = sch.alphas_cumprod.double()
    if isinstance(sch, diffusers.DDPMScheduler):
        sch.one = torch.tensor(1.0, dtype=F64)
    else:
        sch.final_alpha_cumprod = torch.tensor(float(sch.final_alpha_cumprod), dtype=F64)
    return sch


def _step(sch, f, t, x, eta, z, monkeypatch):
    """diffusers' step with its noise set to z (DDIM: variance_noise; DDPM: its randn_tensor)."""
    if isinstance(sch, diffusers.DDIMScheduler):
        return sch.step(f, t, x, eta=eta, variance_noise=z).prev_sample
    from diffusers.schedulers import scheduling_ddpm

    monkeypatch.setattr(scheduling_ddpm, "randn_tensor", lambda shape, **kw: z)
    return sch.step(f, t, x).prev_sample


CASES = {  # name -> (problem kwargs, scheduler, num_inference_steps, eta, chain steps checked)
    "ddpm-1000-8x8": (dict(dim=192, n_images=16), "ddpm", None, None, None),
    "ddpm-1000-32x32": (dict(dim=3072, n_images=64), "ddpm", None, None, (0, 1, 500, 997, 998, 999)),
    "ddim-100-eta0.5-8x8": (dict(dim=192, n_images=16), "ddim", 100, 0.5, None),
    "ddim-50-eta1-32x32": (dict(dim=3072, n_images=64), "ddim", 50, 1.0, (0, 25, 48, 49)),
}


@pytest.mark.parametrize("case", CASES)
def test_diffusers_view_steps_match_scheduler_step(case, monkeypatch):
    """Each checked step k: the chain's model output is the view's at t = timesteps[k], its mean is diffusers'
    step with zero noise, its sigma diffusers' step with unit noise minus that mean; float64, to 1e-10."""
    from specverify.sampler.diffusers import chain_from_diffusers

    kwargs, kind, n_inf, eta, checked = CASES[case]
    p = ImagesProblem(**kwargs)
    cls = diffusers.DDPMScheduler if kind == "ddpm" else diffusers.DDIMScheduler
    sch = _float64(cls(**CIFAR_DDPM))
    unet = diffusers_unet(p, sch)
    chain = chain_from_diffusers(unet, sch, num_inference_steps=n_inf, eta=eta)
    assert chain.shape == p.shape
    steps = copy.deepcopy(sch)
    if n_inf is not None:
        steps.set_timesteps(n_inf)
    assert chain.n_steps == len(steps.timesteps) == (n_inf or 1000)
    for k in checked or range(chain.n_steps):
        t = steps.timesteps[k]
        x = _states(3, p.shape, seed=k)
        kk = torch.full((3,), k)
        f = unet(x, t)
        torch.testing.assert_close(chain.evaluate(x, kk), f, rtol=TOL, atol=TOL)
        mean = _step(steps, f, t, x, eta, torch.zeros_like(x), monkeypatch)
        std = _step(steps, f, t, x, eta, torch.ones_like(x), monkeypatch) - mean
        torch.testing.assert_close(chain.mean_from(x, kk, f), mean, rtol=TOL, atol=TOL, msg=f"mean at t={int(t)}")
        sigma = float(std.mean())
        if chain.sigma[k] == 0 and sigma > 0:  # diffusers' DDPM clamps the last zero variance to 1e-20 (documented)
            assert kind == "ddpm" and k == chain.n_steps - 1 and sigma <= 1e-10 * (1 + 1e-6)
        else:
            assert abs(chain.sigma[k] - sigma) <= TOL * (1 + sigma), (k, chain.sigma[k], sigma)


def test_diffusers_view_is_the_exact_denoiser_on_the_schedulers_abar():
    """The view's eps at diffusers' timestep t equals the JAX twin's on betas read from alphas_cumprod."""
    p = _small()
    sch = diffusers.DDPMScheduler(**CIFAR_DDPM)
    unet = diffusers_unet(p, sch)
    abar = sch.alphas_cumprod.double().numpy()
    betas = 1 - abar / np.concatenate([[1.0], abar[:-1]])
    x, t = _states(4, p.shape, seed=9), np.array([999, 500, 1, 0])
    got = unet(x, torch.tensor(t)).reshape(4, -1).numpy()
    np.testing.assert_allclose(got, np.asarray(ref.images_eps(p.spec, betas)(x.reshape(4, -1).numpy(), t)),
                               rtol=TOL, atol=TOL)
    assert torch.equal(unet(x[:1], torch.tensor(500)), unet(x[:1], torch.tensor([500])))  # a scalar t, as diffusers
    with pytest.raises(ChainError, match="epsilon"):
        diffusers_unet(p, diffusers.DDPMScheduler(**CIFAR_DDPM, prediction_type="sample"))


def test_the_measurement_script_writes_only_its_own_section(tmp_path, monkeypatch):
    """paper_repro/images.py --smoke: every part runs, the page keeps what it had and gets one images section
    (replaced, not repeated, on a rerun); both checks pass (alpha 0.01 each, fixed seeds)."""
    import importlib.util
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "paper_repro" / "images.py"
    spec = importlib.util.spec_from_file_location("images_script", path)
    mod = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, mod)  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    page = tmp_path / "RESULTS.md"
    page.write_text("# Results\n\nkept\n")
    res = mod.main(["--smoke", "--out", str(tmp_path)])
    mod.main(["--render", "--out", str(tmp_path)])
    text = page.read_text()
    assert text.startswith("# Results\n\nkept\n") and text.count(mod.BEGIN) == text.count(mod.END) == 1
    assert set(res["part_seconds"]) == set(mod.PARTS) and (tmp_path / "images.json").exists()
    assert res["check"]["verdict"] == res["diffusers"]["verdict"] == "pass"
    assert {r["drafter"] for r in res["speed"]} == {*mod.DRAFTERS, "medusa"}  # medusa on its own windows


# ---- in law, against the JAX reference (slow lane) ----------------------------------------------------------------

ALPHA = 1e-3  # family-wise false-failure probability of each KS battery (Holm)
N_LAW = 5000


def _reference(p, steps, seed, crop_seed=None):
    betas = beta_schedule("linear", steps)
    spec = p.spec if crop_seed is None else ImagesProblem(dim=p.dim, n_images=len(p.crops), seed=crop_seed).spec
    return ref.images_sampler(spec, betas, ref.diffusion_transition(betas, "ddpm"))(N_LAW, seed)


@pytest.mark.slow
@pytest.mark.parametrize("drafter", ["plain", "frozen-drift", "independent"])
def test_samplers_match_the_jax_reference_in_law(drafter):
    """KS battery (coordinates, |x|^2, 16 projections; Holm at ALPHA) of our plain or speculative (window 4) samples
    against the JAX reference on 8 x 8 crops, N = 16, 30 steps: three true nulls, false failure <= 3 ALPHA."""
    from specverify.harness.stats import ks_battery

    p = _small()
    chain = p.chain(30)
    if drafter == "plain":
        x = plain_sample(chain, N_LAW, seed=11, options=SampleOptions(dtype=F64))
    else:
        kw = {"draft_chain": p.draft_chain(30)} if drafter == "independent" else {}
        x, _ = speculative_sample(chain, make_drafter(drafter, **kw), N_LAW, window=4, seed=12,
                                  options=SampleOptions(dtype=F64))
    b = ks_battery(x.reshape(N_LAW, -1).numpy(), _reference(p, 30, seed=13), ALPHA)
    assert not b.reject, b.summary()


@pytest.mark.slow
def test_the_battery_sees_the_wrong_crops():
    """Negative control: the same battery tells our chain from the reference run on another draw of the N crops
    (crop seed 1 instead of 0: a data-loading bug, the other half sampling a different empirical law)."""
    from specverify.harness.stats import ks_battery

    p = _small()
    x = plain_sample(p.chain(30), N_LAW, seed=14, options=SampleOptions(dtype=F64)).reshape(N_LAW, -1).numpy()
    assert ks_battery(x, _reference(p, 30, seed=15, crop_seed=1), ALPHA).reject
