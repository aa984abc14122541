"""The command line's argument table and the checks of every argument before a run starts."""

from __future__ import annotations

import argparse
import math
import tempfile
from pathlib import Path

from specverify.cli.sharding import add_shard_args, check_shard_args
from specverify.errors import SampleSizeError, UsageError
from specverify.specs import ROUND_POLICIES

__all__ = ["accept_lists", "build_parser", "check_args", "check_names"]

# specverify.sampler.verifiers.VERIFIERS and MULTI_DRAFT (a test keeps them equal)
VERIFIERS = ("reflection", "block", "dgrs", "rank", "rank-max", "rank-uniform")
MULTI_DRAFT = ("dgrs", "rank", "rank-max", "rank-uniform")


def _add_problem_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--problem", default="gmm", help="built-in problem (see `specverify problems`)")
    p.add_argument("--dim", type=int, default=None, help="data dimension d (default 2; digits: its fixed 64)")
    p.add_argument("--steps", type=int, default=None,
                   help="number of chain steps (default: the problem's, 100; images: 250, see `specverify problems`)")
    p.add_argument("--chain", choices=("ddpm", "ddim"), default="ddpm", help="diffusion sampler of the chain")
    p.add_argument("--eta", type=float, default=1.0, help="DDIM eta (> 0)")
    p.add_argument("--schedule", choices=("linear", "cosine"), default="linear", help="beta schedule")
    p.add_argument("--prediction", choices=("eps", "x0", "v"), default="eps", help="model parametrisation")
    p.add_argument("--components", type=int, default=8, help="gmm: number of mixture components")
    p.add_argument("--step-size", type=float, default=None, help="Langevin problems: step size h")


def _add_verifier_args(p: argparse.ArgumentParser, policy: bool = True) -> None:
    if policy:
        p.add_argument("--policy", choices=ROUND_POLICIES, default=ROUND_POLICIES[0],
                       help="round policy (theory/rounds.md): accepted+1 (default) or window-start")
    p.add_argument("--verifier", choices=VERIFIERS, default=VERIFIERS[0],
                   help="how drafts are checked (theory/multidraft.md): reflection (default), block (the window's "
                        "prefix jointly), or with --drafts drafts at each window's first position dgrs or rank "
                        "selection (rank: LP-optimised weights, rank-max, rank-uniform)")
    p.add_argument("--drafts", type=int, default=1,
                   help="dgrs and rank*: drafts per window's first position K (>= 1)")


