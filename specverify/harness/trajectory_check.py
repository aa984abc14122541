"""The transition-level check: a candidate's trajectories against the target's exact transitions.

Blocks, each corrected within by Holm and joined by Bonferroni (alpha / blocks each), their shares in the
report's ``ledger`` (an :class:`~specverify.harness.ledger.AlphaLedger` of kind "transition"):

- initial law: x_0 against the prior;
- innovations: zero-noise steps, then the battery of :mod:`specverify.harness.innovations`;
- independence: trajectories sharing their innovations or their initial states, and seed hygiene;
- acceptance: when the candidate reports its counts, as in the terminal suite.

Sizing: n trajectories so that a mean shift of ``delta`` innovation standard deviations along a direction
computed from the past, at every noisy step, is detected by one projection test at the innovation block's
Bonferroni level with power 1 - beta (``innovations.trajectories_needed``); at least ``MIN_TRAJECTORIES``, and at
least the acceptance t-test's 100 when counts are reported (a smaller n given by hand leaves the counts untested,
with a warning). The candidate is called in chunks
of at most ``CHUNK_ELEMENTS`` trajectory values; chunk c > 0 gets its own seed from (seed, c).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from scipy import stats

from specverify._validate import in_unit_interval, positive_int
from specverify.errors import SampleSizeError, UsageError
from specverify.harness.contracts import probed, run_paths
from specverify.harness.innovations import Innovations, trajectories_needed
from specverify.harness.ledger import AlphaLedger, Block
from specverify.harness.plan import Plan, with_alpha
from specverify.harness.report import Report
from specverify.harness.stats import MIN_SAMPLES
from specverify.harness.stats.results import holm
from specverify.harness.targets import Transition, as_transition

__all__ = ["CHUNK_ELEMENTS", "DEFAULT_DELTA", "MIN_TRAJECTORIES", "check_trajectories", "chunk_seed",
           "transition_plan"]

HYGIENE_ROWS = 8  # trajectories per seed in the hygiene test (rows of a continuous law never repeat)

DEFAULT_DELTA = 0.02
MIN_TRAJECTORIES = 64
CHUNK_ELEMENTS = 2**24  # trajectory values per candidate call (128 MB in float64)


def chunk_seed(seed: int, c: int) -> int:
    """Chunk 0 runs at ``seed`` (a one-chunk check is candidate(n, seed)); chunk c > 0 at a seed drawn from
    (seed, c)."""
    return int(seed) if c == 0 else int(np.random.SeedSequence([int(seed), c]).generate_state(1)[0] >> 1)


def _n_innovation_tests(target: Transition, lags: int) -> int:
    families = 3 if target.coefs is not None else 2
    return 7 + int((np.asarray(target.sigma) == 0).any()) + 2 * lags * families


def transition_plan(target: Transition, *, alpha: float, beta: float, delta: float, lags: int,
                    counts: bool) -> AlphaLedger:
    """The alpha ledger and the sizing, before any sampling: blocks, tests per block, the level of one
    projection test and the trajectories it needs."""
    blocks = {"initial law": 4, "innovations": _n_innovation_tests(target, lags), "independence": 3}
    if counts:
        blocks["acceptance"] = 1
    a_block = alpha / len(blocks)
    a_test = a_block / blocks["innovations"]
    noisy = int((np.asarray(target.sigma) > 0).sum())
    floor = MIN_SAMPLES if counts else MIN_TRAJECTORIES  # the acceptance t-test needs its own minimum
    needed = max(floor, trajectories_needed(a_test, beta, delta, noisy))
    return AlphaLedger("transition", alpha, beta, {name: Block(k, a_block) for name, k in blocks.items()},
                       "Bonferroni over blocks, Holm within", a_test, needed, delta,
                       extra={"noisy_steps": noisy, "lags": lags})


def _smallest_shift(n: int, a_test: float, beta: float, noisy: int) -> float:
    """The per-step shift (innovation sds) one projection test detects with power 1 - beta at n trajectories."""
    return float((stats.norm.isf(a_test / 2) + stats.norm.isf(beta)) / np.sqrt(n * max(noisy, 1)))


def _merge(accs: list) -> dict | None:
    """Acceptance counts of the chunks, pooled as shards are (per trajectory concatenated, totals summed)."""
    from specverify.harness.shards import pool

    return None if not accs or accs[0] is None else pool(accs)


def _collect(candidate, target, n, seed, lags):
    """Run the candidate in chunks and fold its trajectories into :class:`Innovations`."""
    inn = Innovations(target, lags=lags, seed=seed)
    per_call = max(1, CHUNK_ELEMENTS // ((target.n_steps + 1) * target.dim))
    accs, dtype = [], None
    for c, start in enumerate(range(0, n, per_call)):
        m = min(per_call, n - start)
        paths, acc, dtype = run_paths(candidate, m, chunk_seed(seed, c), target)
        inn.add(paths, _np_dtype(dtype))
        accs.append(acc)
        del paths
    return inn, _merge(accs), dtype


def _np_dtype(name: str):
    return np.float32 if name in ("float32", "bfloat16") else np.float64


def _validate(delta, n, lags):
    """The transition level's own options, and its need of n (the plan checked its levels and n when it was made)."""
    in_unit_interval(delta, "delta (the smallest per-step shift, in innovation standard deviations)", UsageError,
                     upper_closed=True)
    positive_int(lags, "lags", " (steps back to look for drafter directions)", error=UsageError)
    if n is not None and n < 2:
        raise SampleSizeError(f"n={n} trajectories is too few (the duplicate tests need 2); use n >= "
                              f"{MIN_TRAJECTORIES}, or leave it out to size n from alpha, beta and delta")


