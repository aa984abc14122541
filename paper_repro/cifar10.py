"""CIFAR-10 DDPM from a local diffusers checkpoint: plain vs speculative sampling, side by side.

The paper's setting
    De Bortoli, Galashov, Gretton, Doucet, "Accelerated diffusion models via speculative sampling" (ICML 2025):
    a DDPM on CIFAR-10 (32x32x3 pixels) sampled with 1000 ancestral steps, the speculative sampler drafting with
    the frozen target drift (the training-free drafter: every drafted step reuses the target increment
    m_p(x_n) - x_n of the window start). The paper reports that this needs about half the sequential function
    evaluations of the plain sampler. This script measures the same quantities on a checkpoint you provide; it
    does not reproduce the paper's model, and it prints only what it measured in this run.

Checkpoint
    --checkpoint is a local diffusers DDPM pipeline folder with unet/ (UNet2DModel) and scheduler/
    (DDPMScheduler), for example google/ddpm-cifar10-32, downloaded beforehand:
        hf download google/ddpm-cifar10-32 --local-dir ddpm-cifar10-32
    (``huggingface-cli download`` with older huggingface_hub releases).
    Nothing is fetched from the network (local_files_only). The chain is built by
    specverify.sampler.diffusers.chain_from_diffusers. That adapter refuses x0 clipping (clip_sample=True,
    DDPMScheduler's default, which a checkpoint's scheduler config may keep), which makes the step mean nonlinear
    in the model output, so when the checkpoint clips, this script rebuilds the scheduler with clip_sample=False
    and says so: the law sampled is then Ho et al.'s Alg. 2 without clipping, by both samplers alike. The
    variance rule (fixed_large or fixed_small) is the checkpoint's.

What is printed (all measured here, same model, device, dtype, batch and seed for both samplers)
    nfe_ratio   steps / mean rounds per sample: sequential target calls of plain over speculative (the paper's
                measure; "about half the function evaluations" is nfe_ratio ~ 2).
    call_ratio  steps / batched rounds: the whole batch waits for its slowest sample.
    acceptance  accepted over verified drafted steps.
    plain_s, spec_s, wall_ratio
                median wall seconds of --repeats interleaved runs (after a warm-up model call at both batch
                sizes; CUDA synchronised around each run) and plain_s / spec_s.

Example: python paper_repro/cifar10.py --checkpoint ddpm-cifar10-32 --device cuda --n 16 --window 8
Smoke (CI): python paper_repro/cifar10.py --smoke   # a tiny random 8x8 UNet saved as a local pipeline, 10 steps
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

PAPER_STEPS = 1000


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path,
                   help="local diffusers DDPM pipeline folder (unet/ + scheduler/), e.g. google/ddpm-cifar10-32")
    p.add_argument("--smoke", action="store_true",
                   help="no checkpoint: a tiny randomly initialised UNet (8x8, clipping scheduler) saved to a temporary"
                        " pipeline folder, 10 steps, n 4, window 3, on the CPU (seconds; CI)")
    p.add_argument("--steps", type=int, default=PAPER_STEPS,
                   help=f"sampling steps (default {PAPER_STEPS}, the paper's; fewer runs DDPM on a subsequence)")
    p.add_argument("--window", type=int, default=8, help="drafted steps per window L (default 8)")
    p.add_argument("--n", type=int, default=16, help="samples per run, one batch (default 16)")
    p.add_argument("--drafter", choices=("frozen-drift", "frozen-denoiser"), default="frozen-drift",
                   help="default frozen-drift, the paper's training-free drafter")
    p.add_argument("--repeats", type=int, default=1, help="timed runs per sampler, median reported (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default=None, help="cuda if available, else cpu")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--json", type=Path, help="also write the results here as JSON")
    return p


def _load(path: Path):
    """(unet, scheduler without clipping, whether the checkpoint clipped) from a local pipeline folder."""
    from diffusers import DDPMScheduler, UNet2DModel

    unet = UNet2DModel.from_pretrained(path, subfolder="unet", local_files_only=True)
    scheduler = DDPMScheduler.from_pretrained(path, subfolder="scheduler", local_files_only=True)
    clipped = bool(scheduler.config.get("clip_sample", False))
    if clipped:
        scheduler = DDPMScheduler.from_config(scheduler.config, clip_sample=False)
    return unet, scheduler, clipped


def _timed(fn, device):
    """The package's benchmark timer (``specverify.sampler.bench.timed``, shared with bench_sampler.py)."""
    from specverify.sampler.bench import timed

    return timed(fn, device)


def _tiny_pipeline(folder: Path) -> Path:
    """A randomly initialised 8x8 UNet2DModel with a 10-step DDPMScheduler that clips x0 (the default), saved."""
    import torch
    from diffusers import DDPMScheduler, UNet2DModel

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                           layers_per_block=1, down_block_types=("DownBlock2D", "DownBlock2D"),
                           up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=4, add_attention=False)
    unet.save_pretrained(folder / "unet")
    DDPMScheduler(num_train_timesteps=10, beta_start=0.01, beta_end=0.25).save_pretrained(folder / "scheduler")
    return folder


