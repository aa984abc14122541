"""The report type: a check's result as frozen records, and its JSON (``to_dict``), Markdown and PNG figures.

- :class:`Report` (the suite's verdict) holds one :class:`~specverify.harness.stats.results.AdjustedTest` per
  test and an :class:`AcceptanceSummary`; ``to_dict()`` is the JSON that ``specverify check --json`` writes.
- :func:`markdown` renders the check's page (``coupling_check.markdown_kernel`` a kernel-level result's; the
  `specverify mutants` table is the face's: ``specverify.cli.mutants.kills_markdown``); :func:`plots` draws QQ
  plots of the worst coordinates (read from the records' ``coord``), the squared norm's histogram and acceptance
  per window position.

matplotlib is imported on first use, with the Agg backend.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from specverify.errors import UsageError
from specverify.errors import exit_code as _exit_code
from specverify.harness.ledger import AlphaLedger
from specverify.harness.stats.results import AdjustedTest

__all__ = ["AcceptanceSummary", "PositionAcceptance", "Report", "acceptance_line",
           "markdown", "plots"]


def _fields(record) -> dict:
    """A record's fields by name, in declaration order (shallow: nested records stay records)."""
    return {f.name: getattr(record, f.name) for f in dataclasses.fields(record)}


@dataclasses.dataclass(frozen=True)
class PositionAcceptance:
    """Acceptance at one window position: counts, rate, its Clopper-Pearson interval, the predicted rate."""

    position: int
    accepted: int
    verified: int
    rate: float | None
    predicted: float | None
    ci_low: float | None
    ci_high: float | None

    def to_dict(self) -> dict:
        return _fields(self)


@dataclasses.dataclass(frozen=True)
class AcceptanceSummary:
    """Pooled and per-position acceptance next to the predictions (``stats.acceptance.acceptance_summary``)."""

    trajectories: int
    accepted: int
    predicted_accepted: float
    verified: int
    acceptance_rate: float | None
    predicted_acceptance_rate: float | None
    confidence: float
    ci_low: float | None
    ci_high: float | None
    per_position: tuple[PositionAcceptance, ...] = ()

    @classmethod
    def from_dict(cls, d: Mapping) -> AcceptanceSummary:
        """The record of ``acceptance_summary``'s dict (or of this record's ``to_dict()``)."""
        rows = tuple(PositionAcceptance(**p) for p in d.get("per_position", ()))
        return cls(**{k: v for k, v in d.items() if k != "per_position"}, per_position=rows)

    def to_dict(self) -> dict:
        return _fields(self) | {"per_position": [p.to_dict() for p in self.per_position]}


@dataclasses.dataclass(frozen=True)
class Report:
    """The suite's verdict on a candidate: the family's tests, the acceptance summary, sizes and warnings.

    ``permutations``: the permutations the distribution block drew (None: no permutation test);
    ``rejection_path``: rejected drafted steps, the fraction of trajectories with one, and a note when too few
    (``suite.rejection_path``); ``ledger``: how alpha was split and n sized (``ledger.AlphaLedger``, its kind
    terminal or transition); ``diagnosis``: per-step z-scores, deviating steps (transition level); ``data``
    (samples, for :func:`plots`) is kept only with ``keep_samples=True``; it is not in the JSON.
    """

    verdict: str
    alpha: float
    beta: float
    epsilon: float
    n: int
    min_detectable_ks: float
    reference: str
    seed: int
    correction: str
    tests: tuple[AdjustedTest, ...]
    acceptance: AcceptanceSummary | None
    seconds: float
    warnings: tuple[str, ...]
    permutations: int | None = None
    rejection_path: dict | None = None
    ledger: AlphaLedger | None = None
    diagnosis: dict | None = None
    data: dict | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def exit_code(self) -> int:
        return _exit_code(self.verdict)

    @property
    def transition_level(self) -> bool:
        """A transition-level check (trajectories against the target's transitions), not the terminal battery."""
        return self.ledger is not None and self.ledger.kind == "transition"

    @property
    def caught_by(self) -> tuple[str, ...]:
        """The blocks (distribution, independence, acceptance) with a rejected test, in the family's order."""
        return tuple(dict.fromkeys(t.family for t in self.tests if t.rejected))

    def to_dict(self) -> dict:
        out = _fields(self) | {"ledger": None if self.ledger is None else self.ledger.to_dict()}
        del out["data"]
        for key in ("ledger", "diagnosis"):  # the diagnosis: transition-level checks only
            if out[key] is None:
                del out[key]
        return out | {"caught_by": list(self.caught_by), "tests": [t.to_dict() for t in self.tests],
                      "acceptance": None if self.acceptance is None else self.acceptance.to_dict(),
                      "warnings": list(self.warnings)}


