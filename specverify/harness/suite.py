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

import dataclasses
import time

import numpy as np

from specverify.errors import SampleSizeError
from specverify.harness.contracts import Probe, probed, run, shared_rows
from specverify.harness.ledger import AlphaLedger, Block
from specverify.harness.plan import Plan, with_alpha
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


def _power_warnings(ledger: AlphaLedger) -> tuple[str, ...]:
    """The warning of a check run at fewer than the n its plan needs (its ledger completed by the run)."""
    n, needed, found, beta, declared = ledger.n, ledger.n_needed, ledger.detectable, ledger.beta, ledger.effect
    if n >= needed:
        return ()
    if ledger.kind == "transition":
        return (f"n={n} trajectories detect a per-step shift >= {found:.4f} with power {1 - beta}, not {declared}: "
                f"use n >= {needed} (or leave --n out)",)
    return (f"n={n} detects KS distances >= {found:.4f} with power {1 - beta}, not {declared}: "
            f"use n >= {needed} (or leave --n out)",)


def _bh(pvalues):
    from statsmodels.stats.multitest import multipletests

    return multipletests(np.asarray(pvalues, dtype=np.float64), method="fdr_bh")[1]


def _enough(n) -> None:
    """The battery's own need, before any sampling (the plan checked its levels and n when it was made)."""
    if n is not None and n < MIN_SAMPLES:
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


def _report(blocks, acc, ledger: AlphaLedger, plan: Plan, *, kind: str, t0: float) -> Report:
    """The verdict from ``blocks`` (family name, battery) at the ``ledger``'s alpha (the check's, completed by the
    run: its n, effect and the smallest one detected); ``acc``: the candidate's counts (summary, rejection path);
    ``kind``: what the candidate was judged against. The check adds what only it knows (the samples it keeps, a
    diagnosis) to the record it returns."""
    alpha, mdk = ledger.alpha, ledger.detectable
    family = bonferroni_blocks([b for _, b in blocks], alpha)
    labels = [name for name, b in blocks for _ in b.tests]
    bh = _bh([t.pvalue for t in family.tests])
    tests = tuple(AdjustedTest.of(t, a, r, family=f, bh_qvalue=float(q))
                  for t, f, a, r, q in zip(family.tests, labels, family.adjusted, family.rejected, bh, strict=True))
    summary = None if acc is None else _acceptance(acc)
    return Report("fail" if family.reject else "pass", alpha, ledger.beta, ledger.effect, ledger.n, mdk, kind,
                  plan.seed, family.correction, tests, summary, time.perf_counter() - t0, _power_warnings(ledger),
                  family.permutations, rejection_path(acc, mdk), ledger=ledger)


def terminal_plan(kind: str, dim: int, plan: Plan, *, counts: bool) -> AlphaLedger:
    """The terminal battery's alpha ledger before any sampling: its blocks, the level of one distribution test, and
    the n that detects a KS distance ``plan.epsilon`` with power 1 - beta at it. ``kind``: "exact" (one-sample
    against the law: d coordinates and the squared norm, Holm) or "sampler" (two-sample, minP over the battery's
    own tests, ``stats.omnibus.n_tests``; the exact KS screen unless ``plan.n_perm`` fixes the permutations);
    ``counts``: the candidate reports acceptance counts (a third block)."""
    from specverify.harness.stats.omnibus import SCREEN_SHARE, BatteryTests, n_tests

    alpha, beta, epsilon, n_perm = plan.alpha, plan.beta, plan.epsilon, plan.n_perm  # checked by the plan
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


def check_against_law(candidate, mean, eigvals, eigvecs, plan: Plan | None = None, *,
                      alpha: float | None = None) -> Report:
    """One-sample battery of ``candidate(n, seed)`` against N(mean, Q diag(eigvals) Q^T), plus acceptance.
    ``plan`` (:class:`~specverify.harness.plan.Plan`): alpha, beta, epsilon, n, seed, the samples kept and the
    candidate's probe if the caller made it (else it is made here); ``alpha``: shorthand for the plan's."""
    t0 = time.perf_counter()
    plan = with_alpha(plan, alpha)
    _enough(plan.n)
    d, seed, beta = len(mean), plan.seed, plan.beta
    counts = probed(candidate, seed, plan.probe).counts
    ledger = terminal_plan("exact", d, plan, counts=counts)
    a_block = ledger.blocks["distribution"].alpha
    n = ledger.n_needed if plan.n is None else int(plan.n)
    x, acc = run(candidate, n, seed, dim=d)
    battery = gaussian_one_sample(x, np.asarray(mean), np.asarray(eigvals), np.asarray(eigvecs), a_block)
    z = np.random.default_rng([seed, REFERENCE_SEED_OFFSET]).standard_normal(x.shape)
    y = np.asarray(mean) + (z * np.sqrt(np.asarray(eigvals))) @ np.asarray(eigvecs).T  # draws of the exact law
    independence = _independence(candidate, x, y, a_block, seed)
    mdk = min_detectable_ks_one_sample(n, ledger.test_alpha, beta)
    blocks = [("distribution", battery), ("independence", independence), *_acceptance_block(acc, a_block)]
    report = _report(blocks, acc, ledger.used(n, mdk), plan, kind="exact", t0=t0)
    if not plan.keep_samples:
        return report
    return dataclasses.replace(report, data={"x": x, "law": (np.asarray(mean), np.asarray(eigvals),
                                                             np.asarray(eigvecs))})


def check_against_sampler(candidate, reference, dim: int, plan: Plan | None = None, *,
                          alpha: float | None = None) -> Report:
    """Two-sample battery (KS, MMD, energy; minP) against ``reference(n, seed)``, plus acceptance (``plan`` and
    ``alpha``: as in :func:`check_against_law`; ``plan.n_perm``: the battery's permutations).

    The independence and acceptance blocks are decided first: when one rejects, the verdict is made and the
    battery's permutations stop early (``two_sample_minp(settled=True)``)."""
    from specverify.harness.stats.omnibus import BatteryTests, Permutations, two_sample_minp

    t0 = time.perf_counter()
    plan = with_alpha(plan, alpha)
    _enough(plan.n)
    seed, beta, n_perm = plan.seed, plan.beta, plan.n_perm
    ledger = terminal_plan("sampler", dim, plan, counts=probed(candidate, seed, plan.probe).counts)
    a_block = ledger.blocks["distribution"].alpha
    n = ledger.n_needed if plan.n is None else int(plan.n)
    x, acc = run(candidate, n, seed, dim=dim)
    y = run(reference, n, seed + REFERENCE_SEED_OFFSET, dim=dim, what="reference")[0]
    independence = _independence(candidate, x, y, a_block, seed)
    accept = _acceptance_block(acc, a_block)
    settled = independence.reject or any(b.reject for _, b in accept)
    battery = two_sample_minp(x, y, a_block, Permutations(n_perm, seed=seed),
                              tests=BatteryTests(N_PROJECTIONS, MAX_COORDS), settled=settled)
    mdk = min_detectable_ks_two_sample(n, n, ledger.test_alpha, beta)
    blocks = [("distribution", battery), ("independence", independence), *accept]
    report = _report(blocks, acc, ledger.used(n, mdk), plan, kind="sampler", t0=t0)
    return dataclasses.replace(report, data={"x": x, "y": y}) if plan.keep_samples else report