def main(argv: list[str] | None = None) -> dict:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.smoke:
        import tempfile

        try:
            import diffusers  # noqa: F401
        except ImportError:
            parser.error("--smoke needs diffusers: pip install 'specverify[diffusers]'")
        if args.checkpoint is not None:
            parser.error("--smoke builds its own tiny checkpoint: leave --checkpoint out")
        args.checkpoint = _tiny_pipeline(Path(tempfile.mkdtemp(prefix="cifar10-smoke-")))
        args.steps, args.n, args.window, args.device = 10, 4, 3, "cpu"
    if args.checkpoint is None:
        parser.error("--checkpoint PATH is required (or --smoke for a tiny local pipeline)")
    ckpt = args.checkpoint.expanduser()
    if not ckpt.is_dir():
        parser.error(f"--checkpoint {ckpt}: no such directory. Download a diffusers DDPM pipeline first, e.g. "
                     f"hf download google/ddpm-cifar10-32 --local-dir {ckpt}")
    missing = [sub for sub in ("unet", "scheduler") if not (ckpt / sub).is_dir()]
    if missing:
        parser.error(f"--checkpoint {ckpt} has no {' or '.join(s + '/' for s in missing)} folder: give a diffusers "
                     f"pipeline folder with unet/ (UNet2DModel) and scheduler/ (DDPMScheduler)")
    if min(args.steps, args.window, args.n, args.repeats) < 1:
        parser.error("--steps, --window, --n and --repeats must be >= 1")

    try:
        import diffusers  # noqa: F401
    except ImportError:
        parser.error("this script needs diffusers: pip install 'specverify[diffusers]' (or pip install diffusers)")
    import torch

    from specverify.sampler.diffusers import chain_from_diffusers
    from specverify.sampler.drafters import make_drafter
    from specverify.sampler.options import SampleOptions
    from specverify.sampler.speculative import plain_sample, speculative_sample

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    dtype = getattr(torch, args.dtype)
    unet, scheduler, clipped = _load(ckpt)
    n_train = int(scheduler.config.num_train_timesteps)
    if args.steps > n_train:
        parser.error(f"--steps {args.steps} exceeds the checkpoint's {n_train} training timesteps")
    chain = chain_from_diffusers(unet, scheduler, num_inference_steps=None if args.steps == n_train else args.steps)
    chain = chain.to(device=device, dtype=dtype)
    drafter = make_drafter(args.drafter)
    common = dict(seed=args.seed, options=SampleOptions(device=device, dtype=dtype))
    print(f"cifar10: {ckpt} ({chain.name}, {chain.n_steps} steps of {n_train}, shape {chain.shape}, "
          f"variance_type={scheduler.config.variance_type}, prediction_type={scheduler.config.prediction_type}); "
          f"{device}, {args.dtype}, n={args.n}, {args.drafter} L={args.window}, seed {args.seed}", flush=True)
    if clipped:
        print("note: the checkpoint's scheduler clips x0 (clip_sample=True); both samplers run it with "
              "clip_sample=False, which the Gaussian-chain adapter needs", flush=True)

    with torch.no_grad():  # warm-up: allocator, kernels, cudnn autotuning at both batch sizes
        for b in (args.n, args.n * (args.window + 1)):
            chain.evaluate(torch.zeros((b, *chain.shape), device=device, dtype=dtype),
                           torch.zeros(b, dtype=torch.long, device=device))
    times = {"plain": [], "spec": []}
    for _ in range(args.repeats):  # interleaved, so slow drifts of the machine hit both alike
        seconds, x_plain = _timed(lambda: plain_sample(chain, args.n, **common), device)
        times["plain"].append(seconds)
        seconds, (x_spec, stats) = _timed(
            lambda: speculative_sample(chain, drafter, args.n, window=args.window, **common), device)
        times["spec"].append(seconds)
    plain_s, spec_s = statistics.median(times["plain"]), statistics.median(times["spec"])
    result = dict(checkpoint=str(ckpt), steps=chain.n_steps, n=args.n, window=args.window, drafter=args.drafter,
                  device=str(device), dtype=args.dtype, seed=args.seed, clip_sample_removed=clipped,
                  nfe_ratio=stats.nfe_ratio, call_ratio=chain.n_steps / stats.rounds_total,
                  acceptance_rate=stats.acceptance_rate, plain_s=plain_s, spec_s=spec_s,
                  wall_ratio=plain_s / spec_s, plain_times_s=times["plain"], spec_times_s=times["spec"],
                  plain_abs_max=float(x_plain.abs().max()), spec_abs_max=float(x_spec.abs().max()))
    print(f"nfe_ratio {result['nfe_ratio']:.3f}  call_ratio {result['call_ratio']:.3f}  "
          f"acceptance {result['acceptance_rate']:.3f}")
    print(f"wall-clock: plain {plain_s:.3f}s  speculative {spec_s:.3f}s  wall_ratio {result['wall_ratio']:.3f} "
          f"(median of {args.repeats}; > 1 means speculative was faster here)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main()
