"""The alpha ledger: how a check split its false-alarm budget and sized n, as one frozen record.

Every check spends a family-wise alpha: Bonferroni over blocks (alpha / blocks each), a correction within each
block, and n sized so that one test at its own level detects the declared smallest effect with power 1 - beta.
:class:`AlphaLedger` is that split, built once by the check's own plan (``suite.terminal_plan``,
``trajectory_check.transition_plan``) before any sampling, completed with the n used and the smallest effect it
detects, validated once (``__post_init__``) and carried in the report (``Report.ledger``: JSON and Markdown).
A family of checks (``check --stress``, ``specverify mutants``) shares alpha by :func:`split_family`.

Contract: the blocks' alphas add up to at most alpha, one test's level is at most its block's; the record reads
as its JSON mapping (``ledger["blocks"]``), and a transition-level ledger's JSON keeps the keys it had before
the record existed (its kind, effect unit and screen share are implied by the check).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from types import MappingProxyType

from specverify._validate import in_unit_interval, is_positive_int, real
from specverify.errors import UsageError

__all__ = ["KINDS", "AlphaLedger", "Block", "FamilySplit", "split_family", "validate_levels"]

KINDS = {  # the check's kind -> (its declared effect's name, the effect's unit)
    "terminal": ("epsilon", "KS distance"),
    "transition": ("delta", "per-step shift (innovation sd)"),
}
_TRANSITION_KEYS = ("alpha", "beta", "delta", "correction", "blocks", "projection_test_alpha", "noisy_steps", "lags",
                    "n_needed", "n", "smallest_detectable_shift", "trajectory_dtype", "mean_from")
_ROUNDING = 1e-12  # relative slack of a float sum of the blocks' alphas


def validate_levels(alpha, beta, effect: str) -> None:
    """The family-wise alpha and the miss rate beta at the declared ``effect`` (its name), each in (0, 1)."""
    in_unit_interval(alpha, "alpha (the family-wise false-alarm rate)", UsageError)
    in_unit_interval(beta, f"beta (the miss rate at {effect})", UsageError)


@dataclasses.dataclass(frozen=True)
class Block:
    """One Bonferroni block: its number of tests and its share of alpha."""

    tests: int
    alpha: float

    def to_dict(self) -> dict:
        return {"tests": self.tests, "alpha": self.alpha}


@dataclasses.dataclass(frozen=True)
class AlphaLedger(Mapping):
    """How a check split alpha and sized n.

    ``kind``: "terminal" or "transition" (:data:`KINDS`); ``blocks``: name -> :class:`Block`, in the family's
    order; ``test_alpha``: the level of one test (the one that sizes n: a distribution test, a projection
    test); ``screen_share``: the share of the distribution block that minP's exact KS screen spends (None: no
    screen); ``n_needed`` / ``n``: the n the plan asks for and the n used (None before sampling); ``effect``: the
    declared smallest effect (epsilon, delta), ``detectable``: the smallest one detected at n with power
    1 - beta (None before sampling), both in ``effect_unit``; ``extra``: the check's own fields.
    """

    kind: str
    alpha: float
    beta: float
    blocks: Mapping[str, Block]
    correction: str
    test_alpha: float
    n_needed: int
    effect: float
    screen_share: float | None = None
    n: int | None = None
    detectable: float | None = None
    extra: Mapping = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise UsageError(f"an alpha ledger's kind is one of {sorted(KINDS)}, got {self.kind!r}")
        effect = KINDS[self.kind][0]
        validate_levels(self.alpha, self.beta, effect)
        in_unit_interval(self.effect, f"{effect} (the smallest {self.effect_unit} to detect)", UsageError,
                         upper_closed=True)
        if not self.blocks:
            raise UsageError("an alpha ledger needs at least one block")
        for name, b in self.blocks.items():
            if not is_positive_int(b.tests) or not 0 < real(b.alpha, f"block {name!r}'s alpha", UsageError):
                raise UsageError(f"block {name!r} needs a positive number of tests and a positive alpha, got {b}")
        spent = sum(b.alpha for b in self.blocks.values())
        if spent > self.alpha * (1 + _ROUNDING):
            raise UsageError(f"the blocks spend alpha {spent:.6g}, more than the family's {self.alpha}: split "
                             "alpha so that the blocks' shares add up to at most alpha")
        if not 0 < self.test_alpha <= max(b.alpha for b in self.blocks.values()):
            raise UsageError(f"one test's alpha {self.test_alpha!r} must be in (0, its block's alpha]")
        if self.screen_share is not None:
            in_unit_interval(self.screen_share, "screen_share (the exact KS screen's share)", UsageError)
        for name in ("n_needed", "n"):
            v = getattr(self, name)
            if v is not None and not is_positive_int(v):
                raise UsageError(f"an alpha ledger's {name} must be a positive int, got {v!r}")
        object.__setattr__(self, "blocks", MappingProxyType(dict(self.blocks)))
        object.__setattr__(self, "extra", MappingProxyType(dict(self.extra)))

    @property
    def effect_unit(self) -> str:
        return KINDS[self.kind][1]

    def used(self, n: int, detectable: float, **extra) -> AlphaLedger:
        """This plan completed by the run: the n used, the smallest effect it detects and more check fields."""
        return dataclasses.replace(self, n=int(n), detectable=float(detectable), extra={**self.extra, **extra})

    def to_dict(self) -> dict:
        """The JSON record (``Report.to_dict()["ledger"]``)."""
        blocks = {name: b.to_dict() for name, b in self.blocks.items()}
        if self.kind == "transition":  # the keys this ledger had as a dict, in their order
            flat = {"alpha": self.alpha, "beta": self.beta, "delta": self.effect, "correction": self.correction,
                    "blocks": blocks, "projection_test_alpha": self.test_alpha, "n_needed": self.n_needed,
                    "n": self.n, "smallest_detectable_shift": self.detectable, **self.extra}
            return {k: flat[k] for k in _TRANSITION_KEYS if k in flat and not (k in ("n", "smallest_detectable_shift")
                                                                              and flat[k] is None)}
        return {"kind": self.kind, "alpha": self.alpha, "beta": self.beta, "correction": self.correction,
                "blocks": blocks, "test_alpha": self.test_alpha, "screen_share": self.screen_share,
                "n_needed": self.n_needed, "n": self.n, "effect": self.effect, "detectable_effect": self.detectable,
                "effect_unit": self.effect_unit, **self.extra}

    def __getitem__(self, key):
        return self.to_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.to_dict())

    def __len__(self) -> int:
        return len(self.to_dict())

    def markdown(self) -> list[str]:
        """Markdown lines: how alpha was split and n sized, then the blocks' table."""
        table = ["", "| block | tests | alpha |", "|---|---|---|"]
        table += [f"| {name} | {b.tests} | {b.alpha:.4g} |" for name, b in self.blocks.items()]
        x = self.extra
        if self.kind == "transition":
            return ["", "## Alpha ledger and sizing", "",
                    f"- {self.n} trajectories ({self.n_needed} needed) x {x['noisy_steps']} noisy steps; "
                    f"trajectories' dtype {x['trajectory_dtype']}; mean from {x['mean_from']}",
                    f"- {self.correction}; one projection test at alpha {self.test_alpha:.3g}; smallest detectable "
                    f"per-step shift {self.detectable:.4f} sd (declared {self.effect}, power {1 - self.beta:.3g}); "
                    f"lags 1 .. {x['lags']}", *table]
        screen = "" if self.screen_share is None else f" (minP; {self.screen_share:g} of the block on the KS screen)"
        sized = "" if self.n is None else (f"; n = {self.n} ({self.n_needed} needed) detects a {self.effect_unit} "
                                           f">= {self.detectable:.4f} (declared {self.effect})")
        return ["", "## Alpha ledger", "",
                f"- {self.correction}; one distribution test at alpha {self.test_alpha:.3g}{screen}, power "
                f"{1 - self.beta:.3g}{sized}", *table]


@dataclasses.dataclass(frozen=True)
class FamilySplit:
    """How a family of checks shares alpha (Bonferroni): each member's alpha, adding up to at most alpha."""

    alpha: float
    members: Mapping[str, float]

    def __getitem__(self, name: str) -> float:
        return self.members[name]

    def to_dict(self) -> dict:
        return {"alpha": self.alpha, "correction": "Bonferroni over the checks", "checks": dict(self.members)}


def split_family(alpha: float, members: Sequence[str], main: str | None = None) -> FamilySplit:
    """Bonferroni over a family of checks: ``main`` (if given) gets alpha / 2 and the ``members`` share the other
    half equally; without one, the members share alpha equally. The family's false-alarm rate is <= alpha."""
    in_unit_interval(alpha, "alpha (the family-wise false-alarm rate)", UsageError)
    m = len(members)
    if m < 1:
        raise UsageError(f"the family needs at least one configuration, got {m}")
    each = alpha / (2 * m) if main is not None else alpha / m
    shares = ({main: alpha / 2} if main is not None else {}) | {name: each for name in members}
    return FamilySplit(alpha, MappingProxyType(shares))
