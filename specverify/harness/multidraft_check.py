"""Kernel-level contract for multi-draft couplings: one node with K i.i.d. drafts.

``coupling(mean_p, means_q, sigma, z, u) -> (x, index)``: mean_p (n, d), means_q and z (n, K, d) (the K draft
means of a row are equal: one draft law), sigma (n,), u (n, K + 1) uniforms. The drafts are
y_k = means_q[:, k] + sigma z[:, k]; ``index`` (n,) is the draft returned (x must then equal it) or -1 where x
is drawn otherwise (a residual). Checked here: every index is in -1 .. K - 1 and an accepted draft comes back
as drafted (exact), the output is N(mean_p, sigma^2 I) (whitened battery and the coordinate along
e = (mean_p - mean_q) / |mean_p - mean_q|, where a wrong residual shows first), and with a ``rule`` (``RULES``) the
acceptance matches that rule's (D-GRS's 1 - G_{K+1}, rank selection's int min(f, g); exact binomial test); Holm
over every test of every case.
"""

from __future__ import annotations

import time

import numpy as np
from scipy import stats

from specverify.errors import CandidateError, ContractError
from specverify.harness.contracts import _to_numpy
from specverify.harness.coupling_check import CouplingResult, ExactCase, _case_inputs
from specverify.harness.node_laws import rank_acceptance
from specverify.harness.predictions import dgrs_acceptance
from specverify.harness.stats.one_sample import whitened_normal_battery
from specverify.harness.stats.results import TestResult, holm

__all__ = ["CASES", "RULES", "check_multidraft"]

RULES = {"dgrs": ("D-GRS 1 - G_(K+1)", dgrs_acceptance),
         "rank": ("rank selection (LP weights) int min(f, g)", lambda d, K: rank_acceptance(d, K, "lp")),
         "rank-max": ("rank selection (max) int min(f, g)", lambda d, K: rank_acceptance(d, K, "max")),
         "rank-uniform": ("rank selection (uniform) int min(f, g)", lambda d, K: rank_acceptance(d, K, "uniform"))}

CASES = ((1, 0.5, 2), (1, 2.0, 4), (8, 1.0, 8), (64, 0.3, 4))  # (dimension, |D|, drafts K)
_EXACT_RTOL = 1e-9


def _call(fn, args, n, d, K):
    try:
        out = fn(*args)
    except Exception as first:  # noqa: BLE001 - a third-party coupling may only take torch tensors
        try:
            import torch

            out = fn(*[torch.as_tensor(a) for a in args])
        except Exception:  # noqa: BLE001
            raise CandidateError(f"coupling raised {type(first).__name__}: {first}") from first
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise ContractError(f"coupling returned {type(out).__name__}; the contract is a pair (x, index)")
    x, index = _to_numpy(out[0]), _to_numpy(out[1]).ravel()
    if x.shape != (n, d):
        raise ContractError(f"coupling returned x of shape {x.shape}; expected {(n, d)}")
    if index.shape != (n,) or not np.isfinite(x).all():
        raise ContractError(f"coupling returned {index.size} indices for {n} rows, or NaN / Inf in x")
    if np.any(index != np.round(index)) or index.min() < -1 or index.max() >= K:
        raise ContractError(f"coupling returned indices outside -1 .. {K - 1} (-1: not a draft)")
    return x, index.astype(np.int64)


def _case(fn, rng, n, spec, rule):
    """One case of ``CASES``, ``spec`` = (dimension, |D|, drafts K): its exact record and its tests."""
    d, dist, K = spec
    mean_p, mean_q, sigma = _case_inputs(rng, n, d, dist)
    means_q = np.repeat(mean_q[:, None], K, axis=1)
    z, u = rng.normal(size=(n, K, d)), rng.uniform(size=(n, K + 1))
    x, index = _call(fn, (mean_p, means_q, sigma, z, u), n, d, K)
    took = index >= 0
    drafts = means_q + sigma[:, None, None] * z
    drafted = drafts[np.arange(n), np.maximum(index, 0)]
    scale = np.abs(drafted).max() + 1.0
    bad = int((np.abs(x - drafted).max(1)[took] > _EXACT_RTOL * scale).sum())
    w = (x - mean_p) / sigma[:, None]
    e = (mean_p - mean_q) / np.linalg.norm(mean_p - mean_q, axis=1, keepdims=True)
    tag = f"d={d} |D|={dist} K={K} "
    tests = list(whitened_normal_battery(w, 0.5, prefix=tag).tests)  # alpha here only labels; Holm is below
    r = stats.kstest((w * e).sum(1), stats.norm.cdf, method="asymp")
    tests.append(TestResult(f"{tag}ks[along e]", float(r.statistic), float(r.pvalue), "ks-1samp-asymp", n))
    if rule is not None:
        label, law = RULES[rule]
        p = float(law(dist, K))
        b = stats.binomtest(int(took.sum()), n, p)
        tests.append(TestResult(f"{tag}acceptance", float(took.mean()), float(b.pvalue),
                                f"binomtest vs {label} = {p:.4f}", n))
    return ExactCase(d, dist, 0, bad), tests


def check_multidraft(fn, *, n: int = 20000, alpha: float = 0.01, seed: int = 0, rule: str | None = None
                     ) -> CouplingResult:
    """Check a multi-draft coupling over ``CASES``; a ``rule`` (a key of ``RULES``) also tests its acceptance."""
    if rule is not None and rule not in RULES:
        raise ContractError(f"rule must be None or one of {', '.join(RULES)}, got {rule!r}")
    t0 = time.perf_counter()
    rng = np.random.default_rng(seed)
    exact, tests = [], []
    for spec in CASES:
        case, case_tests = _case(fn, rng, n, spec, rule)
        exact.append(case)
        tests += case_tests
    battery = holm(tests, alpha)
    exact_ok = all(e.output_mismatches == 0 for e in exact)
    verdict = "pass" if exact_ok and not battery.reject else "fail"
    return CouplingResult(verdict, "multidraft", alpha, n, seed, tuple(exact), exact_ok, battery.adjusted_tests(),
                          time.perf_counter() - t0)
