"""SpecStats as a fold over the rounds' :class:`specverify.sampler.records.RoundInfo` records.

:class:`Tally` holds the per-trajectory and per-(chain step, window position) sums; everything per window
position is derived from the per-step tables (``per_step.sum(0)``), never accumulated twice. Records are
folded in groups (:meth:`Tally.fold` takes a list), so that the sampler's hot loop only keeps references.
"""

from __future__ import annotations

import torch

from specverify.sampler.records import RoundInfo

__all__ = ["Tally"]

STEP_TABLES = ("proposed", "verified", "accepted", "predicted")
SAMPLE_SUMS = ("rounds", "accepted", "verified", "predicted", "predicted_var")
COUNTS = ("rounds_total", "target_evaluations", "windows", "warmup_evaluations", "direct_steps", "bonus_steps")


class Tally:
    """Sums over every folded round: ``step[name]`` (T * L,) float64, ``sample[name]`` (n,) float64 and the
    scalar ``counts`` (0-d tensors until :meth:`totals`)."""

    def __init__(self, n: int, n_steps: int, window: int, device):
        self.T, self.L = n_steps, window
        kw = dict(dtype=torch.float64, device=device)
        self.step = {name: torch.zeros(n_steps * window, **kw) for name in STEP_TABLES}
        self.sample = {name: torch.zeros(n, **kw) for name in SAMPLE_SUMS}
        self.counts = {name: torch.zeros((), dtype=torch.long, device=device) for name in COUNTS}

    def fold(self, infos: list[RoundInfo], ids: torch.Tensor) -> None:
        """Add rounds that all ran on the rows ``ids`` (global sample ids, shape (B,))."""
        if not infos:
            return
        f = {name: torch.stack([getattr(i, name) for i in infos]) for name in RoundInfo.__dataclass_fields__}
        L = self.L
        pos = torch.arange(L, device=ids.device)
        proposed = pos < f["span"][..., None]  # (R, B, L)
        verified = pos < (f["n_acc"] + f["rejected"])[..., None]
        accepted = pos < f["n_acc"][..., None]
        predicted = torch.where(verified, f["p_accept"], 0.0)
        cell = torch.clamp(f["k"][..., None] + pos, max=self.T - 1) * L + pos
        for name, w in (("proposed", proposed), ("verified", verified), ("accepted", accepted),
                        ("predicted", predicted)):
            self.step[name].index_add_(0, cell.flatten(), w.flatten().to(torch.float64))
        called = f["evaluations"] > 0
        for name, w in (("rounds", called), ("accepted", accepted.sum(2)), ("verified", verified.sum(2)),
                        ("predicted", predicted.sum(2)), ("predicted_var", (predicted * (1 - predicted)).sum(2))):
            self.sample[name].index_add_(0, ids, w.sum(0).to(torch.float64))
        c = self.counts
        c["rounds_total"] += called.any(1).sum()
        c["target_evaluations"] += f["evaluations"].sum()
        c["windows"] += (f["span"] > 0).sum()
        c["warmup_evaluations"] += f["warmup"].sum()
        c["direct_steps"] += f["direct"].sum()
        c["bonus_steps"] += f["bonus"].sum()

    def per_step(self, name: str) -> torch.Tensor:
        """(T, L) table: per chain step (row) and window position (column)."""
        return self.step[name].view(self.T, self.L)

    def per_position(self, name: str) -> torch.Tensor:
        """(L,) totals, derived from the per-step table."""
        return self.per_step(name).sum(0)

    def totals(self) -> dict:
        return {name: int(v) for name, v in self.counts.items()}
