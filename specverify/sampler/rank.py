"""Rank-selection list coupling (PAWS; the RASS rule, arXiv 2610.02251) at one node with K i.i.d. drafts.

Write each draft as m_dr + s (S_k e + W_k) (:mod:`specverify.sampler.residual`): S_k ~ N(0, 1). The rule sorts the
projections and picks rank r with probability lambda_r, a function of (|D|, K) only (never of the realised list),
so the selected projection has density g(s) = phi(s) b(Phi(s)), b(u) = sum_r lambda_r Beta_{r, K - r + 1}(u). It
accepts the selected draft with probability min(1, f / g), f(s) = phi(s - |D|) the target's; otherwise it draws S
from (f - g)_+ / (1 - A), A = int min(f, g), and takes W from the first draft (independent of every projection).

Weights (``RANK_WEIGHTS``): ``lp`` maximises A by a grid LP (scipy's HiGHS) at |D| rounded to the grid
2^(j / KEY_STEPS), cached by (j, K); ``max`` takes the largest projection; ``uniform`` gives g = phi (one draft's
token-level rule). The residual is an inverse CDF: f - g changes sign where log f - log g = 0, found on GRID
points over [-REACH, |D| + REACH] (the law's mass outside is below 1e-23) and refined by bisection; its mass over
an interval is closed form, F(s) = Phi(s - |D|) and G(s) = sum_j pmf_j(s) Lambda_j with pmf the Binomial(K,
Phi(s)) law and Lambda_j = lambda_1 + .. + lambda_j (the selected rank is <= j).
"""

from __future__ import annotations

import functools
import math

import torch

from specverify.errors import SamplerError
from specverify.sampler.coupling import _scale
from specverify.sampler.records import NodeInputs
from specverify.sampler.residual import Frame, compose_state, normal_sf, tolerance

__all__ = ["GRID", "KEY_STEPS", "RANK_WEIGHTS", "REACH", "lp_weights", "rank_index", "rank_node", "rank_pick",
           "rank_weights", "residual_mass"]

RANK_WEIGHTS = ("lp", "max", "uniform")
KEY_STEPS = 64  # the LP weights are those at |D| rounded to 2^(j / 64): a relative step of 1.1%
LP_POINTS, LP_REACH = 241, 8.0  # the LP's grid: 241 points on [-8, |D| + 8], trapezoid weights
GRID, REACH = 128, 10.0  # the residual's sign-change grid
ROOT_HALVINGS, GOLDEN, REFINE = 32, 40, 56  # halvings of a root's cell, golden-section steps, halvings of the draw

_log_ndtr = torch.special.log_ndtr


def weight_key(dist: torch.Tensor) -> torch.Tensor:
    """j = round(KEY_STEPS log2 |D|): the LP weights of a row are those at |D| = 2^(j / KEY_STEPS)."""
    return torch.round(KEY_STEPS * torch.log2(dist.to(torch.float64).clamp_min(1e-300))).long()


def log_order_density(s: torch.Tensor, log_lam: torch.Tensor) -> torch.Tensor:
    """log b(Phi(s)) = log g(s) - log phi(s); s (B, ...), log_lam (B, K)."""
    K = log_lam.shape[1]
    r = torch.arange(K, dtype=s.dtype, device=s.device)  # Beta_{r+1, K-r}(u) = K C(K-1, r) u^r (1-u)^(K-1-r)
    c = math.log(K) + math.lgamma(K) - torch.lgamma(r + 1) - torch.lgamma(K - r)
    lam = log_lam.view(log_lam.shape[0], *[1] * (s.ndim - 1), K)
    terms = lam + c + r * _log_ndtr(s)[..., None] + (K - 1 - r) * _log_ndtr(-s)[..., None]
    return torch.logsumexp(terms, -1)


def log_f_over_g(s, delta, log_lam) -> torch.Tensor:
    """log f(s) - log g(s) = |D| s - |D|^2 / 2 - log b(Phi(s)); delta broadcasts against s."""
    return delta * s - delta**2 / 2 - log_order_density(s, log_lam)


