"""The suite: a candidate against a reference (an exact Gaussian law or a reference sampler).

The verdict's family has two or three blocks, each corrected within and joined by Bonferroni (alpha / blocks each):
- distribution: against an exact law, the one-sample battery on whitened coordinates (independent under H0, so
  Holm is nearly exact); against a reference sampler, KS (coordinates, squared norm, random projections), MMD
  at five bandwidths and energy distance on shared permutations, minP-adjusted (``stats.omnibus``: exact level
  whatever the correlation between the tests);
- independence: the exact count of duplicated rows (impossible for a continuous law), the nearest-neighbour
  permutation test for (near) duplicates within the candidate's sample against a reference sample (the reference
  sampler's, or draws from the exact law; ``stats.independence``) and seed hygiene (no rows shared with a second
  seed's samples; ``contracts.shared_rows``), Holm;
- acceptance: when the candidate reports its acceptance counts, the trajectory t-test of accepted against
  predicted steps (``stats.acceptance``).
Sizes come from (alpha, beta, epsilon) by the DKW bounds at the Bonferroni threshold alpha / (blocks k) of the
k distribution tests, so that a KS distance epsilon in any one statistic is detected with probability at least
1 - beta (minP only rejects more). Benjamini-Hochberg q-values over all tests are reported for exploration.
"""

from __future__ import annotations

import time

import numpy as np

from specverify._validate import in_unit_interval, positive_int
from specverify.errors import SampleSizeError, UsageError
from specverify.harness.contracts import Probe, probed, run, shared_rows
from specverify.harness.ledger import AlphaLedger, Block, validate_levels
from specverify.harness.report import AcceptanceSummary, Report
from specverify.harness.stats import MIN_SAMPLES, gaussian_one_sample
from specverify.harness.stats.acceptance import PerPosition, acceptance_summary, acceptance_test
from specverify.harness.stats.independence import nearest_neighbour_test
from specverify.harness.stats.results import AdjustedTest, Battery, TestResult, bonferroni_blocks, holm
from specverify.harness.stats.sizing import (
    ks_one_sample_n,
    ks_two_sample_n,
    min_detectable_ks_one_sample,
    min_detectable_ks_two_sample,
)

__all__ = ["Report", "check_against_law", "check_against_sampler", "terminal_plan"]

N_PROJECTIONS, MAX_COORDS = 16, 64
INDEPENDENCE_TESTS = 3  # exact duplicates, nearest neighbours, seed hygiene (_independence)
REFERENCE_SEED_OFFSET = 1_000_003  # the reference draws from another stream than the candidate


def _power_warnings(n, needed, mdk, beta, epsilon) -> tuple[str, ...]:
    if n >= needed:
        return ()
    return (f"n={n} detects KS distances >= {mdk:.4f} with power {1 - beta}, not {epsilon}: "
            f"use n >= {needed} (or leave --n out)",)


def _bh(pvalues):
    from statsmodels.stats.multitest import multipletests

    return multipletests(np.asarray(pvalues, dtype=np.float64), method="fdr_bh")[1]


def _levels(alpha, beta, epsilon, n) -> None:
    """Validate the verdict's levels and n before any sampling; messages name the fix."""
    validate_levels(alpha, beta, "epsilon")
    in_unit_interval(epsilon, "epsilon (the KS distance to detect)", UsageError, upper_closed=True)
    if n is not None:
        positive_int(n, "n", " (samples per side)", error=UsageError)
        if n < MIN_SAMPLES:
            raise SampleSizeError(f"n={n} is too few samples for the tests (they need n >= {MIN_SAMPLES}); use a "
                                  "larger n, or leave it out to size n from alpha, beta and epsilon")


def _acceptance(acc) -> AcceptanceSummary:
    verified = acc.get("verified")
    if verified is None:
        verified = np.zeros_like(acc["accepted"])
    per_position = None if acc.get("accepted_per_position") is None else PerPosition(
        acc["accepted_per_position"], acc.get("verified_per_position"), acc.get("predicted_per_position"))
    return AcceptanceSummary.from_dict(acceptance_summary(acc["accepted"], acc["predicted"], verified,
                                                          per_position=per_position))


def _independence(candidate, x, y, alpha, seed) -> Battery:
    """The independence block: the exact-duplicate count of x, the nearest-neighbour test of x against the
    reference sample y, and seed hygiene (rows shared with a second seed's samples), Holm at ``alpha``."""
    from specverify.harness.stats.independence import exact_duplicate_test

    near = nearest_neighbour_test(x, y, alpha / 3, seed=seed)  # alpha / 3: Holm's first step
    return holm([exact_duplicate_test(x), near, hygiene_test(candidate, seed)], alpha)


