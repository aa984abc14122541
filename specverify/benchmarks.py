"""The measurements behind ``paper_repro/claims.py``: the paper's claims on models built or trained here.

De Bortoli et al. (ICML 2025) claim that speculative sampling halves the sequential function evaluations of a
diffusion sampler, keeps its samples exact, works with an out-of-the-box drafter and accelerates Langevin chains.
Each function measures one of these on the built-in problems (`digits`, `gmm`, `langevin-model`) and returns
rows of plain numbers; the script writes them to RESULTS.md, results.json and figures. :class:`Settings` holds
every size (``SMOKE``: seconds, for CI).

Also here, because both the claims and ``paper_repro/train_digits.py`` use them: :func:`digits_quality` (sample
quality of digits samples against the held-out digits, :mod:`specverify.harness.quality` on the problem's data)
and :func:`save_grid` (a picture of digit samples); :func:`write_section`, the one way a script rewrites its own
section of RESULTS.md (``images.py``, ``multidraft.py``).

A face: it sees both halves (the problems and drafters through the bridge, the suite and the quality figures).
"""

from __future__ import annotations

import dataclasses
import functools
import sys
from pathlib import Path

from specverify.specs import ROUND_POLICIES

__all__ = ["DIFFUSION_DRAFTERS", "LANGEVIN_DRAFTERS", "QUALITY_KEYS", "SMOKE", "Settings", "digits_classifier",
           "digits_quality", "drafters_for", "exactness", "quality", "save_grid", "setups", "speed",
           "training_costs", "wall_clock", "write_section"]

def write_section(page: Path, section: str, begin: str, end: str) -> None:
    """Put ``section`` (which starts with ``begin`` and ends with ``end`` and a newline) in ``page``: in place of the
    text between the markers, or appended when they are absent."""
    text = page.read_text() if page.exists() else ""
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) + 1:]
    else:
        text = text.rstrip("\n") + ("\n\n" if text else "") + section
    page.write_text(text)


DIFFUSION_DRAFTERS = ("frozen-denoiser", "frozen-drift", "independent", "medusa")
LANGEVIN_DRAFTERS = ("frozen-drift", "independent")  # a Langevin chain has no denoiser to freeze
QUALITY_KEYS = ("mmd_statistic", "frechet_proba", "classifier_confidence")


@dataclasses.dataclass(frozen=True)
class Settings:
    """Every size of the claims run (the full run's defaults; :data:`SMOKE` for CI)."""

    digits_config: str = "full"
    digits_steps: int = 250  # frozen-denoiser on digits passes nfe_ratio 2 from about 250 steps (window 8)
    gmm_steps: int = 100
    langevin_steps: int = 200
    langevin_dim: int = 31  # the posterior's full size (`specverify problems`: 1..31)
    windows: tuple = (1, 2, 4, 8, 16)
    medusa_windows: tuple = (4, 8)  # heads are trained per window
    nfe_n: int = 500
    wall_batches: tuple = (1, 256)
    repeats: int = 3
    check_window: int = 8
    family_alpha: float = 0.05
    beta: float = 0.05
    epsilon: tuple = (("digits", 0.1), ("gmm", 0.05), ("langevin-model", 0.1))
    check_n: int | None = None  # None: from alpha, beta, epsilon
    quality_n: int = 297  # the held-out digits
    quality_seeds: int = 5


SMOKE = Settings(digits_config="quick", digits_steps=20, gmm_steps=20, langevin_steps=20, windows=(2, 4),
                 medusa_windows=(4,), nfe_n=50, wall_batches=(1,), repeats=1, check_window=4, check_n=200,
                 quality_n=100, quality_seeds=2)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def setups(s: Settings) -> dict:
    from specverify.bridge import make_setup

    return {"digits": make_setup("digits", steps=s.digits_steps, options={"config": s.digits_config}),
            "gmm": make_setup("gmm", steps=s.gmm_steps),
            "langevin-model": make_setup("langevin-model", dim=s.langevin_dim, steps=s.langevin_steps)}


def drafters_for(name: str) -> tuple:
    return LANGEVIN_DRAFTERS if name.startswith("langevin") else DIFFUSION_DRAFTERS


