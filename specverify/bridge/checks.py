"""The suite through the door: :func:`check` (a candidate on a built-in problem, at the level it can be judged
at: its transitions or its final samples) and :func:`mutant_verdict` (one of our samplers under the two mutant
configurations). Part of the door (:mod:`specverify.bridge`); the check's levels are a
:class:`~specverify.harness.plan.Plan`, the transition level's options a :class:`TrajectoryOptions`."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from specverify.bridge.ours import Ours, make_candidate
from specverify.errors import UsageError
from specverify.harness.plan import Plan, with_alpha

if TYPE_CHECKING:
    from specverify.bridge.setups import Setup

__all__ = ["MUTANT_CONFIGURATIONS", "STRESS_WINDOW", "TrajectoryOptions", "check", "mutant_split", "mutant_verdict"]

STRESS_WINDOW = 4
MUTANT_CONFIGURATIONS = ("default", "stress")  # each mutant is checked under both, alpha shared by Bonferroni


@dataclasses.dataclass(frozen=True)
class TrajectoryOptions:
    """How :func:`check` judges a candidate's trajectories: against ``target`` (default: ``bridge.make_target``,
    the problem's own transitions), sized for a per-step shift ``delta`` (None: the problem's, or
    ``trajectory_check.DEFAULT_DELTA`` for a target of the caller's), with drafter directions from up to ``lags``
    steps back; ``terminal=True`` judges the final samples alone (the terminal battery), trajectories or not.
    ``delta`` and ``lags`` are checked by ``trajectory_check.check_trajectories`` (with its messages)."""

    terminal: bool = False
    target: object = None
    delta: float | None = None
    lags: int = 9


def check(setup: Setup, candidate, reference=None, plan: Plan | None = None, *, alpha: float | None = None,
          paths: TrajectoryOptions | None = None):
    """Run the suite at ``plan`` (alpha, beta, epsilon, n, seed, ...; ``alpha``: shorthand for the plan's). A
    candidate that returns ``"trajectories"`` gets the transition-level check as ``paths`` says; one that returns
    only samples, or any with ``paths.terminal``, the terminal battery against ``reference`` (default:
    ``bridge.make_reference``), sized by ``plan.epsilon``. The candidate is probed once (``contracts.probe``: the
    same seed twice, and what it returns), and the check chosen reuses that probe."""
    from specverify.bridge.setups import make_reference, make_target
    from specverify.harness import check_against_law, check_against_sampler
    from specverify.harness.contracts import probe
    from specverify.harness.trajectory_check import check_trajectories

    if isinstance(reference, Plan):
        raise UsageError("check(setup, candidate, reference, plan): the third argument is the reference; pass the "
                         "plan as plan=Plan(...)")
    plan, paths = with_alpha(plan, alpha), paths or TrajectoryOptions()
    seen = None if paths.terminal else probe(candidate, plan.seed)  # --terminal: the battery probes on its own
    if seen is not None:
        plan = dataclasses.replace(plan, probe=seen)
    if seen is not None and seen.trajectories:
        target = make_target(setup) if paths.target is None else paths.target
        return check_trajectories(candidate, target, plan, delta=_delta(setup, paths), lags=paths.lags)
    kind, ref = make_reference(setup) if reference is None else reference
    if kind == "law":
        return check_against_law(candidate, ref.mean, ref.eigvals, ref.eigvecs, plan)
    return check_against_sampler(candidate, ref, setup.dim, plan)


def _delta(setup: Setup, paths: TrajectoryOptions):
    """The declared smallest per-step shift: given, else the problem's (its own target), else the default."""
    from specverify.harness.trajectory_check import DEFAULT_DELTA

    if paths.delta is not None:
        return paths.delta
    return setup.entry.delta if paths.target is None else DEFAULT_DELTA


def mutant_split(alpha: float):
    """How ``mutant_verdict`` shares alpha (``ledger.split_family``): alpha / 2 for each configuration."""
    from specverify.harness.ledger import split_family

    return split_family(alpha, MUTANT_CONFIGURATIONS)


def mutant_verdict(setup: Setup, reference, ours: Ours, plan: Plan, paths: TrajectoryOptions | None = None, *,
                   device="cpu") -> dict:
    """Check ``ours`` (our sampler; ``ours.mutant`` None: the correct one) under two configurations, its own
    drafter and window and the stress drafter (``ours.stress_delta``, window ``STRESS_WINDOW``), at
    ``plan.alpha`` / 2 each (so the verdict's false-alarm rate is <= alpha); detected if either rejects (the
    stress configuration is skipped once the default one has rejected: the verdict is then made).
    The check is transition-level on the sampler's trajectories (``paths``; its lags: each configuration's window
    + 1), or the terminal battery on its samples (``paths.terminal``). Returns a row (the bug's ``description``,
    None for the correct sampler) with each configuration's verdict, n, min adjusted p-value, the tests that
    rejected and the blocks that caught it."""
    from specverify.sampler.mutants import MUTANTS

    paths, mutant = paths or TrajectoryOptions(), ours.mutant
    configs = dict(zip(MUTANT_CONFIGURATIONS, (ours, dataclasses.replace(ours, drafter="stress",
                                                                         window=STRESS_WINDOW)), strict=True))
    split = mutant_split(plan.alpha)
    row = {"name": mutant or "correct", "description": MUTANTS[mutant].description if mutant in MUTANTS else None,
           "configurations": {}}
    for label, o in configs.items():
        if label == "stress" and row["configurations"]["default"]["verdict"] == "fail":  # the verdict is made
            row["configurations"][label] = {"drafter": o.drafter, "window": o.window, "verdict": "skipped",
                                            "n": None, "min_adjusted_pvalue": 1.0, "rejected_tests": [],
                                            "caught_by": [], "permutations": None, "seconds": 0.0}
            continue
        cand = make_candidate(setup, o, device=device, path=not paths.terminal)
        rep = check(setup, cand, reference, plan, alpha=split[label],
                    paths=dataclasses.replace(paths, lags=o.window + 1))
        row["configurations"][label] = {"drafter": o.drafter, "window": o.window, "verdict": rep.verdict, "n": rep.n,
                                        "min_adjusted_pvalue": min(t.adjusted_pvalue for t in rep.tests),
                                        "rejected_tests": [t.name for t in rep.tests if t.rejected],
                                        "caught_by": list(rep.caught_by),
                                        "permutations": rep.permutations, "seconds": rep.seconds}
    row["detected"] = any(c["verdict"] == "fail" for c in row["configurations"].values())
    row["min_adjusted_pvalue"] = min(c["min_adjusted_pvalue"] for c in row["configurations"].values())
    row["caught_by"] = [k for k, c in row["configurations"].items() if c["verdict"] == "fail"]
    return row