# ---------------------------------------------------------------------------------------------------------
# Markdown


def _yes(rejected: bool) -> str:
    return "**yes**" if rejected else "no"


def _error_markdown(r: Mapping, title: str) -> str:
    context = ", ".join(f"{k}={v}" for k, v in r.items() if k not in ("error", "verdict"))
    return (f"# {title}: ERROR\n\n{r.get('error', '')}\n\nNo verdict: fix the error above and run again. "
            f"Context: {context}\n")


def _acceptance_markdown(acc: AcceptanceSummary) -> list[str]:
    out = ["", "## Acceptance", "", acceptance_line(acc)]
    rows = [p for p in acc.per_position if p.verified]
    if acc.per_position:
        out += ["", "| position | verified | rate | interval | predicted |", "|---|---|---|---|---|"]
        out += [f"| {p.position} | {p.verified} | {p.rate:.4f} | [{p.ci_low:.4f}, {p.ci_high:.4f}] | "
                f"{p.predicted:.4f} |" for p in rows]
    return out


def _rejection_markdown(rp: Mapping | None) -> list[str]:
    if not rp:
        return []
    line = ("- rejected drafted steps: unknown" if rp["rejected_steps"] is None else
            f"- rejected drafted steps: {rp['rejected_steps']} (in {rp['trajectories_with_rejection']:.4f} of the "
            "trajectories)")
    return [line] + ([f"- warning: {rp['note']}"] if rp["note"] else [])


def _independence_markdown(r: Report) -> list[str]:
    rows = [t for t in r.tests if t.family == "independence"]
    if not rows:
        return []
    out = ["", "## Independence", "", "Duplicates and near duplicates within the candidate's sample, and rows "
           "shared between seeds (its own share of alpha).", "",
           "| test | statistic | adjusted p | rejected | method |", "|---|---|---|---|---|"]
    return out + [f"| {t.name} | {t.statistic:.4g} | {t.adjusted_pvalue:.3g} | {_yes(t.rejected)} | {t.method} |"
                  for t in rows]


def markdown(report: Report | Mapping, title: str = "specverify check") -> str:
    """A :class:`Report` as a Markdown page; or, for a check that stopped with an error, the mapping
    ``{**context, "verdict": "error", "error": message}`` as an error page."""
    if isinstance(report, Mapping):
        if report.get("verdict") != "error":
            raise UsageError("markdown() renders a Report (or the error mapping of a check that stopped); "
                            "pass the Report, not its to_dict()")
        return _error_markdown(report, title)
    r = report
    out = [f"# {title}: {r.verdict.upper()}", "",
           f"- reference: {r.reference}; alpha = {r.alpha} (family-wise, {r.correction})",
           f"- n = {r.n}, seed = {r.seed}; " + (
               f"smallest KS distance detected with power {1 - r.beta:.3g}: {r.min_detectable_ks:.4f}"
               if not r.transition_level else "trajectories (transition level: see the ledger below)"),
           f"- {r.seconds:.1f} s" + ("" if r.permutations is None else f"; {r.permutations} permutations")]
    out += [f"- caught by: {', '.join(r.caught_by)}"] if r.caught_by else []
    out += _rejection_markdown(r.rejection_path)
    out += [f"- warning: {w}" for w in r.warnings]
    out += [] if r.ledger is None else r.ledger.markdown()
    if r.diagnosis is not None:
        from specverify.harness.report_innovations import diagnosis_markdown

        out += diagnosis_markdown(r.diagnosis)
    out += _independence_markdown(r)
    if r.acceptance is not None:
        out += _acceptance_markdown(r.acceptance)
    out += ["", "## Tests", "", "Sorted by adjusted p-value; BH q-values are exploratory.", "",
            "| test | family | statistic | p | adjusted p | BH q | rejected |", "|---|---|---|---|---|---|---|"]
    out += [f"| {t.name} | {t.family} | {t.statistic:.4g} | {t.pvalue:.3g} | {t.adjusted_pvalue:.3g} | "
            f"{t.bh_qvalue:.3g} | {_yes(t.rejected)} |"
            for t in sorted(r.tests, key=lambda t: (t.adjusted_pvalue, t.pvalue))]
    return "\n".join(out) + "\n"


