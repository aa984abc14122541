"""A report as Markdown and as PNG figures (QQ plots of the worst coordinates, the squared norm's histogram,
acceptance per window position). matplotlib is imported on first use, with the Agg backend."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

__all__ = ["acceptance_line", "markdown", "markdown_kernel", "plots"]

_COORD = re.compile(r"ks\[coord (\d+)\]")


def markdown(report: dict, title: str = "specverify check") -> str:
    """The report (``Report.to_dict()`` plus any context keys) as a Markdown page."""
    r = report
    if r.get("verdict") == "error":
        return (f"# {title}: ERROR\n\n{r.get('error', '')}\n\nNo verdict: fix the error above and run again. "
                f"Context: {', '.join(f'{k}={v}' for k, v in r.items() if k not in ('error', 'verdict'))}\n")
    out = [f"# {title}: {r['verdict'].upper()}", "",
           f"- reference: {r['reference']}; alpha = {r['alpha']} (family-wise, {r['correction']})",
           f"- n = {r['n']}, seed = {r['seed']}; smallest KS distance detected with power {1 - r['beta']:.3g}: "
           f"{r['min_detectable_ks']:.4f}",
           f"- {r['seconds']:.1f} s"]
    out += [f"- warning: {w}" for w in r.get("warnings", [])]
    acc = r.get("acceptance")
    if acc:
        out += ["", "## Acceptance", "", acceptance_line(acc)]
        if acc["per_position"]:
            out += ["", "| position | verified | rate | interval | predicted |", "|---|---|---|---|---|"]
            for p in acc["per_position"]:
                if p["verified"]:
                    out.append(f"| {p['position']} | {p['verified']} | {p['rate']:.4f} | "
                               f"[{p['ci_low']:.4f}, {p['ci_high']:.4f}] | {p['predicted']:.4f} |")
    out += ["", "## Tests", "", "Sorted by adjusted p-value; BH q-values are exploratory.", "",
            "| test | family | statistic | p | adjusted p | BH q | rejected |", "|---|---|---|---|---|---|---|"]
    for t in sorted(r["tests"], key=lambda t: (t["adjusted_pvalue"], t["pvalue"])):
        out.append(f"| {t['name']} | {t.get('family', '')} | {t['statistic']:.4g} | {t['pvalue']:.3g} | "
                   f"{t['adjusted_pvalue']:.3g} | {t.get('bh_qvalue', float('nan')):.3g} | "
                   f"{'**yes**' if t['rejected'] else 'no'} |")
    return "\n".join(out) + "\n"


def markdown_kernel(r: dict, title: str) -> str:
    """A kernel-level (coupling) report as Markdown."""
    out = [f"# {title}: {r['verdict'].upper()}", "", f"- form: {r['form']}; n = {r['n']} per case; alpha = "
           f"{r['alpha']} (Holm over {len(r['tests'])} tests); seed = {r['seed']}; {r['seconds']:.1f} s"]
    if r["exact"]:
        out += ["", "## Exact comparison with the reflection coupling (injected noise)", "",
                "| d | abs D | flag mismatches | output mismatches |", "|---|---|---|---|"]
        out += [f"| {e['dim']} | {e['distance']} | {e['flag_mismatches']} | {e['output_mismatches']} |"
                for e in r["exact"]]
    out += ["", "## Tests", "", "| test | statistic | p | adjusted p | rejected |", "|---|---|---|---|---|"]
    out += [f"| {t['name']} | {t['statistic']:.4g} | {t['pvalue']:.3g} | {t['adjusted_pvalue']:.3g} | "
            f"{'**yes**' if t['rejected'] else 'no'} |" for t in sorted(r["tests"], key=lambda t: t["adjusted_pvalue"])]
    return "\n".join(out) + "\n"


def acceptance_line(acc: dict) -> str:
    """One sentence: the pooled acceptance with its interval next to the prediction."""
    if not acc["verified"]:
        return (f"Accepted {acc['accepted']} drafted steps, predicted {acc['predicted_accepted']:.1f} "
                f"(no verified counts reported, so no rate).")
    return (f"Accepted {acc['accepted']} of {acc['verified']} verified steps: rate {acc['acceptance_rate']:.4f} "
            f"[{acc['ci_low']:.4f}, {acc['ci_high']:.4f}] ({acc['confidence']:.0%} Clopper-Pearson), predicted "
            f"{acc['predicted_acceptance_rate']:.4f}.")


def _worst_coords(tests, k=4):
    ranked = sorted(tests, key=lambda t: t["pvalue"])
    return [int(m.group(1)) for t in ranked if (m := _COORD.fullmatch(t["name"]))][:k]


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plots(report, outdir) -> list[Path]:
    """Write the figures of a ``Report`` built with ``keep_samples=True``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy import stats

    if report.data is None:
        raise ValueError("the report holds no samples: build it with keep_samples=True")
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    x, paths = report.data["x"], []
    exact = "law" in report.data
    if exact:
        mean, lam, q = report.data["law"]
        x = ((x - mean) @ q) / np.sqrt(lam)  # whitened: N(0, I) under H0
    y = report.data.get("y")
    coords = _worst_coords(report.tests) or list(range(min(4, x.shape[1])))
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
    paths.append(_save(fig, outdir / "qq_worst_coordinates.png"))

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
    paths.append(_save(fig, outdir / "squared_norm.png"))

    acc = report.acceptance
    rows = [p for p in (acc or {}).get("per_position", []) if p["verified"]]
    if rows:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        pos = np.array([p["position"] for p in rows])
        rate = np.array([p["rate"] for p in rows])
        err = np.array([[p["rate"] - p["ci_low"] for p in rows], [p["ci_high"] - p["rate"] for p in rows]])
        ax.errorbar(pos, rate, yerr=err, fmt="o", capsize=3, label=f"measured ({acc['confidence']:.0%} CP)")
        ax.plot(pos, [p["predicted"] for p in rows], "k_", ms=14, mew=2, label="predicted 2 Phi(-|D|/2)")
        ax.set_xlabel("window position")
        ax.set_ylabel("acceptance rate")
        ax.legend()
        paths.append(_save(fig, outdir / "acceptance_per_position.png"))
    return paths
