"""Verifiers: how a round's drafts are checked against the target, as replaceable parts of the round.

The equations are in ``../shared/VERIFIERS.md`` and ``theory/multidraft.md``. Every verifier keeps the round
policy (a round commits its accepted drafts plus one drawn step) and its anchor rule.

- ``reflection`` (the default): one draft per step, reflection maximal coupling at each position
  (:mod:`specverify.sampler.coupling`).
- ``block``: one draft per step, the window's prefix accepted jointly (Sun et al. 2025, Gaussian steps): the
  draws after the first position depend on the whole window, so its residual needs fresh noise.
- ``dgrs``: K i.i.d. drafts at the window's first position, each with its own chain below (K x L drafted states,
  one target call on 1 + K L rows); the first position is decided by D-GRS (the drafts tried in drafting order,
  then a residual draw), the chosen child's chain by reflection. Why K children at the first position only: a
  full tree grows as K^L rows, while the first position is the only one every round reaches (a later position
  only after every earlier one is accepted), so extra drafts there pay in every round.
- ``rank``, ``rank-max``, ``rank-uniform``: the same tree, its first position decided by rank selection
  (:mod:`specverify.sampler.rank`) with LP-optimised, max or uniform weights.

Every drafted state is a target row (``target_evaluations``); the drafts' own model calls are counted per drafted
state. ``drafts`` > 1 and ``block`` need ``GeneratorNoise`` (the default): a noise table holds one draw per step.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import torch

from specverify.errors import SamplerError
from specverify.sampler import kernel
from specverify.sampler.chains import _bcast
from specverify.sampler.coupling import acceptance_probability, coupled_step
from specverify.sampler.rank import rank_node
from specverify.sampler.records import NodeInputs
from specverify.sampler.residual import Frame, compose_state, normal_sf, residual_projection, tolerance

__all__ = ["MULTI_DRAFT", "VERIFIERS", "BlockRule", "NodeCoupling", "TreeVerdict", "block_hazard", "block_prefix",
           "check_verifier", "dgrs_coupling", "dgrs_node", "dgrs_select", "rank_coupling", "residual_state",
           "tree_parts", "verifier_parts"]

VERIFIERS = ("reflection", "block", "dgrs", "rank", "rank-max", "rank-uniform")
MULTI_DRAFT = ("dgrs", "rank", "rank-max", "rank-uniform")  # the verifiers that take drafts > 1


def residual_state(frame: Frame, log_a, log_b, z, u, projection=residual_projection) -> torch.Tensor:
    """m_q + sigma (S e + W) in ``frame``: S from (a phi(s - |D|) - b phi(s))_+ at the uniform u,
    e = (m_p - m_q) / |m_p - m_q|, W the part of ``z`` orthogonal to e. z (B, *shape); log a, log b, u (B,).
    ``projection``: the 1-D draw (a mutant replaces it)."""
    return compose_state(frame, z, projection(log_a, log_b, frame.dist.to(torch.float64), u))


def block_hazard(log_c, dist, tol: float) -> torch.Tensor:
    """log h_i for i = 0 .. L - 1: h_i = M_i / (M_i + 1 - c_i), M_i = c_i Q(t - delta') - Q(t) the mass of
    (c_i f_tg - f_dr)_+ at step i + 1 (t = delta' / 2 - log c_i / delta'); h_i = 1 where c_i = 1."""
    delta = dist.to(torch.float64)
    lc = log_c[:, :-1]
    t = delta / 2 - lc / delta.clamp_min(tol)
    mass = torch.clamp(torch.exp(lc) * normal_sf(t - delta) - normal_sf(t), min=0.0)
    mass = torch.where(delta > tol, mass, 0.0)
    return torch.where(lc == 0, 0.0, torch.log(mass) - torch.log(mass - torch.expm1(lc)))


def block_prefix(log_ratio, dist, span, u, tol: float, hazard=block_hazard):
    """Block verification's accepted prefix tau (B,) in 0 .. span, log c_tau (B,) and each position's acceptance
    given the window (B, L). ``log_ratio``, ``dist`` (B, L): log r_i and |D| at each drafted position; ``u``
    (B, L) the uniforms eta_1 .. eta_L; ``hazard``: log h_i from log c (a mutant replaces it)."""
    B, L = log_ratio.shape
    pos = torch.arange(L + 1, device=span.device)
    lr = torch.where(pos[:L] < span[:, None], log_ratio.to(torch.float64), 0.0)
    log_c = [torch.zeros(B, dtype=torch.float64, device=lr.device)]
    for j in range(L):  # c_i = min(1, c_{i-1} r_i)
        log_c.append(torch.clamp(log_c[-1] + lr[:, j], max=0.0))
    log_c = torch.stack(log_c, 1)
    log_h = torch.cat([hazard(log_c, dist, tol), log_c[:, L:]], 1)
    log_h = torch.where(pos == span[:, None], log_c, log_h)  # h_span = c_span
    log_h = torch.where(pos <= span[:, None], log_h, -torch.inf)
    log_h[:, 0] = 0.0  # h_0 = 1
    ok = torch.cat([torch.ones_like(span[:, None], dtype=torch.bool), torch.log(u) <= log_h[:, 1:]], 1)
    tau = torch.where(ok, pos, 0).amax(1)
    miss = torch.flip(torch.cumprod(torch.flip(-torch.expm1(log_h), [1]), 1), [1])  # P(tau < i | window)
    reach = 1 - miss  # P(tau >= i | window)
    p_accept = torch.where(reach[:, :L] > 0, reach[:, 1:] / reach[:, :L].clamp_min(1e-300), 0.0)
    return tau, log_c.gather(1, tau[:, None])[:, 0], p_accept


def _at(t, j):
    return kernel._gather(t, j)


@dataclasses.dataclass(frozen=True)
class BlockRule:
    """The parts of block verification a mutant replaces: ``hazard`` (see :func:`block_prefix`),
    ``residual_weight`` (log c_tau -> log a; None: log c_tau itself) and ``projection`` (see :func:`residual_state`)."""

    hazard: Callable = block_hazard
    residual_weight: Callable | None = None
    projection: Callable = residual_projection


def verify_block(env, s, d, t, *, rule: BlockRule = BlockRule()) -> kernel.Verdict:
    """Block verification of every row's window; the first position after the accepted prefix takes the
    residual draw (c_tau f_tg - f_dr)_+, with fresh noise (``noise.extra_z``, ``noise.extra_u``). ``rule``: for
    mutants (:class:`BlockRule`)."""
    L = env.L
    valid = env.pos[:L] < d.span[:, None]
    mean_p = kernel.target_means(env, d, t)
    sig = torch.where(valid, env.sig[d.steps[:, :L]], 1.0)
    step = coupled_step(mean_p[:, :L], d.mean_q, sig, d.z, batch_ndim=2, validate=False)
    tau, log_c, p_accept = block_prefix(step.log_ratio, step.dist, d.span, d.noise.u, tolerance(d.Y.dtype),
                                        rule.hazard)
    log_a = log_c if rule.residual_weight is None else rule.residual_weight(log_c)
    rejected = tau < d.span
    first = torch.clamp(tau, max=L - 1)
    zero = torch.zeros_like(log_c)
    frame = Frame(_at(d.mean_q, first), _at(mean_p, first), _at(sig, first), _at(step.dist, first))
    res = residual_state(frame, log_a, zero, d.noise.extra_z, d.noise.extra_u, rule.projection)
    here = (env.pos[:L] == first[:, None]) & rejected[:, None]
    out = torch.where(_bcast(here, step.draft), res.unsqueeze(1), step.draft)
    return kernel.Verdict(mean_p, out, valid, step.dist, rejected, first, torch.where(rejected, tau, d.span),
                          p_accept)


def block_noise(env, s) -> kernel.RoundNoise:
    """The round's noise, and a fresh normal and uniform per row for the residual."""
    n = kernel.draw_noise(env, s)
    return dataclasses.replace(n, extra_z=env.noise.fresh_normal(s.x),
                               extra_u=env.noise.fresh_uniform(s.x.shape[:1], s.x.device))


def dgrs_select(log_rho, dist, u, tol: float):
    """D-GRS over K drafts tried in drafting order. ``log_rho`` (B, K) target over draft at each draft, ``dist``
    (B,) |D|, ``u`` (B, K) float64. Returns the chosen draft (B,) (K: none, draw the residual), log lambda_K
    (B,) and the node's acceptance probability 1 - G_{K+1} (B,)."""
    B, K = log_rho.shape
    delta = dist.to(torch.float64)
    log_rho = log_rho.to(torch.float64)
    log_lam = torch.full((B,), -torch.inf, dtype=torch.float64, device=delta.device)
    g = torch.ones_like(delta)
    chosen = torch.full((B,), K, dtype=torch.long, device=delta.device)
    for k in range(K):
        above = log_rho[:, k] > log_lam
        log_excess = log_rho[:, k] + torch.log1p(-torch.exp(torch.clamp(log_lam - log_rho[:, k], max=0.0)))
        take = above & (torch.log(u[:, k]) <= log_excess - torch.log(g)) & (chosen == K)
        chosen = torch.where(take, k, chosen)
        log_lam = torch.logaddexp(log_lam, torch.log(g))
        tau = log_lam / delta.clamp_min(tol)
        g_next = normal_sf(tau - delta / 2) - torch.exp(log_lam) * normal_sf(tau + delta / 2)
        g = torch.minimum(torch.clamp(g_next, min=0.0), g)
    degenerate = delta <= tol
    chosen = torch.where(degenerate, 0, chosen)
    return chosen, log_lam, torch.where(degenerate, 1.0, 1 - g)


def dgrs_node(x: NodeInputs, *, select=dgrs_select, projection=residual_projection):
    """One D-GRS node on its inputs ``x`` (:class:`specverify.sampler.records.NodeInputs`; ``x.u``: the drafts'
    uniforms). Returns the chosen draft (n,) (K: none), the residual draw (n, *event) (its part orthogonal to e
    from the first draft), the node's acceptance probability (n,) and |D| (n,)."""
    z = x.z
    n, K = z.shape[:2]
    root = coupled_step(x.mean_p.unsqueeze(1).expand_as(z), x.mean_q.unsqueeze(1).expand_as(z),
                        x.sigma[:, None].expand(n, K), z, batch_ndim=2, validate=x.validate)
    dist = root.dist[:, 0]
    chosen, log_lam, p_accept = select(root.log_ratio, dist, x.u, tolerance(x.mean_p.dtype))
    frame = Frame(x.mean_q, x.mean_p, x.sigma, dist)
    res = residual_state(frame, torch.zeros_like(log_lam), log_lam, z[:, 0], x.u_res, projection)
    return chosen, res, p_accept, dist


@dataclasses.dataclass(frozen=True)
class NodeCoupling:
    """A multi-draft ``node`` (:func:`dgrs_node`, :func:`specverify.sampler.rank.rank_node`) as a kernel with the
    multi-draft contract ``(mean_p, means_q, sigma, z, u) -> (x, index)`` (``specverify.harness.multidraft_check``):
    couple N(mean_p, sigma^2 I) with K i.i.d. drafts means_q[:, k] + sigma z[:, k]; ``rule`` names it in errors.

    Shapes: mean_p (n, *event), means_q and z (n, K, *event) (the K draft means equal: one draft law), sigma
    (n,), u (n, K + 1) (the node's uniforms, then the residual's). Returns ``(x, index)``: x (n, *event) an exact
    draw from the target, ``index`` (n,) the accepted draft, or -1 where x is the residual draw (whose part
    orthogonal to e comes from the first draft)."""

    node: Callable
    rule: str

    def __call__(self, mean_p, means_q, sigma, z, u):
        n, K = means_q.shape[:2]
        if not torch.equal(means_q, means_q[:, :1].expand_as(means_q)):
            raise SamplerError(f"{self.rule} couples i.i.d. drafts: every draft mean of a row must be the same")
        sigma = torch.as_tensor(sigma, dtype=mean_p.dtype, device=mean_p.device)
        u = torch.as_tensor(u, dtype=torch.float64, device=mean_p.device)
        chosen, res, _, _ = self.node(NodeInputs(mean_p, means_q[:, 0], sigma, z, u[:, :K], u[:, K]))
        took = chosen < K
        drafts = means_q + sigma.view(n, 1, *[1] * (z.ndim - 2)) * z
        x = torch.where(_bcast(took, res), _at(drafts, torch.clamp(chosen, max=K - 1)), res)
        return x, torch.where(took, chosen, -1)


def dgrs_coupling(mean_p, means_q, sigma, z, u, *, select=dgrs_select):
    """D-GRS as a kernel (:class:`NodeCoupling`); ``select``: for mutants (see :func:`dgrs_select`)."""
    return NodeCoupling(functools.partial(dgrs_node, select=select), "D-GRS")(mean_p, means_q, sigma, z, u)


def rank_coupling(mean_p, means_q, sigma, z, u, *, weights: str = "lp"):
    """Rank selection as a kernel (:class:`NodeCoupling`; the node's uniforms are the acceptance's, then the
    rank's); ``weights`` one of ``rank.RANK_WEIGHTS`` (a mutant's pick: ``NodeCoupling(functools.partial(rank_node,
    pick=...), "rank selection")``)."""
    return NodeCoupling(functools.partial(rank_node, weights=weights), "rank selection")(mean_p, means_q, sigma, z, u)


@dataclasses.dataclass(frozen=True)
class TreeVerdict(kernel.Verdict):
    """A Verdict on the chosen child's window: its ``draft`` and ``targets`` (B, L + 1) are what ``commit`` reads."""

    draft: kernel.Draft = None
    targets: kernel.Targets = None


def tree_noise(env, s) -> kernel.RoundNoise:
    """The round's noise, and per row: the other K - 1 children's draft noise (B, K - 1, L, *shape) and K fresh
    uniforms (children 2 .. K, then the residual's)."""
    n = kernel.draw_noise(env, s)
    B, K = s.x.shape[0], env.drafts
    z = env.noise.fresh_normal(s.x.new_empty((B, K - 1, env.L, *s.x.shape[1:])))
    return dataclasses.replace(n, extra_z=z, extra_u=env.noise.fresh_uniform((B, K), s.x.device))


def draft_tree(env, s, noise) -> kernel.Draft:
    """K children's windows from every row (rows b * K + c): child 0 drafts with the round's noise, the others
    with ``extra_z``; every child's bonus position keeps noise its own drafts do not use."""
    K, L = env.drafts, env.L
    rep = kernel.RoundState(*(getattr(s, f.name).repeat_interleave(K, 0) for f in dataclasses.fields(s)))
    z = noise.z
    kids = torch.cat([z[:, None, :L], noise.extra_z], 1)
    z_all = torch.cat([kids, z[:, None, L:].expand(-1, K, -1, *z.shape[2:])], 2).flatten(0, 1)
    return kernel.draft(env, rep, dataclasses.replace(noise, z=z_all, u=noise.u.repeat_interleave(K, 0)))


def target_call_tree(env, s, d) -> kernel.Targets:
    """ONE target call on every row's window start and its K children's drafted states (1 + K L rows). ``F``
    (B K, L + 1) per child; ``need`` (B, 1 + K L) the rows that count; ``nonfinite`` (B, L + 1) per step."""
    B, K, L = s.x.shape[0], env.drafts, env.L
    Y = d.Y.view(B, K, L + 1, *d.Y.shape[2:])
    steps = d.steps.view(B, K, L + 1)[:, 0]
    fresh = d.fresh.view(B, K)[:, 0]
    states = torch.cat([Y[:, 0, 0], Y[:, :, 1:].flatten(0, 2)])
    ks = torch.cat([steps[:, 0], steps[:, None, 1:].expand(B, K, L).flatten()])
    F = env.chain.evaluate(states, ks, check_finite=False)
    f0 = torch.where(_bcast(fresh, s.x), s.anchor_f, F[:B])
    F = torch.cat([f0[:, None, None].expand(B, K, 1, *s.x.shape[1:]), F[B:].view(B, K, L, *s.x.shape[1:])], 2)
    span = d.span.view(B, K)[:, 0]
    need = (env.pos <= span[:, None]) & (s.k[:, None] + env.pos < env.T)
    need[:, 0] = (s.k < env.T) & ~fresh
    bad = ~torch.isfinite(F).flatten(3).all(3)  # (B, K, L + 1)
    need_tree = torch.cat([need[:, :1], need[:, None, 1:].expand(B, K, L).flatten(1)], 1)
    return kernel.Targets(F.flatten(0, 1), need_tree, need & bad.any(1))


def verify_tree(env, s, d, t, *, node=dgrs_node) -> TreeVerdict:
    """A multi-draft ``node`` at the first position over the K children (D-GRS, or rank selection
    :func:`specverify.sampler.rank.rank_node`), reflection down the chosen child's chain (a row that draws the
    residual reads the last child's window, whose later positions do not count)."""
    B, K, L = s.x.shape[0], env.drafts, env.L
    kids = lambda a: a.view(B, K, *a.shape[1:])  # noqa: E731
    mean_p = kids(kernel.target_means(env, d, t))
    Y, mq, z = kids(d.Y), kids(d.mean_q), kids(d.z)
    span, steps = d.span[::K], d.steps[::K]
    valid = env.pos[:L] < span[:, None]
    sig = torch.where(valid, env.sig[steps[:, :L]], 1.0)
    u = torch.cat([d.noise.u[::K, :1], d.noise.extra_u[:, :K - 1]], 1)
    chosen, res, p0, dist0 = node(NodeInputs(mean_p[:, 0, 0], mq[:, 0, 0], sig[:, 0], z[:, :, 0], u,
                                             d.noise.extra_u[:, K - 1], validate=False))
    c = torch.clamp(chosen, max=K - 1)
    pick = lambda a: _at(a, c)  # noqa: E731
    sel = kernel.Draft(pick(Y), pick(mq), span, steps, d.fresh[::K],
                       kernel.RoundNoise(pick(kids(d.noise.z)), d.noise.u[::K]))
    mp = pick(mean_p)
    out, acc, dist = env.parts.coupling(mp[:, :L], sel.mean_q, sig, sel.z, sel.noise.u, batch_ndim=2)
    took = chosen < K
    out[:, 0] = torch.where(_bcast(took, res), sel.Y[:, 1], res)
    acc[:, 0] = took
    dist[:, 0] = dist0
    p_accept = acceptance_probability(dist.to(torch.float64))
    p_accept[:, 0] = p0
    v = kernel.verdict(mp, (out, acc, dist), valid, span, p_accept)
    targets = kernel.Targets(pick(kids(t.F)), t.need, t.nonfinite)
    return TreeVerdict(**{f.name: getattr(v, f.name) for f in dataclasses.fields(v)}, draft=sel, targets=targets)


def commit_tree(env, s, d, t, v: TreeVerdict):
    """The default commit on the chosen child's window; the round's info counts every target row."""
    new, info = kernel.commit(env, s, v.draft, v.targets, v)
    return new, dataclasses.replace(info, evaluations=t.need.sum(1), nonfinite=t.nonfinite)


def tree_parts(node=dgrs_node) -> kernel.Parts:
    """The round's parts for K children at the first position decided by ``node``."""
    return kernel.Parts(noise=tree_noise, draft=draft_tree, target_call=target_call_tree,
                        verify=functools.partial(verify_tree, node=node), commit=commit_tree)


def check_verifier(name: str, drafts: int = 1) -> None:
    """Refuse an unknown verifier, a drafts count that is not an int >= 1, or drafts > 1 for a one-draft verifier."""
    if name not in VERIFIERS:
        raise SamplerError(f"unknown verifier {name!r}; choose one of {', '.join(VERIFIERS)}")
    if not isinstance(drafts, int) or isinstance(drafts, bool) or drafts < 1:
        raise SamplerError(f"drafts must be an int >= 1, got {drafts!r}")
    if drafts > 1 and name not in MULTI_DRAFT:
        raise SamplerError(f"the {name} verifier takes one draft per step; use one of {', '.join(MULTI_DRAFT)} for "
                           f"--drafts {drafts}")


def verifier_parts(name: str, drafts: int = 1) -> kernel.Parts:
    """The round's parts for the verifier ``name`` with ``drafts`` drafts at the window's first position."""
    check_verifier(name, drafts)
    if name == "block":
        return kernel.Parts(noise=block_noise, verify=verify_block)
    if name == "dgrs":
        return tree_parts()
    if name.startswith("rank"):
        return tree_parts(functools.partial(rank_node, weights=name.partition("-")[2] or "lp"))
    return kernel.Parts()
