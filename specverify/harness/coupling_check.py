"""Kernel-level contract: one coupled step of a third-party speculative sampler.

Two forms, told apart by their signature:

- injected noise: ``coupling(mean_p, mean_q, sigma, z, u) -> (x, accepted)`` with mean_p, mean_q, z of shape
  (n, d), sigma and u of shape (n,). The draft is y = mean_q + sigma z; it is accepted iff
  log u <= log p(y) / q(y) = -<z, D> - |D|^2 / 2 with D = (mean_q - mean_p) / sigma, and a rejected step
  returns the reflection mean_p + sigma (z - 2 <z, e> e), e = D / |D|. Checked EXACTLY against that formula
  (computed here in numpy: a deliberate twin of ``specverify.sampler.coupling``, so the harness never imports the
  sampler side), then statistically on fresh noise.
- seeded: ``coupling(mean_p, mean_q, sigma, seed) -> (x, accepted)`` draws its own noise. Checked statistically:
  the output must be N(mean_p, sigma^2 I) (whitened one-sample battery) and the acceptance count must match
  2 Phi(-|D| / 2) (exact binomial test), for several dimensions and distances, Holm over all the tests.

Arrays go in as numpy float64; a coupling that refuses numpy is retried with torch tensors.
"""

from __future__ import annotations

import dataclasses
import inspect
import time

import numpy as np
from scipy import stats

from specverify.errors import CandidateError, ContractError
from specverify.errors import exit_code as _exit_code
from specverify.harness.contracts import _to_numpy
from specverify.harness.predictions import acceptance_probability
from specverify.harness.stats.one_sample import whitened_normal_battery
from specverify.harness.stats.results import AdjustedTest, TestResult, holm

__all__ = ["CASES", "CouplingResult", "ExactCase", "check_coupling", "coupling_form", "markdown_kernel",
           "reference_coupling"]

CASES = ((1, 0.5), (1, 2.0), (8, 1.0), (64, 0.3))  # (dimension, |D|)
_EXACT_RTOL = 1e-9


@dataclasses.dataclass(frozen=True)
class ExactCase:
    """One case of the exact comparison (injected form): rows whose flag or output differ from the formula."""

    dim: int
    distance: float
    flag_mismatches: int
    output_mismatches: int


@dataclasses.dataclass(frozen=True)
class CouplingResult:
    """The kernel-level verdict; ``exact`` and ``exact_ok`` (None for the seeded form) come from the exact
    comparison, ``tests`` from the statistical one. ``to_dict()`` is the JSON of `specverify check` on a
    coupling (:func:`markdown_kernel` renders it)."""

    verdict: str
    form: str
    alpha: float
    n: int
    seed: int
    exact: tuple[ExactCase, ...]
    exact_ok: bool | None
    tests: tuple[AdjustedTest, ...]
    seconds: float

    @property
    def exit_code(self) -> int:
        return _exit_code(self.verdict)

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return out | {"exact": [dataclasses.asdict(e) for e in self.exact],
                      "tests": [t.to_dict() for t in self.tests]}


def reference_coupling(mean_p, mean_q, sigma, z, u):
    """The reflection maximal coupling in numpy (see the module docstring). Deliberate twin of
    specverify.sampler.coupling.coupled_step / accept / select (torch); the two halves share no code."""
    s = np.asarray(sigma, dtype=np.float64)[:, None]
    d = (mean_q - mean_p) / s
    dist = np.linalg.norm(d, axis=1)
    accepted = np.log(u) <= -(z * d).sum(1) - 0.5 * dist**2
    e = d / np.where(dist > 0, dist, 1.0)[:, None]
    reflected = mean_p + s * (z - 2 * (z * e).sum(1, keepdims=True) * e)
    return np.where(accepted[:, None], mean_q + s * z, reflected), accepted


def coupling_form(fn) -> str:
    """'injected' for fn(mean_p, mean_q, sigma, z, u), 'seeded' for fn(mean_p, mean_q, sigma, seed)."""
    params = [p for p in inspect.signature(fn).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty]
    forms = {5: "injected", 4: "seeded"}
    if len(params) not in forms:
        raise ContractError(f"a coupling takes (mean_p, mean_q, sigma, z, u) or (mean_p, mean_q, sigma, seed); "
                            f"{getattr(fn, '__name__', fn)} takes {len(params)} arguments")
    return forms[len(params)]


