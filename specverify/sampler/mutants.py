"""Known-broken speculative samplers: negative controls that prove a check can catch real bugs.

Each mutant is the reference speculative sampler with one part of its round replaced by a broken one
(``SampleOptions(parts=...)``, see :class:`specverify.sampler.kernel.Parts`; :func:`mutant_options` builds them):
coupling-level bugs replace the coupling, sampler-level bugs replace ``draft``, ``verify`` or ``commit``. None of
them is exact; some only show when the rejection path is exercised (drafters with acceptance well below 1), which
is why the harness also runs a degraded "stress" drafter.
"""

from __future__ import annotations

import dataclasses
import functools

import torch

from specverify.errors import SamplerError
from specverify.sampler import kernel, rank, verifiers
from specverify.sampler.coupling import accept, coupled_step, select
from specverify.sampler.kernel import Parts
from specverify.sampler.options import SampleOptions
from specverify.sampler.residual import residual_projection

__all__ = ["MUTANTS", "Mutant", "mutant_options"]


def _rule(log_ratio_fn, rejected_fn):
    """:func:`specverify.sampler.coupling.couple` with two parts replaceable: it accepts iff
    log u <= log_ratio_fn(log_ratio, dist) and outputs rejected_fn(...) on rejection."""

    def coupling(mean_p, mean_q, sigma, z, u, *, batch_ndim=1):
        step = coupled_step(mean_p, mean_q, sigma, z, batch_ndim=batch_ndim, validate=False)
        acc = accept(u, log_ratio_fn(step.log_ratio, step.dist))
        rej = rejected_fn(mean_p=mean_p, mean_q=mean_q, draft=step.draft, reflected=step.reflected, s=step.scale,
                          z=z, u=u)
        return select(acc, step.draft, rej), acc, step.dist

    return coupling


def _correct_ratio(log_ratio, dist):
    return log_ratio


def _reflected(**kw):
    return kw["reflected"]


def _fresh_target_draw(**kw):
    # fresh noise, seeded from the run's own uniforms so that the mutant stays reproducible for a seed
    seed = int((kw["u"].to(torch.float64).sum() * 2**40).item()) % 2**62
    z = torch.randn(kw["z"].shape, generator=torch.Generator().manual_seed(seed), dtype=kw["z"].dtype)
    return kw["mean_p"] + kw["s"] * z.to(kw["z"].device)


def _first_noise(env, s):
    """Every drafted position gets the first position's z (the bonus step keeps its own)."""
    n = kernel.draw_noise(env, s)
    z = torch.cat([n.z[:, :1].expand_as(n.z[:, :-1]), n.z[:, -1:]], 1)
    return dataclasses.replace(n, z=z)


def _verify_sigma_shift(env, s, d, t):
    sig = env.sig
    nxt = torch.cat([sig[1:], sig[-1:]])
    return kernel.verify(dataclasses.replace(env, sig=torch.where(nxt > 0, nxt, sig)), s, d, t)


def _verify_stale_target(env, s, d, t):
    v = kernel.verify(env, s, d, dataclasses.replace(t, F=torch.cat([t.F[:, :1], t.F[:, :-1]], 1)))
    return dataclasses.replace(v, mean_p=kernel.target_means(env, d, t))  # steps without a draft stay right


def _commit_whole_window(env, s, d, t, v):
    """After a rejection, commit the coupled output at the window's last position (the later drafts kept)."""
    new, info = kernel.commit(env, s, d, t, v)
    last = torch.clamp(d.span - 1, min=0)
    rej = v.rejected
    r = rej.reshape(rej.shape + (1,) * (s.x.ndim - 1))
    x = torch.where(r, kernel._gather(v.out, last), new.x)
    new = kernel.RoundState(x, torch.where(rej, s.k + d.span, new.k), s.ids,
                            torch.where(r, kernel._gather(d.Y, last), new.anchor_x),
                            torch.where(rej, s.k + last, new.anchor_k),
                            torch.where(r, kernel._gather(t.F, last), new.anchor_f),
                            new.anchored)  # the policy's anchor rule: a rejection re-anchors under accepted+1 only
    return new, info


def _hazard_c(log_c, dist, tol):
    """h_i = c_i: the token-level hazard in place of M_i / (M_i + 1 - c_i)."""
    return log_c[:, :-1]


def _sorted_select(log_rho, dist, u, tol):
    """D-GRS over the drafts sorted by their ratio, largest first, instead of in drafting order."""
    K = log_rho.shape[1]
    order = torch.argsort(log_rho, 1, descending=True)
    chosen, log_lam, p = verifiers.dgrs_select(log_rho.gather(1, order), dist, u, tol)
    picked = order.gather(1, torch.clamp(chosen, max=K - 1)[:, None])[:, 0]
    return torch.where(chosen < K, picked, K), log_lam, p


def _block(**kw):
    verify = functools.partial(verifiers.verify_block, rule=verifiers.BlockRule(**kw))
    return dataclasses.replace(verifiers.verifier_parts("block"), verify=verify)