def hygiene_test(candidate, seed: int, n: int = 64, first: Probe | None = None) -> TestResult:
    """Seed hygiene: ``candidate(n, seed)`` shares no row with a second seed's samples (p = 1 if none, else 0).
    ``first``: the candidate's probe, whose samples are reused when it was made at (n, seed)."""
    shared = shared_rows(candidate, seed, n=n, first=first)
    return TestResult("independence[seed hygiene]", float(sum(shared.values())), 0.0 if any(shared.values()) else 1.0,
                      f"rows of candidate({n}, {seed}) repeated by candidate({n}, s) for s in {sorted(shared)} "
                      "(none for independent draws of a continuous law: p = 1 if none, else 0)", n)


def rejection_path(acc, mdk: float) -> dict:
    """How much of the rejection path the sample exercised: rejected drafted steps (verified minus accepted, from
    the candidate's counts; None: unknown) and the fraction f of trajectories with at least one. A bug confined to
    the rejection path changes only those trajectories, so it moves the law by at most f in total variation (and
    KS <= TV): with f below the smallest detectable KS distance ``mdk``, a pass says nothing about that path."""
    if acc is None or acc.get("verified") is None:
        return {"rejected_steps": None, "trajectories_with_rejection": None,
                "note": "rejected drafted steps unknown (the candidate reports no verified counts): the pass says "
                        "nothing about how often the rejection path was exercised"}
    rejected = np.asarray(acc["verified"]) - np.asarray(acc["accepted"])
    f = float(np.mean(rejected > 0.5))
    out = {"rejected_steps": int(round(rejected.sum())), "trajectories_with_rejection": f, "note": None}
    if f < mdk:
        out["note"] = (f"only {f:.4f} of the trajectories rejected a drafted step, below the smallest detectable KS "
                       f"distance {mdk:.4f}: a bug on the rejection path cannot show at this n; use a harder problem "
                       "or drafter (stress) or a larger n")
    return out


def _acceptance_block(acc, a_block: float) -> list:
    """[("acceptance", battery)] when the candidate reports acceptance counts, else []."""
    if acc is None:
        return []
    t = acceptance_test(acc["accepted"], acc["predicted"], acc.get("verified"), acc.get("predicted_var"))
    return [("acceptance", Battery((t,), (t.pvalue,), (t.pvalue <= a_block,), a_block, "single"))]


def _report(blocks, acc, *, kind, alpha, beta, epsilon, n, mdk, seed, t0, warnings, data, ledger=None):
    """The verdict from ``blocks`` (family name, battery); ``acc``: the candidate's counts (summary, rejection path);
    ``ledger``: the check's :class:`AlphaLedger` (the transition level adds its own after its diagnosis)."""
    family = bonferroni_blocks([b for _, b in blocks], alpha)
    labels = [name for name, b in blocks for _ in b.tests]
    bh = _bh([t.pvalue for t in family.tests])
    tests = tuple(AdjustedTest.of(t, a, r, family=f, bh_qvalue=float(q))
                  for t, f, a, r, q in zip(family.tests, labels, family.adjusted, family.rejected, bh, strict=True))
    summary = None if acc is None else _acceptance(acc)
    return Report("fail" if family.reject else "pass", alpha, beta, epsilon, n, mdk, kind, seed, family.correction,
                  tests, summary, time.perf_counter() - t0, warnings, family.permutations, rejection_path(acc, mdk),
                  ledger=ledger, data=data)


def terminal_plan(kind: str, dim: int, *, alpha: float, beta: float, epsilon: float, counts: bool,
                  n_perm: int | None = None) -> AlphaLedger:
    """The terminal battery's alpha ledger before any sampling: its blocks, the level of one distribution test, and
    the n that detects a KS distance ``epsilon`` with power 1 - beta at it. ``kind``: "exact" (one-sample against
    the law: d coordinates and the squared norm, Holm) or "sampler" (two-sample, minP over the battery's own
    tests, ``stats.omnibus.n_tests``); ``counts``: the candidate reports acceptance counts (a third block)."""
    from specverify.harness.stats.omnibus import SCREEN_SHARE, BatteryTests, n_tests

    validate_levels(alpha, beta, "epsilon")  # before the sizing below (the record validates the rest)
    if kind == "exact":
        k, screen, battery = dim + 1, None, "one-sample against the exact law (Holm)"
    else:
        k, screen = n_tests(dim, BatteryTests(N_PROJECTIONS, MAX_COORDS)), SCREEN_SHARE if n_perm is None else None
        battery = "two-sample against a reference sampler (minP" + (", exact KS screen)" if screen else ")")
    blocks = {"distribution": k, "independence": INDEPENDENCE_TESTS} | ({"acceptance": 1} if counts else {})
    a_block = alpha / len(blocks)
    a_test = a_block / k * (1 - screen if screen is not None else 1)  # minP spends 1 - SCREEN_SHARE of a_block
    needed = ks_one_sample_n(a_test, beta, epsilon) if kind == "exact" else ks_two_sample_n(a_test, beta, epsilon)
    return AlphaLedger("terminal", alpha, beta, {name: Block(t, a_block) for name, t in blocks.items()},
                       "Bonferroni over blocks", a_test, needed, epsilon, screen_share=screen,
                       extra={"battery": battery, "dim": int(dim)})