def check_trajectories(candidate, target, plan: Plan | None = None, *, alpha: float | None = None,
                       delta: float = DEFAULT_DELTA, lags: int = 9) -> Report:
    """The transition-level check of ``candidate(n, seed)`` (returning ``"trajectories"``) against ``target``
    (a :class:`Transition`, or any object :func:`as_transition` accepts), sized for a per-step shift ``delta``
    (innovation standard deviations), with drafter directions from up to ``lags`` steps back. ``plan``
    (:class:`~specverify.harness.plan.Plan`): alpha, beta (here the miss rate at delta; its epsilon is the
    terminal battery's), n trajectories, seed, the diagnosis kept (``keep_samples``) and the candidate's probe if
    the caller made it (else it is made here; its samples serve seed hygiene); ``alpha``: shorthand for the
    plan's."""
    from specverify.harness.suite import _acceptance_block, _report, hygiene_test

    t0 = time.perf_counter()
    plan = with_alpha(plan, alpha)
    n, seed, alpha, beta = plan.n, plan.seed, plan.alpha, plan.beta
    _validate(delta, n, lags)
    target = as_transition(target)
    first = probed(candidate, seed, plan.probe)
    counts = first.counts
    untested = counts and n is not None and n < MIN_SAMPLES  # too few trajectories for the acceptance t-test
    ledger = transition_plan(target, alpha=alpha, beta=beta, delta=delta, lags=lags, counts=counts and not untested)
    a_block = alpha / len(ledger.blocks)
    n = ledger.n_needed if n is None else int(n)
    inn, acc, dtype = _collect(candidate, target, n, seed, lags)
    acc = None if untested else acc
    blocks = [("initial law", holm(inn.initial_tests(), a_block)),
              ("innovations", holm(inn.innovation_tests(), a_block)),
              ("independence", holm([*inn.duplicate_tests(), hygiene_test(candidate, seed, HYGIENE_ROWS, first)],
                                     a_block)),
              *_acceptance_block(acc, a_block)]
    noisy = ledger.extra["noisy_steps"]
    shift = _smallest_shift(n, ledger.test_alpha, beta, noisy)
    ledger = ledger.used(n, shift, trajectory_dtype=dtype, mean_from=target.source)
    series = len(inn.series) + 2
    threshold = float(stats.norm.isf(a_block / (2 * max(noisy, 1) * series)))
    report = _report(blocks, acc, ledger, plan, kind=f"innovations (mean from {target.source})", t0=t0)
    untested = (f"the acceptance counts were not tested: the t-test needs n >= {MIN_SAMPLES} trajectories",) \
        if untested else ()
    return dataclasses.replace(report, warnings=report.warnings + untested, diagnosis=inn.diagnosis(threshold),
                               data={"diagnosis": inn} if plan.keep_samples else None)