@functools.cache
def lp_weights(key: int, K: int) -> tuple:
    """The rank weights maximising A = int min(f, g) on the LP grid at |D| = 2^(key / KEY_STEPS)."""
    import numpy as np
    from scipy.optimize import linprog

    if K == 1:
        return (1.0,)
    delta = 2.0 ** (key / KEY_STEPS)
    s = torch.linspace(-LP_REACH, delta + LP_REACH, LP_POINTS, dtype=torch.float64)
    w = np.full(LP_POINTS, float(s[1] - s[0]))
    w[[0, -1]] /= 2
    f = torch.exp(-(s - delta) ** 2 / 2) / math.sqrt(2 * math.pi)
    eye = torch.eye(K, dtype=torch.float64)
    g = torch.stack([torch.exp(log_order_density(s[None], torch.log(eye[r])[None])[0] - s**2 / 2)
                     for r in range(K)], 1) / math.sqrt(2 * math.pi)
    a_ub = np.hstack([-g.numpy(), np.eye(LP_POINTS)])  # m_j <= sum_r lambda_r g_r(s_j)
    res = linprog(np.concatenate([np.zeros(K), -w]), A_ub=a_ub, b_ub=np.zeros(LP_POINTS),
                  A_eq=np.concatenate([np.ones(K), np.zeros(LP_POINTS)])[None], b_eq=[1.0],
                  bounds=[(0, None)] * K + [(0, float(v)) for v in f], method="highs")
    if not res.success:
        raise SamplerError(f"the rank weights' LP failed at |D| = {delta:.4g}, K = {K}: {res.message}")
    lam = np.clip(res.x[:K], 0.0, None)
    return tuple(float(v) for v in lam / lam.sum())


def rank_weights(dist: torch.Tensor, K: int, kind: str = "lp") -> torch.Tensor:
    """lambda (B, K) float64 for each row's |D| (B,): ``kind`` one of RANK_WEIGHTS."""
    if kind == "uniform":
        return torch.full((dist.shape[0], K), 1.0 / K, dtype=torch.float64, device=dist.device)
    if kind == "max":
        return torch.nn.functional.one_hot(torch.full_like(dist, K - 1, dtype=torch.long), K).to(torch.float64)
    if kind != "lp":
        raise SamplerError(f"unknown rank weights {kind!r}; choose one of {', '.join(RANK_WEIGHTS)}")
    keys = weight_key(dist)
    table = {j: lp_weights(j, K) for j in keys.unique().tolist()}
    return torch.tensor([table[j] for j in keys.tolist()], dtype=torch.float64, device=dist.device).view(-1, K)


def _binomial_pmf(s, K):
    """P(Binomial(K, Phi(s)) = j) for j = 0 .. K, on a new last axis, in log space (exact in both tails)."""
    j = torch.arange(K + 1, dtype=s.dtype, device=s.device)
    log_c = math.lgamma(K + 1) - torch.lgamma(j + 1) - torch.lgamma(K - j + 1)
    return torch.exp(log_c + j * _log_ndtr(s)[..., None] + (K - j) * _log_ndtr(-s)[..., None])


def _excess(s, delta, cum):
    """The mass of f - g below s, F(s) - G(s), and above s, (1 - F(s)) - (1 - G(s)); cum (B, 1, K + 1) =
    Lambda_0 .. Lambda_K (G(s) = sum_j pmf_j(s) Lambda_j)."""
    pmf = _binomial_pmf(s, cum.shape[-1] - 1)
    return torch.special.ndtr(s - delta) - (pmf * cum).sum(-1), normal_sf(s - delta) - (pmf * (1 - cum)).sum(-1)


def _cumulative(s, delta, cum, at_mid=None):
    """C(s) = int (f - g) below s, up to a constant: below |D| / 2 from the CDFs, above it from the tails (so no
    difference of two numbers near 1), joined at |D| / 2; ``at_mid``: :func:`_excess` at |D| / 2, if known."""
    below_mid, above_mid = _excess(delta / 2, delta, cum) if at_mid is None else at_mid
    below, above = _excess(s, delta, cum)
    return torch.where(s <= delta / 2, below - above_mid, below_mid - above)


def _first(mask, m):
    """The first ``m`` True columns of each row of ``mask`` (B, N) (N where fewer), ascending."""
    cols = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    return torch.where(mask, cols, mask.shape[1]).sort(1).values[:, :m]


def _bisect_root(a, b, delta, log_lam):
    """The sign change of log f - log g in [a, b] (signs differ at the ends), by ROOT_HALVINGS halvings."""
    left = log_f_over_g(a, delta, log_lam) > 0
    for _ in range(ROOT_HALVINGS):  # a root's error moves the pieces' masses only at second order (f = g there)
        mid = (a + b) / 2
        same = (log_f_over_g(mid, delta, log_lam) > 0) == left
        a, b = torch.where(same, mid, a), torch.where(same, b, mid)
    return (a + b) / 2


