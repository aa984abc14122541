"""The door between the two halves: the problem registry and our sampler as a candidate.

- :data:`REGISTRY` (:mod:`specverify.bridge.setups`) maps each built-in problem to its torch side (the chain and the third-party view, from
  :mod:`specverify.sampler.problems`) and its ground truth (an exact law or a reference sampler, from
  :mod:`specverify.harness.reference`). Adding a problem is one file per side and one entry there; nothing else
  dispatches on problem names.
- :func:`run_ours` (:mod:`specverify.bridge.ours`) runs our sampler (plain, speculative or a mutant) with every
  option (:class:`Ours`): the one way the faces start it. :func:`make_candidate` wraps it as a black box
  ``candidate(n, seed)``, the contract the harness judges every sampler through; :func:`check`
  (:mod:`specverify.bridge.checks`) runs the suite on it at a :class:`Plan`.

The faces (`specverify check`, `mutants`, `accept`, the scripts of ``paper_repro/``) go through here.
"""

from __future__ import annotations

from specverify.bridge.checks import (
    MUTANT_CONFIGURATIONS,
    STRESS_WINDOW,
    TrajectoryOptions,
    check,
    mutant_split,
    mutant_verdict,
)
from specverify.bridge.ours import Built, Ours, make_builtin_drafter, make_candidate, run_ours
from specverify.bridge.setups import (
    REGISTRY,
    ProblemChain,
    ProblemEntry,
    Setup,
    entry,
    make_reference,
    make_setup,
    make_target,
    reference_name,
    setup_of,
)
from specverify.harness.plan import Plan

__all__ = ["MUTANT_CONFIGURATIONS", "REGISTRY", "STRESS_WINDOW", "Built", "Ours", "Plan", "ProblemChain",
           "ProblemEntry", "Setup", "TrajectoryOptions", "check", "entry", "make_builtin_drafter", "make_candidate",
           "make_reference", "make_setup", "make_target", "mutant_split", "mutant_verdict", "reference_name",
           "run_ours", "setup_of"]
