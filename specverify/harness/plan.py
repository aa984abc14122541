"""A check's plan (:class:`Plan`): its levels, n and seed, as one small frozen record checked once when it is made.

Every check of the suite (``suite.check_against_law``, ``suite.check_against_sampler``,
``trajectory_check.check_trajectories``) and the door's ``bridge.check`` take a ``plan`` and, as a shorthand for
the common call, ``alpha=`` (:func:`with_alpha`): ``check_against_law(candidate, mean, eigvals, eigvecs,
alpha=0.01)`` is ``check_against_law(candidate, mean, eigvals, eigvecs, Plan(alpha=0.01))``.
"""

from __future__ import annotations

import dataclasses

from specverify._validate import in_unit_interval, positive_int
from specverify.errors import UsageError
from specverify.harness.contracts import Probe
from specverify.harness.ledger import validate_levels

__all__ = ["Plan", "with_alpha"]


@dataclasses.dataclass(frozen=True)
class Plan:
    """How a check spends its false-alarm budget and sizes n.

    ``alpha``: the family-wise false-alarm rate; ``beta``: the miss rate at the declared smallest effect,
    ``epsilon`` (a KS distance) for the terminal battery (the transition-level check declares its per-step shift
    ``delta`` itself); ``n``: samples (terminal) or trajectories (transition level), None: sized from alpha, beta and
    the effect; ``seed``: the candidate's seed and the tests'; ``n_perm``: a fixed number of permutations for the
    two-sample battery (None: the sequential engine). What the run keeps and reuses: ``keep_samples`` (the report
    keeps the samples, for ``report.plots`` and the diagnosis), ``probe`` (the candidate's ``contracts.probe`` at
    ``seed`` if the caller made one; else the check makes it).
    """

    alpha: float = 0.01
    beta: float = 0.05
    epsilon: float = 0.05
    n: int | None = None
    seed: int = 0
    n_perm: int | None = None
    keep_samples: bool = False
    probe: Probe | None = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self):
        validate_levels(self.alpha, self.beta, "epsilon")
        in_unit_interval(self.epsilon, "epsilon (the KS distance to detect)", UsageError, upper_closed=True)
        if self.n is not None:
            positive_int(self.n, "n", " (samples per side, or trajectories)", error=UsageError)


def with_alpha(plan: Plan | None, alpha: float | None) -> Plan:
    """``plan`` (default ``Plan()``) with ``alpha`` in place of its own when one is given (the checks' shorthand)."""
    plan = Plan() if plan is None else plan
    if not isinstance(plan, Plan):
        raise UsageError(f"plan must be a specverify.harness.plan.Plan or None, got {type(plan).__name__}")
    return plan if alpha is None else dataclasses.replace(plan, alpha=alpha)
