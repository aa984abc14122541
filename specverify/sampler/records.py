"""The speculative round's records (:mod:`specverify.sampler.kernel`): small, immutable, one per stage.

The round's state (:class:`RoundState`), its noise (:class:`RoundNoise`), what its parts return
(:class:`Draft`, :class:`Targets`, :class:`Verdict`) and what it did (:class:`RoundInfo`, folded by
:mod:`specverify.sampler.tally`; :class:`RecordedRound` with its window). Shapes: B rows, window L.
"""

from __future__ import annotations

import dataclasses

import torch

__all__ = ["Draft", "NodeInputs", "RecordedRound", "RoundInfo", "RoundNoise", "RoundState", "Targets", "Verdict"]


@dataclasses.dataclass(frozen=True)
class RoundState:
    """Per row: the committed state ``x`` at step ``k``, the sample's global id (its noise key) and the anchor:
    the latest target output ``anchor_f`` = f(anchor_x, anchor_k), valid where ``anchored``."""

    x: torch.Tensor
    k: torch.Tensor
    ids: torch.Tensor
    anchor_x: torch.Tensor
    anchor_k: torch.Tensor
    anchor_f: torch.Tensor
    anchored: torch.Tensor

    def rows(self, index: torch.Tensor) -> RoundState:
        """The state restricted to the given rows."""
        return RoundState(*(getattr(self, f.name)[index] for f in dataclasses.fields(self)))


@dataclasses.dataclass(frozen=True)
class RoundNoise:
    """A round's noise: ``z`` (B, L + 1, *shape), z[:, j] the standard normal of step k + j (the drafts use
    positions < span, the bonus step position span), and ``u`` (B, L) float64, the acceptance uniforms;
    ``extra_z`` and ``extra_u``: what a verifier beyond reflection draws besides (``specverify.sampler.verifiers``),
    tied to no step."""

    z: torch.Tensor
    u: torch.Tensor
    extra_z: torch.Tensor | None = None
    extra_u: torch.Tensor | None = None


@dataclasses.dataclass(frozen=True)
class Draft:
    """``Y`` (B, L + 1, *shape): Y[:, 0] the window start, Y[:, j + 1] the draft of step k + j, drawn as
    ``mean_q[:, j] + sigma z[:, j]`` (to rounding, for a window drafted at once); ``span`` (B,) counts the
    positions that count; ``steps`` (B, L + 1) are k + j clamped to the chain; ``fresh`` (B,) marks rows whose
    anchor is at the window start itself; ``noise`` the round's."""

    Y: torch.Tensor
    mean_q: torch.Tensor
    span: torch.Tensor
    steps: torch.Tensor
    fresh: torch.Tensor
    noise: RoundNoise

    @property
    def z(self) -> torch.Tensor:
        """The drafted positions' noise (B, L, *shape)."""
        return self.noise.z[:, :-1]


@dataclasses.dataclass(frozen=True)
class Targets:
    """Target outputs ``F`` (B, L + 1, *shape) at Y; ``need`` (B, L + 1) marks the states evaluated (or
    reused) that count; ``nonfinite`` (B, L + 1) where they hold NaN or Inf (read at the round's host read)."""

    F: torch.Tensor
    need: torch.Tensor
    nonfinite: torch.Tensor


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The target means ``mean_p`` (B, L + 1, *shape) at Y, coupled outputs ``out`` (B, L, *shape), the positions
    that count ``valid`` (B, L), |D| = |m_q - m_p| / sigma ``dist`` (B, L; meaningless where not valid), per row
    ``rejected``, the first rejected position ``first`` and the accepted count ``n_acc``; ``p_accept`` (B, L)
    float64, each position's acceptance probability given its |D| under the verifier (reflection: 2 Phi(-|D| / 2)).
    A verifier that drafts several windows (:mod:`specverify.sampler.verifiers`) returns a subclass that also
    carries the chosen window's Draft and Targets."""

    mean_p: torch.Tensor
    out: torch.Tensor
    valid: torch.Tensor
    dist: torch.Tensor
    rejected: torch.Tensor
    first: torch.Tensor
    n_acc: torch.Tensor
    p_accept: torch.Tensor


@dataclasses.dataclass(frozen=True)
class NodeInputs:
    """A multi-draft node's inputs (``verifiers.dgrs_node``, ``rank.rank_node``): the target and (shared) draft
    means ``mean_p``, ``mean_q`` (n, *event), ``sigma`` (n,), the K drafts' noise ``z`` (n, K, *event), the node's
    uniforms ``u`` (n, K) and the residual's ``u_res`` (n,); ``validate=False`` skips the sigma > 0 check (a host
    read), for callers that guarantee it."""

    mean_p: torch.Tensor
    mean_q: torch.Tensor
    sigma: torch.Tensor
    z: torch.Tensor
    u: torch.Tensor
    u_res: torch.Tensor
    validate: bool = True


@dataclasses.dataclass(frozen=True)
class RoundInfo:
    """What one round did, per row (B,): its window start ``k``, ``span`` drafted positions, ``n_acc`` accepted,
    ``rejected``, ``dist`` (B, L) the |D| of each position, ``p_accept`` (B, L) its predicted acceptance,
    ``evaluations`` target evaluations (0: not in the call), the kind of step taken without a draft:
    ``bonus`` (after a full window), ``direct`` (no draft), ``warmup`` (no step), and ``nonfinite``
    (B, L + 1): the target returned NaN or Inf at a state that counts (step k + position)."""

    k: torch.Tensor
    span: torch.Tensor
    n_acc: torch.Tensor
    rejected: torch.Tensor
    dist: torch.Tensor
    p_accept: torch.Tensor
    evaluations: torch.Tensor
    bonus: torch.Tensor
    direct: torch.Tensor
    warmup: torch.Tensor
    nonfinite: torch.Tensor


@dataclasses.dataclass(frozen=True)
class RecordedRound(RoundInfo):
    """A :class:`RoundInfo` that also carries the round's window ``Y`` (B, L + 1, *shape) (:class:`Draft`), from
    which the committed path is read (``kernel.Env.record``). A subclass, not a field of RoundInfo: the tally folds
    RoundInfo's own fields, and ``Y`` must never be kept in its pending records."""

    Y: torch.Tensor = None