def _golden_min(a, b, fn):
    """argmin of ``fn`` on [a, b] (unimodal), by GOLDEN golden-section steps, one evaluation each."""
    g = (math.sqrt(5) - 1) / 2
    x1, x2 = b - g * (b - a), a + g * (b - a)
    f1, f2 = fn(x1), fn(x2)
    for _ in range(GOLDEN):
        lower = f1 < f2  # the minimum is in [a, x2]
        a, b = torch.where(lower, a, x1), torch.where(lower, x2, b)
        p = torch.where(lower, b - g * (b - a), a + g * (b - a))
        fp = fn(p)
        x1, f1, x2, f2 = (torch.where(lower, p, x2), torch.where(lower, fp, f2),
                          torch.where(lower, x1, p), torch.where(lower, f1, fp))
    return (a + b) / 2


def _pockets(grid, h, delta, log_lam):
    """Pairs of sign changes inside two grid cells that the grid's signs miss: at a grid point where |h| has a
    local minimum with one sign around it, the extremum of h on its two cells is found, and if its sign is the
    other one, there is a root on each side of it. Returns the brackets (lo, hi) (B, 2 m) of those roots, and
    whether each is one."""
    inner = (h[:, 1:-1].sign() == h[:, :-2].sign()) & (h[:, 1:-1].sign() == h[:, 2:].sign())
    dip = inner & (h[:, 1:-1].abs() < h[:, :-2].abs()) & (h[:, 1:-1].abs() <= h[:, 2:].abs())
    m = int(dip.sum(1).max()) if dip.numel() else 0
    j = _first(dip, m)
    found = j < dip.shape[1]
    j = j.clamp(max=max(dip.shape[1] - 1, 0))
    lo, hi = grid.gather(1, j), grid.gather(1, j + 2)
    sign = h.gather(1, j + 1).sign()  # minimise sign * h
    ext = _golden_min(lo, hi, lambda x: sign * log_f_over_g(x, delta, log_lam))
    flips = (found & (sign * log_f_over_g(ext, delta, log_lam) < 0)).repeat(1, 2)
    return torch.cat([lo, ext], 1), torch.cat([ext, hi], 1), flips


def _crossings(delta, log_lam):
    """The sign changes of log f - log g (B, m) ascending (padded with the grid's end), the grid's ends (B, 1) and
    whether f > g at the left end (B, 1). A change between grid points, and a pair of changes inside two cells
    (a pocket the grid's signs miss, :func:`_pockets`), are refined by one batch of bisections."""
    B = delta.shape[0]
    lo = torch.full_like(delta, -REACH)
    hi = delta + REACH
    grid = lo + (hi - lo) * torch.linspace(0, 1, GRID, dtype=delta.dtype, device=delta.device)
    h = log_f_over_g(grid, delta, log_lam)
    pos = h > 0
    change = pos[:, 1:] != pos[:, :-1]
    idx = _first(change, max(int(change.sum(1).max()), 1) if B else 1)
    found = idx < GRID - 1
    idx = idx.clamp(max=GRID - 2)
    p_lo, p_hi, p_found = _pockets(grid, h, delta, log_lam)
    a = torch.cat([grid.gather(1, idx), p_lo], 1)
    b = torch.cat([grid.gather(1, idx + 1), p_hi], 1)
    roots = torch.where(torch.cat([found, p_found], 1), _bisect_root(a, b, delta, log_lam), torch.inf)
    return torch.minimum(roots.sort(1).values, hi), lo, hi, pos[:, :1]


def _segments(delta, lam):
    """The pieces [a_i, b_i] (B, m + 1) between sign changes, the mass of (f - g)_+ on each, and cum (B, 1, K + 1)."""
    delta = delta[:, None]
    cross, lo, hi, first = _crossings(delta, torch.log(lam))
    points = torch.cat([lo, cross, hi], 1)
    a, b = points[:, :-1], points[:, 1:]
    odd = torch.arange(a.shape[1], device=a.device) % 2 == 1
    positive = first ^ odd
    cum = torch.cat([torch.zeros_like(lam[:, :1]), lam.cumsum(1)], 1)[:, None]
    mass = _cumulative(b, delta, cum) - _cumulative(a, delta, cum)
    return a, b, torch.where(positive, mass.clamp_min(0.0), 0.0), cum