def acceptance_line(acc: AcceptanceSummary) -> str:
    """One sentence: the pooled acceptance with its interval next to the prediction."""
    if not acc.verified:
        return (f"Accepted {acc.accepted} drafted steps, predicted {acc.predicted_accepted:.1f} "
                f"(no verified counts reported, so no rate).")
    return (f"Accepted {acc.accepted} of {acc.verified} verified steps: rate {acc.acceptance_rate:.4f} "
            f"[{acc.ci_low:.4f}, {acc.ci_high:.4f}] ({acc.confidence:.0%} Clopper-Pearson), predicted "
            f"{acc.predicted_acceptance_rate:.4f}.")


# ---------------------------------------------------------------------------------------------------------
# Figures


def _worst_coords(tests, k: int = 4) -> list[int]:
    """The k coordinates whose tests have the smallest p-values (each coordinate once)."""
    out = []
    for t in sorted(tests, key=lambda t: t.pvalue):
        if t.coord is not None and t.coord not in out:
            out.append(t.coord)
    return out[:k]


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _qq_figure(x, y, coords, exact: bool, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from scipy import stats

    fig, axes = plt.subplots(1, len(coords), figsize=(3.2 * len(coords), 3.2), squeeze=False)
    probs = (np.arange(1, 201) - 0.5) / 200
    for ax, i in zip(axes[0], coords, strict=True):
        qx = np.quantile(x[:, i], probs)
        qy = stats.norm.ppf(probs) if exact else np.quantile(y[:, i], probs)
        ax.plot(qy, qx, ".", ms=3)
        lo, hi = min(qx.min(), qy.min()), max(qx.max(), qy.max())
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_title(f"{'whitened ' if exact else ''}coord {i}", fontsize=9)
        ax.set_xlabel("N(0, 1)" if exact else "reference")
        ax.set_ylabel("candidate")
    fig.suptitle("QQ plots of the worst coordinates", fontsize=10)
    return _save(fig, path)


def _norm_figure(x, y, exact: bool, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from scipy import stats

    fig, ax = plt.subplots(figsize=(5, 3.5))
    nx = (x**2).sum(1)
    bins = np.histogram_bin_edges(nx if exact else np.concatenate([nx, (y**2).sum(1)]), bins=60)
    ax.hist(nx, bins=bins, density=True, alpha=0.6, label="candidate")
    if exact:
        grid = np.linspace(bins[0], bins[-1], 400)
        ax.plot(grid, stats.chi2(x.shape[1]).pdf(grid), "k-", lw=1, label=f"chi2({x.shape[1]})")
        ax.set_xlabel("squared Mahalanobis norm")
    else:
        ax.hist((y**2).sum(1), bins=bins, density=True, alpha=0.5, label="reference")
        ax.set_xlabel("squared norm")
    ax.legend()
    return _save(fig, path)


def _acceptance_figure(acc: AcceptanceSummary, rows, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    pos = np.array([p.position for p in rows])
    rate = np.array([p.rate for p in rows])
    err = np.array([[p.rate - p.ci_low for p in rows], [p.ci_high - p.rate for p in rows]])
    ax.errorbar(pos, rate, yerr=err, fmt="o", capsize=3, label=f"measured ({acc.confidence:.0%} CP)")
    ax.plot(pos, [p.predicted for p in rows], "k_", ms=14, mew=2, label="predicted 2 Phi(-|D|/2)")
    ax.set_xlabel("window position")
    ax.set_ylabel("acceptance rate")
    ax.legend()
    return _save(fig, path)


def plots(report: Report, outdir) -> list[Path]:
    """Write the figures of a ``Report`` built with ``keep_samples=True``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    if report.diagnosis is not None:
        from specverify.harness.report_innovations import diagnosis_figure

        Path(outdir).mkdir(parents=True, exist_ok=True)
        return [diagnosis_figure(report.diagnosis, Path(outdir) / "innovations_per_step.png")]
    if report.data is None:
        raise UsageError("the report holds no samples: build it with keep_samples=True")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    x, y = report.data["x"], report.data.get("y")
    exact = "law" in report.data
    if exact:
        mean, lam, q = report.data["law"]
        x = ((x - mean) @ q) / np.sqrt(lam)  # whitened: N(0, I) under H0
    coords = _worst_coords(report.tests) or list(range(min(4, x.shape[1])))
    paths = [_qq_figure(x, y, coords, exact, outdir / "qq_worst_coordinates.png"),
             _norm_figure(x, y, exact, outdir / "squared_norm.png")]
    acc = report.acceptance
    rows = [p for p in acc.per_position if p.verified] if acc is not None else []
    if rows:
        paths.append(_acceptance_figure(acc, rows, outdir / "acceptance_per_position.png"))
    return paths
