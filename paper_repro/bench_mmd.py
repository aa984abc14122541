"""Wall-clock benchmark of the MMD permutation test: ours (torch, vectorised) against hyppo, side by side.

What is measured
    1. Side by side, on the same data in one run: x, y ~ N(0, I_d) iid, n per side (default 500, d = 64), seed 0.
         ours-5bw   ``specverify.harness.stats.mmd.mmd_test`` with its defaults: MMD^2_u at 5 Gaussian bandwidths
                    (median heuristic x 0.25..4) combined by the max of standardised statistics, B permutations.
         ours-1bw   the same test at the median bandwidth only (``kernel=GaussianKernels(scales=(1.0,))``): the
                    statistic hyppo computes.
         hyppo      ``hyppo.ksample.MMD().test(x, y, reps=B, auto=False)``: Gaussian kernel at the median
                    heuristic, B permutations (hyppo's defaults otherwise, workers=1).
       Each timing is one call after an untimed warm-up call on tiny data (which excludes torch's first-call setup
       and hyppo's numba compilation; the warm-up times are printed too). ratio = hyppo seconds / ours seconds.
    2. Ours alone at n = 10000 per side, d = 64, B = 1000: ``mmd_test`` (above 4096 pooled points it uses random
       Fourier features; the method column says which path ran) and ``energy_test`` (sliced energy there).
    torch's thread count is left at its default (``--threads`` sets it) and printed, with the machine's load
    average: these are wall-clock numbers, and other processes on the machine slow both columns (torch's
    multi-threaded operations most: a busy core stalls each parallel operation).

hyppo is optional: without it (or with ``--no-hyppo``) its column is skipped with a message. ``--smoke`` runs tiny
sizes in seconds (for CI), with the large run's approximate paths forced on (``path=KernelPath(max_exact=256)``).
``--json PATH`` saves the rows. Every printed number is measured by this run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from specverify.harness.stats.mmd import GaussianKernels, KernelPath, Permutations, energy_test, mmd_test


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def _load_hyppo():
    try:
        from hyppo.ksample import MMD
    except ImportError as exc:  # optional dependency
        return None, f"hyppo is not installed ({exc}); pip install hyppo to add its column"
    return MMD, None


def _data(n: int, d: int, seed: int):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, d)), rng.normal(size=(n, d))


def side_by_side(n: int, d: int, reps: int, use_hyppo: bool) -> dict:
    x, y = _data(n, d, 0)
    wx, wy = _data(20, d, 1)
    _, warm_ours = _timed(lambda: mmd_test(wx, wy, Permutations(reps)))
    ours5, t5 = _timed(lambda: mmd_test(x, y, Permutations(reps)))
    ours1, t1 = _timed(lambda: mmd_test(x, y, Permutations(reps), kernel=GaussianKernels(scales=(1.0,))))
    row = {"n": n, "dim": d, "reps": reps, "ours_5bw_s": t5, "ours_5bw_p": ours5.pvalue, "ours_1bw_s": t1,
           "ours_1bw_p": ours1.pvalue, "ours_method": ours5.method, "ours_warmup_s": warm_ours,
           "hyppo_s": None, "hyppo_p": None, "hyppo_warmup_s": None, "ratio_5bw": None, "ratio_1bw": None,
           "hyppo_note": None}
    mmd_cls, why = _load_hyppo() if use_hyppo else (None, "hyppo column skipped (--no-hyppo)")
    if mmd_cls is None:
        row["hyppo_note"] = why
        return row
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # hyppo's numba and sklearn deprecation noise
        _, row["hyppo_warmup_s"] = _timed(lambda: mmd_cls().test(wx, wy, reps=reps, auto=False))
        res, th = _timed(lambda: mmd_cls().test(x, y, reps=reps, auto=False))
    row.update(hyppo_s=th, hyppo_p=float(res.pvalue), ratio_5bw=th / t5, ratio_1bw=th / t1)
    return row


def large(n: int, d: int, reps: int, max_exact: int | None = None) -> list[dict]:
    x, y = _data(n, d, 2)
    path = KernelPath() if max_exact is None else KernelPath(max_exact=max_exact)
    rows = []
    for name, fn in (("mmd", mmd_test), ("energy", energy_test)):
        res, t = _timed(lambda fn=fn: fn(x, y, Permutations(reps), path=path))
        rows.append({"test": name, "n": n, "dim": d, "reps": reps, "seconds": t, "pvalue": res.pvalue,
                     "method": res.method})
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (CI)")
    ap.add_argument("--n-hyppo", type=int, default=None, help="n per side of the side-by-side run (default 500)")
    ap.add_argument("--n-large", type=int, default=None, help="n per side of our large run (default 10000)")
    ap.add_argument("--dim", type=int, default=None, help="dimension (default 64)")
    ap.add_argument("--reps", type=int, default=None, help="permutations (default 1000)")
    ap.add_argument("--no-hyppo", action="store_true", help="skip the hyppo column")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's default)")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    small = args.smoke
    n_h = args.n_hyppo or (30 if small else 500)
    n_l = args.n_large or (300 if small else 10000)
    d = args.dim or (4 if small else 64)
    reps = args.reps or (99 if small else 1000)

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"bench_mmd: torch {torch.__version__}, {torch.get_num_threads()} threads, {os.cpu_count()} CPUs, "
          f"load average {load:.2f}, python {sys.version.split()[0]}{' (smoke)' if small else ''}")

    row = side_by_side(n_h, d, reps, not args.no_hyppo)
    print(f"\nside by side: n = {n_h} per side, d = {d}, B = {reps} permutations, same data")
    print(f"  {'test':<10} {'seconds':>10} {'p-value':>9} {'hyppo/ours':>11}")
    print(f"  {'ours-5bw':<10} {row['ours_5bw_s']:>10.3f} {row['ours_5bw_p']:>9.4f} "
          f"{'' if row['ratio_5bw'] is None else format(row['ratio_5bw'], '.0f') + 'x':>11}")
    print(f"  {'ours-1bw':<10} {row['ours_1bw_s']:>10.3f} {row['ours_1bw_p']:>9.4f} "
          f"{'' if row['ratio_1bw'] is None else format(row['ratio_1bw'], '.0f') + 'x':>11}")
    if row["hyppo_s"] is None:
        print(f"  hyppo      skipped: {row['hyppo_note']}")
    else:
        print(f"  {'hyppo':<10} {row['hyppo_s']:>10.3f} {row['hyppo_p']:>9.4f}")
        print(f"  warm-up (untimed above): ours {row['ours_warmup_s']:.2f} s, hyppo {row['hyppo_warmup_s']:.2f} s "
              f"(hyppo's first call compiles with numba unless its cache is warm)")
    print(f"  ours: {row['ours_method']}")

    rows = large(n_l, d, reps, max_exact=256 if small else None)  # smoke: the same approximate paths, tiny
    print(f"\nours alone: n = {n_l} per side, d = {d}, B = {reps} permutations")
    for r in rows:
        print(f"  {r['test']:<7} {r['seconds']:>8.2f} s  p = {r['pvalue']:.4f}  {r['method']}")

    report = {"settings": {"smoke": small, "n_hyppo": n_h, "n_large": n_l, "dim": d, "reps": reps,
                           "threads": torch.get_num_threads(), "cpus": os.cpu_count(), "load_average": load},
              "side_by_side": row, "large": rows}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