def _call(fn, args, n, d):
    try:
        out = fn(*args)
    except Exception as first:  # noqa: BLE001 - a third-party coupling may only take torch tensors
        try:
            import torch

            out = fn(*[torch.as_tensor(a) if isinstance(a, np.ndarray) else a for a in args])
        except Exception:  # noqa: BLE001
            raise CandidateError(f"coupling raised {type(first).__name__}: {first}") from first
    if not (isinstance(out, tuple | list) and len(out) == 2):
        raise ContractError(f"coupling returned {type(out).__name__}; the contract is a pair (x, accepted)")
    x = _to_numpy(out[0])
    acc = _to_numpy(out[1]).astype(bool).ravel()
    if x.shape != (n, d):
        raise ContractError(f"coupling returned x of shape {x.shape}; expected {(n, d)}")
    if acc.shape != (n,):
        raise ContractError(f"coupling returned {acc.size} accepted flags for {n} rows")
    if not np.isfinite(x).all():
        raise ContractError("coupling returned NaN or Inf")
    return x, acc


def _case_inputs(rng, n, d, dist):
    mean_p = rng.normal(size=(n, d))
    direction = rng.normal(size=(n, d))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    sigma = np.exp(rng.uniform(-1, 0.5, size=n))
    mean_q = mean_p + dist * sigma[:, None] * direction
    return mean_p, mean_q, sigma


def check_coupling(fn, *, n: int = 20000, alpha: float = 0.01, seed: int = 0) -> CouplingResult:
    """Check a coupling (either form) over ``CASES``; returns the verdict with its exact cases and tests."""
    t0 = time.perf_counter()
    form = coupling_form(fn)
    rng = np.random.default_rng(seed)
    tests, exact = [], []
    for d, dist in CASES:
        mean_p, mean_q, sigma = _case_inputs(rng, n, d, dist)
        if form == "injected":
            z, u = rng.normal(size=(n, d)), rng.uniform(size=n)
            x, acc = _call(fn, (mean_p, mean_q, sigma, z, u), n, d)
            ref_x, ref_acc = reference_coupling(mean_p, mean_q, sigma, z, u)
            scale = np.abs(ref_x).max() + 1.0
            bad_acc = int((acc != ref_acc).sum())
            bad_x = int((np.abs(x - ref_x).max(1) > _EXACT_RTOL * scale).sum())
            exact.append(ExactCase(d, dist, bad_acc, bad_x))
        else:
            x, acc = _call(fn, (mean_p, mean_q, sigma, int(rng.integers(2**31))), n, d)
            x2, _ = _call(fn, (mean_p, mean_q, sigma, int(seed)), n, d)
            x3, _ = _call(fn, (mean_p, mean_q, sigma, int(seed)), n, d)
            if not np.array_equal(x2, x3):
                raise ContractError("coupling returned different samples for the same seed: it ignores its seed")
        w = (x - mean_p) / sigma[:, None]  # N(0, I) if the output has the target law
        tests += whitened_normal_battery(w, alpha, prefix=f"d={d} |D|={dist} ").tests
        p_acc = float(acceptance_probability(dist))
        b = stats.binomtest(int(acc.sum()), n, p_acc)
        tests.append(TestResult(f"d={d} |D|={dist} acceptance", acc.mean(), float(b.pvalue),
                                f"binomtest vs 2 Phi(-|D|/2) = {p_acc:.4f}", n))
    battery = holm(tests, alpha)
    exact_ok = all(e.flag_mismatches == 0 and e.output_mismatches == 0 for e in exact)
    verdict = "pass" if exact_ok and not battery.reject else "fail"
    return CouplingResult(verdict, form, alpha, n, seed, tuple(exact), exact_ok if form == "injected" else None,
                          battery.adjusted_tests(), time.perf_counter() - t0)


def markdown_kernel(r, title: str) -> str:
    """A kernel-level result (``coupling_check.CouplingResult``) as Markdown."""
    out = [f"# {title}: {r.verdict.upper()}", "", f"- form: {r.form}; n = {r.n} per case; alpha = "
           f"{r.alpha} (Holm over {len(r.tests)} tests); seed = {r.seed}; {r.seconds:.1f} s"]
    if r.exact:
        out += ["", "## Exact comparison with the reflection coupling (injected noise)", "",
                "| d | abs D | flag mismatches | output mismatches |", "|---|---|---|---|"]
        out += [f"| {e.dim} | {e.distance} | {e.flag_mismatches} | {e.output_mismatches} |" for e in r.exact]
    out += ["", "## Tests", "", "| test | statistic | p | adjusted p | rejected |", "|---|---|---|---|---|"]
    out += [f"| {t.name} | {t.statistic:.4g} | {t.pvalue:.3g} | {t.adjusted_pvalue:.3g} | "
            f"{'**yes**' if t.rejected else 'no'} |" for t in sorted(r.tests, key=lambda t: t.adjusted_pvalue)]
    return "\n".join(out) + "\n"