def _tree(**kw):
    return verifiers.tree_parts(functools.partial(verifiers.dgrs_node, **kw))


def _unsorted_pick(proj, dist, log_lam, u):
    """Rank selection that takes the r-th draft in drafting order instead of the r-th smallest projection."""
    return rank.rank_index(log_lam, u)


def _realised_pick(proj, dist, log_lam, u):
    """Rank selection that picks the draft with the largest f / g in the realised list (weights read from it)."""
    return rank.log_f_over_g(proj, dist[:, None], log_lam).argmax(1)


def _ranked(pick):
    return verifiers.tree_parts(functools.partial(rank.rank_node, pick=pick))


_BRACKET = functools.partial(residual_projection, span=1.0)  # a bracket [t, t + 1]: the tail above it is cut


@dataclasses.dataclass(frozen=True)
class Mutant:
    name: str
    description: str
    parts: Parts
    level: str  # "coupling" or "sampler"
    verifier: str = "reflection"  # the verifier the mutant breaks (specverify.sampler.verifiers)
    drafts: int = 1  # its drafts per node unless the caller asks for more


_C = "coupling"
_S = "sampler"
MUTANTS = {m.name: m for m in [
    Mutant("no-reflection", "keeps the draft on rejection",
           Parts(coupling=_rule(_correct_ratio, lambda **kw: kw["draft"])), _C),
    Mutant("naive-resample", "on rejection draws a fresh sample from the target instead of the residual",
           Parts(coupling=_rule(_correct_ratio, _fresh_target_draw)), _C),
    Mutant("reflect-wrong-mean", "reflects about the draft mean m_q instead of the target mean m_p",
           Parts(coupling=_rule(_correct_ratio, lambda **kw: kw["mean_q"] + kw["reflected"] - kw["mean_p"])), _C),
    Mutant("inverted-ratio", "accepts with min(1, q/p) instead of min(1, p/q)",
           Parts(coupling=_rule(lambda lr, d: -lr, _reflected)), _C),
    Mutant("tempered-ratio", "accepts with min(1, (p/q)^0.5): a relaxed, more permissive ratio",
           Parts(coupling=_rule(lambda lr, d: 0.5 * lr, _reflected)), _C),
    Mutant("dropped-quadratic", "log ratio -<z, D> without the -|D|^2 / 2 term",
           Parts(coupling=_rule(lambda lr, d: lr + 0.5 * d**2, _reflected)), _C),
    Mutant("continue-after-reject", "keeps the window's later drafts after a rejection",
           Parts(commit=_commit_whole_window), _S),
    Mutant("sigma-wrong-step", "verifies step k with the noise scale of step k + 1",
           Parts(verify=_verify_sigma_shift), _S),
    Mutant("noise-reused", "reuses the first drafted step's noise for the whole window",
           Parts(noise=_first_noise), _S),
    Mutant("stale-target", "verifies drafted step j with the target output at the previous drafted state",
           Parts(verify=_verify_stale_target), _S),
    Mutant("block-hazard-c", "block verification with h_i = c_i instead of M_i / (M_i + 1 - c_i)",
           _block(hazard=_hazard_c), _S, "block"),
    Mutant("block-token-residual", "block verification's residual (f_tg - f_dr)_+ instead of (c_tau f_tg - f_dr)_+",
           _block(residual_weight=torch.zeros_like), _S, "block"),
    Mutant("block-bracket", "block verification's residual bisection brackets [t, t + 1]: the tail above t + 1 is cut",
           _block(projection=_BRACKET), _S, "block"),
    Mutant("dgrs-sorted", "D-GRS tries the drafts largest ratio first instead of in drafting order",
           _tree(select=_sorted_select), _S, "dgrs", 4),
    Mutant("dgrs-bracket", "D-GRS's residual bisection brackets [t, t + 1]: the tail above t + 1 is cut",
           _tree(projection=_BRACKET), _S, "dgrs", 4),
    Mutant("rank-unsorted", "rank selection takes the r-th draft in drafting order, not the r-th smallest projection",
           _ranked(_unsorted_pick), _S, "rank", 4),
    Mutant("rank-realised", "rank selection picks the draft with the largest f / g in the realised list",
           _ranked(_realised_pick), _S, "rank", 4),
]}


def mutant_options(name: str, options: SampleOptions | None = None) -> SampleOptions:
    """``options`` (default ``SampleOptions()``) with the named mutant's parts, its verifier, and its drafts per
    node unless ``options`` asks for more: ``speculative_sample(chain, drafter, n, window=..., seed=...,
    options=mutant_options(name))`` runs the mutant (with ``path=True`` in ``options``, its committed path,
    recorded by the same rule)."""
    if name not in MUTANTS:
        raise SamplerError(f"unknown mutant {name!r}; choose one of {', '.join(MUTANTS)}")
    m, o = MUTANTS[name], options or SampleOptions()
    return dataclasses.replace(o, parts=m.parts, verifier=m.verifier, drafts=max(o.drafts, m.drafts))

