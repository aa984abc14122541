"""`specverify check --stress`: the check on the problem given and on each stress configuration.

A chain-level candidate (``sampler(view, n, seed)``) or our own sampler is bound to each configuration of
:data:`specverify.bridge.stress_configs.STRESS` in turn; alpha is split by Bonferroni (:func:`stress_split`: alpha / 2
for the problem given, alpha / 2 shared equally by the stress configurations), and the verdict fails if any
configuration rejects. A black box is bound to one problem, so ``--stress`` with one is a usage error.
"""

from __future__ import annotations

from specverify.errors import UsageError

__all__ = ["binder", "rejected_steps", "run_stress"]


def binder(args, device):
    """setup -> candidate for any built-in problem; UsageError when the candidate is not chain-level."""
    from specverify.bridge import make_candidate

    if args.candidate is None:
        from specverify.cli.common import ours

        return lambda setup: make_candidate(setup, ours(args), device=device)
    from specverify.harness.adapters import chain_candidate, detect_contract, load

    fn = load(args.candidate)
    contract = detect_contract(fn) if args.contract == "auto" else args.contract
    if contract != "chain":
        raise UsageError(f"--stress needs a chain-level candidate sampler(view, n, seed); {args.candidate} is a "
                         f"{contract} candidate, bound to one problem: drop --stress, or give --contract chain if "
                         "it takes (view, n, seed)")
    return lambda setup: chain_candidate(fn, setup.view())


def rejected_steps(report) -> str:
    """Rejected drafted steps from the candidate's counts, or "unknown"."""
    r = (report.rejection_path or {}).get("rejected_steps")
    return "unknown" if r is None else str(r)


def run_stress(bind, plan, *, configs=None, terminal: bool = False) -> list:
    """Check ``bind(setup)`` on each stress configuration at ``plan`` (a ``bridge.Plan`` whose alpha is each
    configuration's share): [(config, report)] (trajectories get the transition-level check unless ``terminal``)."""
    from specverify.bridge import TrajectoryOptions, check, setup_of
    from specverify.bridge.stress_configs import STRESS

    out = []
    for c in STRESS if configs is None else configs:
        setup = setup_of(c.problem, c.options)
        out.append((c, check(setup, bind(setup), plan=plan, paths=TrajectoryOptions(terminal=terminal))))
    return out


def stress_block(args, bind, main_alpha: float, alpha_each: float) -> tuple[list, str]:
    """Run the stress family for `check --stress`, print one line per configuration; (JSON entries, verdict)."""
    from specverify.bridge.stress_configs import STRESS

    print(f"  stress family (Bonferroni): alpha/2 = {main_alpha:g} for the problem above, alpha/2 shared by "
          f"{len(STRESS)} stress configurations = {alpha_each:g} each")
    from specverify.bridge import Plan

    results = run_stress(bind, Plan(alpha_each, args.beta, args.epsilon, args.n, args.seed), terminal=args.terminal)
    entries = []
    for c, r in results:
        f = (r.rejection_path or {}).get("trajectories_with_rejection")
        seen = "" if f is None else f", {f:.3f} of trajectories with one"
        print(f"  {c.name:<20} {r.verdict.upper():<5} {c.describe()}: n={r.n}, rejected drafted steps "
              f"{rejected_steps(r)}{seen}{'; caught by: ' + ', '.join(r.caught_by) if r.caught_by else ''}")
        entries.append({"name": c.name, "problem": c.problem, "options": c.options, **r.to_dict()})
    return entries, "fail" if any(r.verdict == "fail" for _, r in results) else "pass"
