"""Calibration of the suite under the null: correct samplers only, many seeds.

:func:`run_config` runs ``replicates`` independent checks of our speculative sampler (the built-in check, one seed
per replicate) at a plan's family-wise alpha on one configuration of :data:`CONFIGS`, and returns, all measured:
- the rejection rate with its exact (Clopper-Pearson) 99% interval, and whether that interval holds alpha;
- for every test, a KS test of its p-values against U(0, 1) (Holm over the tests at 0.01), a decile histogram
  and the fraction of p-values at or below alpha. The independence block's tests are left out of the KS tests
  (their p-values are conservative by design: seed hygiene is 0 or 1, the sequential nearest-neighbour p-value
  is anytime-valid, P(p <= u) <= u with room); their rate at or below alpha is still reported.

``paper_repro/calibrate.py`` is the command line (and writes theory/calibration.md); tests/test_calibration.py is
the slow test.
"""

from __future__ import annotations

import functools
import time

import numpy as np

from specverify.errors import StatsError

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
        raise StatsError(f"the replicates ran at different n: {sorted(sizes)}; run them with one --n")
    return int(next(iter(sizes)))


def _single_thread() -> None:
    """Worker start-up: one thread for torch and XLA, so that workers do not fight over the cores."""
    import os

    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    import torch

    torch.set_num_threads(1)


@functools.lru_cache(maxsize=4)
def _built(name: str, steps: int):
    """Setup, reference and candidate, built once per process (the JAX reference compiles once)."""
    from specverify.bridge import Ours, make_candidate, make_reference, make_setup

    problem, dim, _, drafter, window = CONFIGS[name]
    setup = make_setup(problem, dim=dim, steps=steps)
    return setup, make_reference(setup), make_candidate(setup, Ours(drafter=drafter, window=window))


def _replicates(name: str, seeds: list[int], plan, steps: int) -> list[dict]:
    """One row per seed: the check's verdict at ``plan`` (its seed replaced by each of ``seeds``), n,
    permutations, every test's p-value, and which tests are conservative by design (the independence block's)."""
    import dataclasses

    from specverify.bridge import check

    setup, reference, candidate = _built(name, steps)
    rows = []
    for s in seeds:
        r = check(setup, candidate, reference, dataclasses.replace(plan, seed=s))
        rows.append({"rejected": r.verdict == "fail", "n": r.n, "perms": r.permutations,
                     "pvalues": {t.name: t.pvalue for t in r.tests},
                     "conservative": [t.name for t in r.tests if t.family == "independence"],
                     "sampler": reference[0] == "sampler"})
    return rows


def _run_chunks(name: str, seeds: list[int], workers: int, progress: bool, args: tuple) -> list[dict]:
    """The rows of all replicates in seed order, from ``workers`` spawned single-thread processes (1: here)."""
    size = max(1, min(4, len(seeds) // (2 * workers)))  # small chunks: a progress bar, and every worker busy
    chunks = [seeds[i : i + size] for i in range(0, len(seeds), size)]
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(seeds), desc=name, unit="replicate")
    parts: list[list[dict]] = [[] for _ in chunks]
    if workers == 1:
        for i, c in enumerate(chunks):
            parts[i] = _replicates(name, c, *args)
            bar is not None and bar.update(len(c))
    else:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_single_thread) as pool:
            jobs = {pool.submit(_replicates, name, c, *args): i for i, c in enumerate(chunks)}
            for job in as_completed(jobs):
                parts[jobs[job]] = job.result()
                bar is not None and bar.update(len(chunks[jobs[job]]))
    if bar is not None:
        bar.close()
    return [row for part in parts for row in part]


def run_config(name: str, replicates: int, plan, *, steps: int | None = None, progress: bool = False,
               workers: int = 1) -> dict:
    """``replicates`` checks of configuration ``name`` at ``plan`` (a ``bridge.Plan``), at seeds ``plan.seed``,
    ``plan.seed + 1``, ..: the record described above.

    ``plan.n=None``: the check's own sizing from alpha (the default a user gets); ``plan.n_perm=None``: the
    sequential permutation engine; ``steps`` overrides the configuration's chain length; ``workers`` > 1 runs the
    replicates in that many single-thread processes (same seeds, same results)."""
    from scipy import stats

    problem, dim, config_steps, drafter, window = CONFIGS[name]
    steps = config_steps if steps is None else int(steps)
    n, alpha, n_perm = plan.n, plan.alpha, plan.n_perm
    t0 = time.perf_counter()
    rows = _run_chunks(name, list(range(plan.seed, plan.seed + replicates)), int(workers), progress, (plan, steps))
    rejected, perms, sampler = sum(r["rejected"] for r in rows), [r["perms"] for r in rows], rows[0]["sampler"]
    if any(r["pvalues"].keys() != rows[0]["pvalues"].keys() for r in rows):
        raise StatsError("the replicates ran different tests; their p-values cannot be pooled: run them with one "
                         "configuration")
    pvalues = {k: [r["pvalues"][k] for r in rows] for k in rows[0]["pvalues"]}
    conservative = tuple(dict.fromkeys(k for r in rows for k in r["conservative"]))
    lo, hi = stats.binomtest(rejected, replicates).proportion_ci(0.99, method="exact")
    return {"config": name, "problem": problem, "dim": dim, "steps": steps, "drafter": drafter, "window": window,
            "reference": "sampler" if sampler else "law", "n": _one({r["n"] for r in rows}), "sized": n is None,
            "alpha": alpha, "n_perm": (n_perm or "sequential") if sampler else None,
            "permutations_median": float(np.median(perms)) if sampler else None,
            "permutations_max": int(max(perms)) if sampler else None,
            "replicates": replicates, "rejections": rejected, "rejection_rate": rejected / replicates,
            "ci99_low": float(lo), "ci99_high": float(hi), "alpha_inside_ci": bool(lo <= alpha <= hi),
            "tests": _uniformity(pvalues, alpha, conservative), "workers": int(workers),
            "seconds": time.perf_counter() - t0}
