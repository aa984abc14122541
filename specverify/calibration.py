"""Calibration of the suite under the null: correct samplers only, many seeds.

:func:`run_config` runs ``replicates`` independent checks of our speculative sampler (the built-in check, one seed
per replicate) at family-wise ``alpha`` on one configuration of :data:`CONFIGS`, and returns, all measured:
- the rejection rate with its exact (Clopper-Pearson) 99% interval, and whether that interval holds alpha;
- for every test, a KS test of its p-values against U(0, 1) (Holm over the tests at 0.01), a decile histogram
  and the fraction of p-values at or below alpha. The independence block's tests are left out of the KS tests
  (their p-values are conservative by design: seed hygiene is 0 or 1, the sequential nearest-neighbour p-value
  is anytime-valid, P(p <= u) <= u with room); their rate at or below alpha is still reported.

``paper_repro/calibrate.py`` is the command line (and writes theory/calibration.md); tests/test_calibration.py is
the slow test.
"""

from __future__ import annotations

import time

import numpy as np

__all__ = ["CONFIGS", "run_config"]

CONFIGS = {
    # name: (problem, dim, steps, drafter, window)
    "exact-law": ("gaussian", 2, 20, "frozen-denoiser", 4),
    "two-sample": ("gmm", 2, 20, "frozen-denoiser", 4),
}


def _uniformity(pvalues: dict[str, list[float]], alpha: float, conservative=()) -> list[dict]:
    from scipy import stats
    from statsmodels.stats.multitest import multipletests

    rates = [{"name": k, "ks_uniform_pvalue": float("nan"), "uniformity_rejected": False, "conservative": True,
              "deciles": np.histogram(pvalues[k], bins=10, range=(0, 1))[0].tolist(),
              "rate_below_alpha": float(np.mean(np.asarray(pvalues[k]) <= alpha))} for k in conservative]
    names = [k for k in pvalues if k not in conservative]
    ks = [stats.kstest(pvalues[k], "uniform", method="asymp").pvalue for k in names]
    ks_rej = multipletests(ks, alpha=0.01, method="holm")[0]
    return [{"name": k, "ks_uniform_pvalue": float(p), "uniformity_rejected": bool(rj),
             "deciles": np.histogram(pvalues[k], bins=10, range=(0, 1))[0].tolist(),
             "rate_below_alpha": float(np.mean(np.asarray(pvalues[k]) <= alpha))}
            for k, p, rj in zip(names, ks, ks_rej, strict=True)] + rates


def _one(sizes: set) -> int:
    if len(sizes) != 1:
        raise RuntimeError(f"the replicates ran at different n: {sorted(sizes)}")
    return int(next(iter(sizes)))


def run_config(name: str, replicates: int, *, n: int | None, alpha: float, n_perm: int | None, seed0: int = 0,
               steps: int | None = None, progress: bool = False) -> dict:
    """``replicates`` checks of configuration ``name`` at seeds ``seed0 ..``: the record described above.

    ``n=None``: the check's own sizing from alpha (the default a user gets); ``n_perm=None``: the sequential
    permutation engine; ``steps`` overrides the configuration's chain length."""
    from scipy import stats

    from specverify.bridge import check, make_candidate, make_reference, make_setup

    problem, dim, config_steps, drafter, window = CONFIGS[name]
    steps = config_steps if steps is None else int(steps)
    setup = make_setup(problem, dim=dim, steps=steps)
    reference = make_reference(setup)
    candidate = make_candidate(setup, drafter=drafter, window=window)
    pvalues: dict[str, list[float]] = {}
    conservative: dict[str, None] = {}
    rejected, sizes, perms, t0 = 0, set(), [], time.perf_counter()
    seeds = range(seed0, seed0 + replicates)
    if progress:
        from tqdm.auto import tqdm

        seeds = tqdm(seeds, desc=name, unit="replicate")
    for s in seeds:
        r = check(setup, candidate, reference, alpha=alpha, n=n, seed=s, n_perm=n_perm)
        rejected += r.verdict == "fail"
        sizes.add(r.n)
        perms.append(r.permutations)
        for t in r.tests:
            pvalues.setdefault(t.name, []).append(t.pvalue)
            if t.family == "independence":
                conservative[t.name] = None
    lo, hi = stats.binomtest(rejected, replicates).proportion_ci(0.99, method="exact")
    sampler = reference[0] == "sampler"
    return {"config": name, "problem": problem, "dim": dim, "steps": steps, "drafter": drafter, "window": window,
            "reference": reference[0], "n": _one(sizes), "sized": n is None, "alpha": alpha,
            "n_perm": (n_perm or "sequential") if sampler else None,
            "permutations_median": float(np.median(perms)) if sampler else None,
            "permutations_max": int(max(perms)) if sampler else None,
            "replicates": replicates, "rejections": rejected, "rejection_rate": rejected / replicates,
            "ci99_low": float(lo), "ci99_high": float(hi), "alpha_inside_ci": bool(lo <= alpha <= hi),
            "tests": _uniformity(pvalues, alpha, tuple(conservative)), "seconds": time.perf_counter() - t0}