def training_costs(setup, s: Settings) -> dict:
    """Seconds to build each trained drafter (trains now unless cached; the cache flag says which)."""
    from specverify.bridge.registry import medusa

    out = {}
    if "medusa" in drafters_for(setup.name):
        for w in s.medusa_windows:
            heads = medusa.load_or_train(setup.chain(), w + 1, key=setup.key)  # as make_builtin_drafter
            out[f"medusa L={w}"] = dict(heads.fit_info)
    if setup.name == "digits":
        for k, info in setup.problem.training.items():
            out[f"{k} network"] = {"seconds": info["seconds"], "cached": info["cached"]}
    return out


def speed(setup, s: Settings, seed: int) -> list[dict]:
    """`specverify accept` rows: acceptance, rounds and nfe_ratio next to their predictions."""
    from specverify import study

    rows = []
    for d in drafters_for(setup.name):
        windows = s.medusa_windows if d == "medusa" else s.windows
        rows += study.run_study(setup, study.Study([d], windows, s.nfe_n, seed, ROUND_POLICIES))
        _log(f"  speed {setup.name}: {d} done")
    return [{k: r[k] for k in ("drafter", "window", "policy", "n", "acceptance_rate", "predicted_acceptance_rate", "ci_low",
                               "ci_high", "rounds_mean", "predicted_rounds_mean", "nfe_ratio", "predicted_nfe_ratio",
                               "seconds")} for r in rows]


def wall_clock(setup, s: Settings, seed: int) -> list[dict]:
    """Plain against speculative at the check window, timed side by side (median of interleaved repeats)."""
    import torch

    from specverify.bridge import make_builtin_drafter
    from specverify.bridge.registry import Timing, bench_one

    configs = [(d, s.check_window, pol) for d in drafters_for(setup.name) for pol in ROUND_POLICIES]
    drafters = {(d, w): make_builtin_drafter(setup, d, w) for d, w, _ in configs}
    rows = []
    for batch in s.wall_batches:
        rows += bench_one(setup.name, setup.chain(), batch, configs, Timing(seed, s.repeats, "cpu", torch.float32),
                          drafters=drafters)
    keep = ("model", "steps", "batch", "drafter", "window", "policy", "plain_s", "spec_s", "wall_ratio", "nfe_ratio",
            "call_ratio", "round_cost")
    return [{k: r[k] for k in keep} | {"spread": max(max(t) / min(t) for t in (r["plain_times_s"], r["spec_times_s"]))}
            for r in rows]


class _Memo:
    """A reference sampler called once per (n, seed): every check of a problem reuses its samples."""

    def __init__(self, fn):
        self.fn, self.cache = fn, {}

    def __call__(self, n, seed):
        if (n, seed) not in self.cache:
            self.cache[(n, seed)] = self.fn(n, seed)
        return self.cache[(n, seed)]


def exactness(all_setups: dict, s: Settings, seed: int) -> list[dict]:
    """`specverify check` of every drafter on every problem; alpha = family_alpha / number of checks."""
    from specverify.bridge import Ours, Plan, check, make_candidate, make_reference, reference_name

    plan = [(name, d) for name, setup in all_setups.items() for d in drafters_for(name)]
    alpha = s.family_alpha / len(plan)
    eps = dict(s.epsilon)
    refs = {}
    rows = []
    for name, d in plan:
        setup = all_setups[name]
        if name not in refs:
            kind, ref = make_reference(setup)
            refs[name] = (kind, _Memo(ref) if kind == "sampler" else ref)
        cand = make_candidate(setup, Ours(drafter=d, window=s.check_window))
        rep = check(setup, cand, refs[name], Plan(alpha, s.beta, eps[name], s.check_n, seed))
        acc = rep.acceptance
        rows.append({"problem": name, "drafter": d, "window": s.check_window, "verdict": rep.verdict, "n": rep.n,
                     "alpha": alpha, "beta": s.beta, "epsilon": eps[name], "min_detectable_ks": rep.min_detectable_ks,
                     "reference": reference_name(setup),
                     "tests": len(rep.tests), "min_adjusted_pvalue": min(t.adjusted_pvalue for t in rep.tests),
                     "acceptance_rate": None if acc is None else acc.acceptance_rate,
                     "predicted_acceptance_rate": None if acc is None else acc.predicted_acceptance_rate,
                     "power_ok": not rep.warnings, "seconds": rep.seconds})
        _log(f"  check {name} {d}: {rep.verdict} (n={rep.n}, {rep.seconds:.0f} s)")
    return rows