class _ArgumentError(UsageError):
    """argparse could not read the command line (``prog``: the command it was reading)."""

    def __init__(self, message: str, prog: str):
        super().__init__(message)
        self.prog = prog


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so that main() prints one line and still writes the report."""

    def error(self, message):
        raise _ArgumentError(f"{message}; see `{self.prog} --help`", self.prog)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="specverify", description="Verify speculative sampling of diffusion models.")
    parser.add_argument("--debug", action="store_true", help="on an error, print the traceback too")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser = _with_debug(sub.add_parser)

    s = sub.add_parser("sample", help="run the plain or speculative sampler on a built-in problem")
    _add_problem_args(s)
    s.add_argument("--sampler", choices=("plain", "speculative"), default="speculative")
    s.add_argument("--drafter", default="frozen-denoiser", help="drafter (see `specverify drafters`)")
    s.add_argument("--window", type=int, default=8, help="drafted steps per window L (>= 1)")
    _add_verifier_args(s)
    s.add_argument("--n", type=int, default=1000, help="number of samples")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu", help="cpu or cuda")
    s.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    s.add_argument("--max-batch", type=int, default=None,
                   help="speculative: at most this many samples at once (default: bounded by memory)")
    s.add_argument("--out", type=Path, help="write the samples here (.npz, key 'samples')")
    s.add_argument("--json", type=Path, help="write the run's statistics here as JSON")
    s.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on when stderr is a terminal)")
    add_shard_args(s)

    c = sub.add_parser("check", help="check our sampler's exactness on a built-in problem (exit 0 pass, 1 fail)")
    _add_problem_args(c)
    c.add_argument("--sampler", choices=("plain", "speculative"), default="speculative")
    c.add_argument("--drafter", default="frozen-denoiser", help="drafter (see `specverify drafters`)")
    c.add_argument("--window", type=int, default=8, help="drafted steps per window L (>= 1)")
    _add_verifier_args(c)
    c.add_argument("--n", type=int, default=None, help="samples (default: from --alpha, --beta, --epsilon)")
    c.add_argument("--alpha", type=float, default=0.01, help="family-wise false-alarm rate of the verdict")
    c.add_argument("--beta", type=float, default=0.05, help="miss rate at KS distance --epsilon (sizes n)")
    c.add_argument("--epsilon", type=float, default=0.05, help="smallest KS distance to detect (sizes n)")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--device", default="cpu", help="cpu or cuda")
    c.add_argument("--mutant", default=None, help="check a known-broken sampler instead (specverify.sampler.mutants)")
    c.add_argument("--candidate", default=None, metavar="TARGET",
                   help="check a third-party sampler instead: package.module:attr or path/to/file.py:attr")
    c.add_argument("--contract", choices=("auto", "black-box", "chain", "kernel", "multidraft"), default="auto",
                   help="the candidate's contract: (n, seed), (view, n, seed), or a coupling (mean_p, mean_q, sigma, "
                        "z, u) / (mean_p, mean_q, sigma, seed); auto reads its signature; multidraft: a K-draft "
                        "coupling (mean_p, means_q, sigma, z, u) -> (x, index), never auto (with --verifier dgrs "
                        "its acceptance is also tested against D-GRS)")
    c.add_argument("--reference", default="exact", metavar="exact|plain|TARGET",
                   help="exact: the problem's exact law or JAX reference sampler; plain: our plain sampler on the "
                        "problem; or a black box reference(n, seed)")
    c.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="a candidate or reference call that runs longer is an error (exit 2); Unix only (SIGALRM)")
    c.add_argument("--stress", action="store_true",
                   help="chain-level candidates and our sampler: also check on the stress family of problems "
                        "(specverify.bridge.stress_configs), alpha split by Bonferroni (alpha/2 here, alpha/2 shared)")
    c.add_argument("--allow-low-power", action="store_true",
                   help="accept a pass although n cannot deliver power 1 - beta at --epsilon (else exit 2)")
    c.add_argument("--terminal", action="store_true",
                   help="judge the final samples only (the terminal battery), even when the candidate returns "
                        "trajectories (default: trajectories get the transition-level innovation check)")
    c.add_argument("--target", default=None, metavar="TARGET",
                   help="the target chain the trajectories are judged against: file.py:obj or module:obj with "
                        "mean(x, k), sigma, n_steps, shape, prior_mean, prior_std (default: the problem's own; "
                        "--terminal judges samples against the problem's reference instead)")
    c.add_argument("--delta", type=float, default=None,
                   help="innovation check: smallest per-step shift to detect, in innovation sds (sizes n; "
                        "default 0.02)")
    c.add_argument("--lags", type=int, default=None,
                   help="innovation check: steps back to look for drafter directions (default: --window + 1; for "
                        "your own sampler, its window + 1)")
    c.add_argument("--json", type=Path, help="write the report here as JSON")
    c.add_argument("--markdown", type=Path, help="write the report here as Markdown")
    c.add_argument("--plots", type=Path, metavar="DIR", help="write PNG figures here")
    c.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar (default: on when stderr is a terminal)")
    add_shard_args(c)

    m = sub.add_parser("mutants", help="run every known-broken sampler and the correct one through the suite")
    _add_problem_args(m)
    m.add_argument("--drafter", default="frozen-denoiser", help="drafter of the default configuration")
    m.add_argument("--window", type=int, default=8, help="window of the default configuration")
    m.add_argument("--stress-delta", type=float, default=1.2, help="stress drafter's shift (acceptance 2 Phi(-d/2))")
    m.add_argument("--n", type=int, default=None, help="samples per check (default: from alpha, beta, epsilon)")
    m.add_argument("--alpha", type=float, default=0.01, help="false-alarm rate of each sampler's verdict")
    m.add_argument("--beta", type=float, default=0.05)
    m.add_argument("--epsilon", type=float, default=0.05, help="terminal battery: smallest KS distance (sizes n)")
    m.add_argument("--delta", type=float, default=None,
                   help="innovation check: smallest per-step shift in innovation sds (sizes n; default 0.02)")
    m.add_argument("--terminal", action="store_true",
                   help="judge the samplers' final samples only (default: their trajectories, transition level)")
    m.add_argument("--seed", type=int, default=0)
    m.add_argument("--device", default="cpu")
    m.add_argument("--json", type=Path, help="write the kills report here as JSON")
    m.add_argument("--markdown", type=Path, help="write the kills report here as a Markdown table")

    a = sub.add_parser("accept", help="acceptance study: per drafter and window, measured next to predicted")
    _add_problem_args(a)
    a.add_argument("--drafters", default="frozen-drift,frozen-denoiser", help="comma-separated drafter names")
    a.add_argument("--windows", default="1,2,4,8,16", help="comma-separated windows L")
    a.add_argument("--policies", default=",".join(ROUND_POLICIES),
                   help="comma-separated round policies, side by side (default: both)")
    _add_verifier_args(a, policy=False)
    a.add_argument("--n", type=int, default=1000, help="trajectories per (drafter, window)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--device", default="cpu")
    a.add_argument("--json", type=Path, help="write the rows here as JSON")
    a.add_argument("--markdown", type=Path, help="write the table here as Markdown")
    a.add_argument("--plots", type=Path, metavar="DIR", help="write PNG figures here")
    a.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None)
    add_shard_args(a)

    sub.add_parser("problems", help="list the built-in problems")
    sub.add_parser("drafters", help="list the drafters")
    return parser


def _with_debug(add_parser):
    """Each subcommand also takes --debug after its name (without overriding one given before it)."""
    def add(*a, **kw):
        p = add_parser(*a, **kw)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="on an error, print the "
                                                                                      "traceback too")
        return p

    return add


def _need(ok: bool, message: str, error: type[Exception] = UsageError) -> None:
    if not ok:
        raise error(message)


def _number(args, name: str, *, low: float = 0.0, high: float | None = None, what: str = "") -> None:
    """--name must be a finite number in (low, high) (high: none if None); None (not given) passes."""
    v = getattr(args, name.replace("-", "_"), None)
    if v is None:
        return
    bounds = f"in ({low:g}, {high:g})" if high is not None else f"> {low:g}"
    _need(math.isfinite(v) and v > low and (high is None or v < high),
          f"--{name} must be a finite number {bounds}{what}, got {v}")


def _writable(path: Path | None, flag: str, *, folder: bool = False) -> None:
    """A report path that cannot be written is an error now, not after the run."""
    if path is None:
        return
    target = path if folder else path.parent
    _need(folder or not path.is_dir(), f"{flag} {path} is a directory; give a file name, e.g. {path / 'report'}")
    _need(not target.exists() or target.is_dir(), f"{flag} {path}: {target} is a file, not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as e:
        raise UsageError(f"{flag} {path} cannot be written ({e.strerror or e}); choose a writable path") from None


def check_names(args) -> None:
    from specverify.bridge import entry
    from specverify.bridge.registry import DRAFTERS, MUTANTS

    entry(args.problem)  # an unknown problem: UsageError naming the choices
    drafter = getattr(args, "drafter", None)
    _need(drafter is None or drafter in DRAFTERS,
          f"unknown drafter {drafter!r}; choose one of {', '.join(DRAFTERS)} (see `specverify drafters`)")
    mutant = getattr(args, "mutant", None)
    _need(mutant is None or mutant in MUTANTS,
          f"unknown mutant {mutant!r} for --mutant; choose one of {', '.join(MUTANTS)}")
    if mutant is not None and hasattr(args, "verifier"):  # a mutant breaks one verifier: the report names it
        args.verifier, args.drafts = MUTANTS[mutant].verifier, max(args.drafts, MUTANTS[mutant].drafts)


def check_args(args) -> None:
    """Every argument of a command that runs a problem, before anything long starts; messages name the fix."""
    from specverify.harness.stats import MIN_SAMPLES

    cmd = args.command
    if args.steps is None:
        from specverify.bridge.registry import PROBLEMS

        args.steps = getattr(PROBLEMS.get(args.problem), "default_steps", 100)
    _need(args.steps >= 1, f"--steps must be >= 1 (the number of chain steps), got {args.steps}")
    _need(args.dim is None or args.dim >= 1, f"--dim must be >= 1, got {args.dim}")
    _need(args.components >= 1, f"--components must be >= 1, got {args.components}")
    _number(args, "eta", what=" (DDIM's noise level; at most 1)")
    _number(args, "step-size", what=" (the Langevin step h)")
    _need(getattr(args, "window", 1) >= 1, f"--window must be >= 1 (drafted steps per window), got "
                                           f"{getattr(args, 'window', None)}")
    _need(getattr(args, "drafts", 1) >= 1, f"--drafts must be >= 1, got {getattr(args, 'drafts', None)}")
    _need(getattr(args, "drafts", 1) == 1 or args.verifier in MULTI_DRAFT,
          f"--drafts {getattr(args, 'drafts', None)} needs --verifier {' or '.join(MULTI_DRAFT)} (the other "
          "verifiers take one draft per step)")
    _need(getattr(args, "max_batch", None) is None or args.max_batch >= 1, "--max-batch must be >= 1")
    _need(args.seed >= 0, f"--seed must be >= 0, got {args.seed}")
    if cmd in ("check", "mutants"):
        for name, what in (("alpha", "false-alarm rate"), ("beta", "miss rate"), ("epsilon", "KS distance"),
                           ("delta", "per-step shift")):
            _number(args, name, high=1.0, what=f" (a {what})")
        _need(getattr(args, "lags", None) is None or args.lags >= 1, f"--lags must be >= 1, got "
                                                                     f"{getattr(args, 'lags', None)}")
        _number(args, "timeout", what=" seconds")
        _number(args, "stress-delta", what=" (the stress drafter's shift)")
        least = MIN_SAMPLES if args.terminal else 2  # trajectories: the duplicate tests need 2 (the rest, any n)
        _need(args.n is None or args.n >= least,
              f"--n {args.n} is too few samples for the tests (they need n >= {least}); use a larger --n, or "
              "leave it out to size n from --alpha, --beta and --epsilon (--delta for trajectories)", SampleSizeError)
    minimum = {"sample": 1, "accept": 2}.get(cmd, 1)
    _need(args.n is None or args.n >= minimum, f"--n must be >= {minimum}, got {args.n}", SampleSizeError)
    if cmd == "accept":
        accept_lists(args)
    if cmd in ("sample", "check", "accept"):
        check_shard_args(args)
    for flag in ("out", "json", "markdown"):
        _writable(getattr(args, flag, None), f"--{flag}")
    _writable(getattr(args, "plots", None), "--plots", folder=True)


def accept_lists(args) -> tuple[list, list]:
    from specverify.bridge.registry import DRAFTERS

    drafters = [d for d in args.drafters.split(",") if d]
    unknown = [d for d in drafters if d not in DRAFTERS]
    policies = [p for p in args.policies.split(",") if p] if isinstance(args.policies, str) else args.policies
    if not policies or any(p not in ROUND_POLICIES for p in policies):
        raise UsageError(f"--policies must be comma-separated names from {', '.join(ROUND_POLICIES)}, "
                         f"got {args.policies!r}")
    args.policies = policies
    if unknown or not drafters:
        raise UsageError(f"unknown drafter(s) {unknown or args.drafters!r}; --drafters takes comma-separated names "
                         f"from {', '.join(DRAFTERS)}")
    try:
        windows = [int(w) for w in args.windows.split(",") if w]
    except ValueError:
        raise UsageError(f"--windows must be comma-separated integers, got {args.windows!r}") from None
    if not windows or min(windows) < 1:
        raise UsageError(f"--windows must be integers >= 1, got {args.windows!r}")
    return drafters, windows
