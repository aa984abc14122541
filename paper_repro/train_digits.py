"""Train (or load) the `digits` models, report their sample quality and, optionally, the speculative speed-up.

The models (``specverify/sampler/problems/digits.py``): a DDPM eps-network on scikit-learn's 8x8 digits and a smaller
draft network for the independent drafter, trained deterministically on CPU and cached under $SPECVERIFY_CACHE/digits/
(default: the user cache folder, e.g. ~/.cache/specverify/digits/ on Linux). Sample quality is
``specverify.benchmarks.digits_quality`` (``specverify.harness.quality`` on the digits data).

What is printed
    training    per network: seconds, threads, mean training loss over the last 10% of batches, held-out loss
                (EMA network, fixed noise draws), or "cached" with the figures recorded when it was trained.
    quality     297 plain-sampler samples (``--steps``, linear DDPM) against the 297 held-out digits: the statistic
                of specverify's MMD test (max over bandwidths median x (1/4 .. 4) of the standardised MMD^2_u)
                and its permutation p-value (200 permutations), the Frechet distance between the classifier's
                class probabilities of the samples and of the held-out digits (the FID formula on these nonlinear
                features; on linear features such as logits a Gaussian fit would match by construction), next to
                the same figures for 297 training digits (the floor: a model as good as the data) and for a
                Gaussian with the training mean and covariance (a baseline to beat); and the mean top-class
                probability of a logistic-regression classifier fitted on the training digits, with the number
                of classes among its predicted labels.
    speed-up    (``--speedup STEPS ...``) nfe_ratio = steps / mean rounds of the speculative sampler for the
                frozen-denoiser, frozen-drift and independent drafters at windows 4, 8, 16 (``--nfe-n`` samples).
                It counts target calls only: the independent drafter also calls the draft network, which has
                about 1/20 of the target's parameters.
Writes ``--out``/digits_samples.png (10 x 10 samples, target and draft) and ``--out``/digits.json.

    python paper_repro/train_digits.py --threads 2 --out runs/digits --speedup 100 200
    python paper_repro/train_digits.py --smoke --out /tmp/digits    # the quick models, seconds (CI)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from specverify.benchmarks import digits_quality, save_grid

DRAFTERS, WINDOWS = ("frozen-denoiser", "frozen-drift", "independent"), (4, 8, 16)


def speedup(problem, steps: int, n: int, seed: int, dtype) -> list[dict]:
    """nfe_ratio rows (``specverify.sampler.bench.nfe_rows``) of the drafters and windows, printed as they come."""
    from specverify.sampler.bench import nfe_rows
    from specverify.sampler.drafters import make_drafter

    drafters = {name: make_drafter(name, draft_chain=problem.draft_chain(steps) if name == "independent" else None)
                for name in DRAFTERS}

    def show(r):
        print(f"  {steps:>5} {r['drafter']:<16}{r['window']:>3}  nfe_ratio {r['nfe_ratio']:6.3f}  acceptance "
              f"{r['acceptance_rate']:.4f}  rounds {r['rounds_mean']:7.2f}  ({r['seconds']:.0f} s)", flush=True)

    rows = []
    for r in nfe_rows(problem.chain(steps), drafters, WINDOWS, n, seed=seed, dtype=dtype):
        show(r)
        rows.append(r)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", "--smoke", dest="quick", action="store_true",
                    help="the tiny 'quick' models (seconds; for CI)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads for training and sampling (on a busy machine 1 is often faster)")
    ap.add_argument("--cache", type=Path, default=None,
                    help="weights folder (default: $SPECVERIFY_CACHE/digits, else the user cache folder's digits/)")
    ap.add_argument("--out", type=Path, default=Path("runs") / "digits")
    ap.add_argument("--steps", type=int, default=200, help="chain steps for the quality samples")
    ap.add_argument("--speedup", type=int, nargs="*", default=[], metavar="STEPS",
                    help="measure nfe_ratio on chains of these lengths")
    ap.add_argument("--nfe-n", type=int, default=500, help="samples per speed-up run")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from specverify.sampler.problems.digits import N_TEST, DigitsProblem
    from specverify.sampler.speculative import plain_sample

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    problem = DigitsProblem(config="quick" if args.quick else "full", cache=args.cache or True,
                           threads=threads)
    result = {"config": "quick" if args.quick else "full", "threads": threads,
              "configs": {k: vars(c) for k, c in zip(("target", "draft"), problem.configs, strict=True)}}
    print(f"digits models ({result['config']}, {threads} threads)")
    result["training"] = problem.training
    for name, info in result["training"].items():
        how = "cached" if info["cached"] else "trained"
        print(f"  {name:<7} {how}: {info['seconds']:.1f} s training, loss {info['train_loss']:.4f} (train, last 10%), "
              f"{info['test_loss']:.4f} (held-out)")

    t0 = time.perf_counter()
    x = plain_sample(problem.chain(args.steps), N_TEST, seed=args.seed).numpy()
    xd = plain_sample(problem.draft_chain(args.steps), N_TEST, seed=args.seed).numpy()
    result["sampling_seconds"] = time.perf_counter() - t0
    result["quality"] = {"target": digits_quality(x, args.seed), "draft": digits_quality(xd, args.seed)}
    print(f"quality: {N_TEST} plain samples ({args.steps} linear DDPM steps) vs the {N_TEST} held-out digits")
    q = result["quality"]
    rows = [("target model", q["target"]["model"]), ("draft model", q["draft"]["model"]),
            ("train digits (floor)", q["target"]["train_floor"]), ("Gaussian fit", q["target"]["gaussian_baseline"])]
    for label, r in rows:
        print(f"  {label:<22} MMD statistic {r['mmd_statistic']:6.2f}  p {r['mmd_pvalue']:.3f}  Frechet (proba) "
              f"{r['frechet_proba']:7.3f}  classifier confidence {r['classifier_confidence']:.3f}  "
              f"classes {r['classes']}")

    if args.speedup:
        print(f"speed-up: nfe_ratio, {args.nfe_n} samples, linear DDPM, float64")
        result["speedup"] = [r for s in args.speedup for r in speedup(problem, s, args.nfe_n, args.seed,
                                                                       torch.float64)]
    args.out.mkdir(parents=True, exist_ok=True)
    save_grid(args.out / "digits_samples.png", {f"target ({args.steps} steps)": x, "draft": xd,
                                                "held-out digits": problem.data_sample(100)})
    (args.out / "digits.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out / 'digits_samples.png'} and {args.out / 'digits.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