QUALITY_KEYS = ("mmd_statistic", "frechet_proba", "classifier_confidence")


def quality(setup, s: Settings, seed: int) -> tuple[list[dict], dict]:
    """Sample quality on digits over ``quality_seeds`` seeds: plain and speculative samples against the held-out
    digits (mean and standard deviation across seeds), with the training digits (floor) and a Gaussian fit.
    Returns the rows and {label: samples (n, 1, 8, 8) of the first seed} for the plain and frozen-denoiser
    samplers and the held-out digits (for a sample grid)."""
    import numpy as np

    from specverify.bridge import Ours, make_candidate

    n = s.quality_n
    samplers = {"plain": make_candidate(setup, Ours(sampler="plain"))}
    samplers |= {f"speculative {d}": make_candidate(setup, Ours(drafter=d, window=s.check_window))
                 for d in DIFFUSION_DRAFTERS}
    per = {label: [] for label in [*samplers, "training digits (floor)", "Gaussian fit (baseline)"]}
    grids = {}
    for r in range(s.quality_seeds):
        for label, cand in samplers.items():
            out = cand(n, seed + r)
            x = np.asarray(out["samples"] if isinstance(out, dict) else out).reshape(n, 1, 8, 8)
            grids.setdefault(label, x)
            q = digits_quality(x, seed + r)
            per[label].append(q["model"])
        per["training digits (floor)"].append(q["train_floor"])
        per["Gaussian fit (baseline)"].append(q["gaussian_baseline"])
    rows = []
    for label, qs in per.items():
        row = {"sampler": label, "n": n, "seeds": len(qs)}
        for key in QUALITY_KEYS:
            v = np.array([q[key] for q in qs])
            row[key], row[f"{key}_sd"] = float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float("nan")
        row["mmd_pvalue_median"] = float(np.median([q["mmd_pvalue"] for q in qs]))
        row["classes_min"] = min(q["classes"] for q in qs)
        rows.append(row)
    shown = {k: grids[k] for k in ("plain", "speculative frozen-denoiser")}
    return rows, shown | {"held-out digits": setup.problem.data_sample(min(n, 100))}


# ----------------------------------------------------------------------------------------------- digits quality


@functools.cache
def digits_classifier():
    """The logistic-regression classifier of the training digits (deterministic; fitted once per process)."""
    from specverify.bridge.registry import digits_images, digits_labels
    from specverify.harness.quality import fit_classifier

    return fit_classifier(digits_images("train"), digits_labels("train"))


def digits_quality(samples, seed: int = 0) -> dict:
    """Sample-quality figures of digit ``samples`` (n, 1, 8, 8; the first 297 used) against the 297 held-out
    digits, with the training digits (floor) and a Gaussian fit (baseline):
    :func:`specverify.harness.quality.sample_quality`."""
    from specverify.bridge.registry import digits_images
    from specverify.harness.quality import sample_quality

    return sample_quality(samples, train=digits_images("train"), test=digits_images("test"),
                          classifier=digits_classifier(), seed=seed)


def save_grid(path: Path | str, panels: dict) -> None:
    """One PNG of side-by-side panels {title: images (n, 1, h, w) in [-1, 1]}, up to 100 images each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4.3))
    for ax, (title, x) in zip(np.atleast_1d(axes), panels.items(), strict=True):
        x = np.clip(np.asarray(x)[:100, 0], -1, 1)
        k = int(np.ceil(np.sqrt(len(x))))
        h, w = x.shape[1:]
        grid = np.full((k * (h + 1) - 1, k * (w + 1) - 1), -1.0)  # white gutters
        for i, img in enumerate(x):
            r, c = divmod(i, k)
            grid[r * (h + 1):r * (h + 1) + h, c * (w + 1):c * (w + 1) + w] = img
        ax.imshow(grid, cmap="gray_r", vmin=-1, vmax=1)
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