def residual_mass(dist: torch.Tensor, lam: torch.Tensor) -> torch.Tensor:
    """1 - A = int (f - g)_+ (B,) float64: the probability that the node draws its residual."""
    return _segments(dist.to(torch.float64), lam)[2].sum(1)


def residual_projection(dist, lam, u, segments=None) -> tuple[torch.Tensor, torch.Tensor]:
    """S from (f - g)_+ / (1 - A) at the uniform u (B,), by the inverse CDF, and 1 - A (B,); float64.
    ``segments``: :func:`_segments` of (dist, lam), if known."""
    delta = dist.to(torch.float64)
    a, b, mass, cum = _segments(delta, lam) if segments is None else segments
    total = mass.sum(1)
    goal = u * total
    before = mass.cumsum(1) - mass
    i = ((before + mass) < goal[:, None]).sum(1, keepdim=True).clamp(max=mass.shape[1] - 1)
    lo, hi = a.gather(1, i), b.gather(1, i)
    at_mid = _excess(delta[:, None] / 2, delta[:, None], cum)
    want = goal[:, None] - before.gather(1, i) + _cumulative(lo, delta[:, None], cum, at_mid)
    for _ in range(REFINE):  # C grows with s inside a positive piece
        mid = (lo + hi) / 2
        low = _cumulative(mid, delta[:, None], cum, at_mid) < want
        lo, hi = torch.where(low, mid, lo), torch.where(low, hi, mid)
    s = torch.where(total[:, None] > 0, (lo + hi) / 2, delta[:, None] / 2)
    return s[:, 0], total


def rank_index(log_lam, u):
    """The rank r (0-based) drawn with probability lambda_r at the uniform u (B,)."""
    return (torch.exp(log_lam).cumsum(1)[:, :-1] < u[:, None]).sum(1)


def rank_pick(proj, dist, log_lam, u):
    """The selected draft (B,): the draft of rank :func:`rank_index` among the ascending projections ``proj``
    (B, K) (K = 1: the one draft); ``dist`` for mutants that read it."""
    return torch.argsort(proj, 1).gather(1, rank_index(log_lam, u)[:, None])[:, 0]


def rank_node(x: NodeInputs, *, weights: str = "lp", pick=rank_pick):
    """One rank-selection node, in :func:`specverify.sampler.verifiers.dgrs_node`'s terms (``x.u``: the
    acceptance's uniform, then the rank's). Returns the chosen draft (n,) (K: none), the residual draw, the
    acceptance probability A (n,) and |D| (n,). ``pick``: for mutants (see :func:`rank_pick`)."""
    mean_p, mean_q, z, u = x.mean_p, x.mean_q, x.z, x.u
    K = z.shape[1]
    sigma = _scale(x.sigma, mean_p, 1, x.validate)
    diff = (mean_p - mean_q).flatten(1).to(torch.float64) / sigma.to(torch.float64)[:, None]
    dist = diff.norm(dim=1)
    e = diff / dist.clamp_min(1e-300)[:, None]
    proj = (z.flatten(2).to(torch.float64) * e[:, None]).sum(2)  # (n, K)
    lam = rank_weights(dist, K, weights)
    log_lam = torch.log(lam)
    child = pick(proj, dist, log_lam, u[:, 1] if K > 1 else u[:, 0])
    s_sel = proj.gather(1, child[:, None])
    log_fg = log_f_over_g(s_sel, dist[:, None], log_lam)[:, 0]
    degenerate = dist <= tolerance(mean_p.dtype)
    take = (torch.log(u[:, 0].to(torch.float64)) <= log_fg) | degenerate
    safe = torch.where(degenerate, 1.0, dist)
    segments = _segments(safe, lam)
    miss = segments[2].sum(1)
    if bool(take.all()):  # no row draws the residual (one host read saves the inverse CDF)
        res = mean_p
    else:
        s_res, _ = residual_projection(safe, lam, x.u_res.to(torch.float64), segments)
        res = compose_state(Frame(mean_q, mean_p, sigma, dist.to(mean_p.dtype)), z[:, 0], s_res)
    chosen = torch.where(degenerate, 0, torch.where(take, child, K))
    return chosen, res, torch.where(degenerate, 1.0, 1 - miss), dist.to(mean_p.dtype)
