"""The stress family: built-in problem configurations on which any frozen-type drafter is poor.

A third party's drafter is not ours to degrade, but the suite owns the problems: on these targets a drafter
that freezes the target's output at the window start (frozen drift, frozen denoiser) is rejected often, so a
bug on the rejection path (the acceptance rule, the rejection output, the step after it, the bonus step) moves
the law by enough to show. Data only: each entry names a problem and its options (keywords of
``specverify.bridge.make_setup``); the door builds them. ``specverify check --stress`` runs a chain-level
candidate on the problem given and on each of these, alpha split by :func:`stress_split`.

Per-step acceptance of our frozen drafters (window 4, n = 2000, seed 0; ``specverify accept --drafters
frozen-denoiser,frozen-drift --windows 4 --policies accepted+1 --n 2000`` with the options below), against
0.90 / 0.94 on the default gmm d=2, 100 steps:

- coarse-gmm (gmm d=2, 10 steps): 0.37 / 0.54;
- coarse-cosine-gmm (gmm d=2, 10 steps, cosine schedule): 0.55 / 0.63;
- stiff-langevin (langevin-gaussian d=2, 100 steps, h = 0.4, near the stability limit 2 lambda_min = 0.449):
  0.18 / 0.18 (the two drafters coincide on a Langevin chain).
"""

from __future__ import annotations

import dataclasses

from specverify.harness.ledger import FamilySplit, split_family

__all__ = ["STRESS", "StressConfig", "stress_split"]


@dataclasses.dataclass(frozen=True)
class StressConfig:
    """A named problem configuration: ``problem`` and the ``make_setup`` keywords ``options``; ``why`` in words."""

    name: str
    problem: str
    options: dict
    why: str

    def describe(self) -> str:
        return f"{self.problem} " + " ".join(f"{k}={v}" for k, v in self.options.items())


STRESS = (
    StressConfig("coarse-gmm", "gmm", {"dim": 2, "steps": 10},
                 "a coarse diffusion chain: large per-step moves, the frozen output goes stale within a window"),
    StressConfig("coarse-cosine-gmm", "gmm", {"dim": 2, "steps": 10, "schedule": "cosine"},
                 "a coarse chain on the cosine schedule: the mixture's modes form within few steps"),
    StressConfig("stiff-langevin", "langevin-gaussian", {"dim": 2, "steps": 100, "step_size": 0.4},
                 "unadjusted Langevin near its stability limit (h < 2 lambda_min = 0.449): the drift flips sign "
                 "each step along the stiff direction"),
)


def stress_split(alpha: float) -> FamilySplit:
    """The stress family's split (``ledger.split_family``, Bonferroni): alpha / 2 for the problem given ("main"),
    alpha / 2 shared equally by the :data:`STRESS` configurations; the verdict's false-alarm rate is <= alpha."""
    return split_family(alpha, [c.name for c in STRESS], main="main")