def check_against_law(candidate, mean, eigvals, eigvecs, *, alpha=0.01, beta=0.05, epsilon=0.05, n=None,
                      seed=0, keep_samples: bool = False, probe: Probe | None = None) -> Report:
    """One-sample battery of ``candidate(n, seed)`` against N(mean, Q diag(eigvals) Q^T), plus acceptance.
    ``probe``: the candidate's ``contracts.probe`` at ``seed`` if the caller made it (else it is made here)."""
    t0 = time.perf_counter()
    _levels(alpha, beta, epsilon, n)
    d = len(mean)
    counts = probed(candidate, seed, probe).counts
    ledger = terminal_plan("exact", d, alpha=alpha, beta=beta, epsilon=epsilon, counts=counts)
    a_block, needed = ledger.blocks["distribution"].alpha, ledger.n_needed
    n = needed if n is None else int(n)
    x, acc = run(candidate, n, seed, dim=d)
    battery = gaussian_one_sample(x, np.asarray(mean), np.asarray(eigvals), np.asarray(eigvecs), a_block)
    z = np.random.default_rng([seed, REFERENCE_SEED_OFFSET]).standard_normal(x.shape)
    y = np.asarray(mean) + (z * np.sqrt(np.asarray(eigvals))) @ np.asarray(eigvecs).T  # draws of the exact law
    independence = _independence(candidate, x, y, a_block, seed)
    mdk = min_detectable_ks_one_sample(n, ledger.test_alpha, beta)
    data = {"x": x, "law": (np.asarray(mean), np.asarray(eigvals), np.asarray(eigvecs))} if keep_samples else None
    blocks = [("distribution", battery), ("independence", independence), *_acceptance_block(acc, a_block)]
    return _report(blocks, acc, kind="exact", alpha=alpha,
                   beta=beta, epsilon=epsilon, n=n, mdk=mdk, seed=seed, t0=t0,
                   warnings=_power_warnings(n, needed, mdk, beta, epsilon), data=data, ledger=ledger.used(n, mdk))


def check_against_sampler(candidate, reference, dim: int, *, alpha=0.01, beta=0.05, epsilon=0.05, n=None,
                          seed=0, n_perm: int | None = None, keep_samples: bool = False,
                          probe: Probe | None = None) -> Report:
    """Two-sample battery (KS, MMD, energy; minP) against ``reference(n, seed)``, plus acceptance (``probe``: as
    in :func:`check_against_law`).

    The independence and acceptance blocks are decided first: when one rejects, the verdict is made and the
    battery's permutations stop early (``two_sample_minp(settled=True)``)."""
    from specverify.harness.stats.omnibus import BatteryTests, Permutations, two_sample_minp

    t0 = time.perf_counter()
    _levels(alpha, beta, epsilon, n)
    ledger = terminal_plan("sampler", dim, alpha=alpha, beta=beta, epsilon=epsilon,
                           counts=probed(candidate, seed, probe).counts, n_perm=n_perm)
    a_block, needed = ledger.blocks["distribution"].alpha, ledger.n_needed
    n = needed if n is None else int(n)
    x, acc = run(candidate, n, seed, dim=dim)
    y = run(reference, n, seed + REFERENCE_SEED_OFFSET, dim=dim, what="reference")[0]
    independence = _independence(candidate, x, y, a_block, seed)
    accept = _acceptance_block(acc, a_block)
    settled = independence.reject or any(b.reject for _, b in accept)
    battery = two_sample_minp(x, y, a_block, Permutations(n_perm, seed=seed),
                              tests=BatteryTests(N_PROJECTIONS, MAX_COORDS), settled=settled)
    mdk = min_detectable_ks_two_sample(n, n, ledger.test_alpha, beta)
    data = {"x": x, "y": y} if keep_samples else None
    blocks = [("distribution", battery), ("independence", independence), *accept]
    return _report(blocks, acc, kind="sampler", alpha=alpha,
                   beta=beta, epsilon=epsilon, n=n, mdk=mdk, seed=seed, t0=t0,
                   warnings=_power_warnings(n, needed, mdk, beta, epsilon), data=data, ledger=ledger.used(n, mdk))
