"""The transition-level check's sections of a report: the diagnosis table and its figure."""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["diagnosis_figure", "diagnosis_markdown"]


def diagnosis_markdown(diagnosis: dict) -> list[str]:
    """Markdown lines: the steps where innovations deviate (after the ledger, ``AlphaLedger.markdown``)."""
    out = ["", "## Diagnosis", "",
           f"Steps whose per-step z-score (norm, mean, or a projection at some lag) exceeds "
           f"{diagnosis['threshold_z']:.2f} in absolute value (Bonferroni over steps and statistics): "
           f"{diagnosis['deviating_steps']}."]
    if diagnosis["worst"]:
        out += ["", "| step | statistic | z |", "|---|---|---|"]
        out += [f"| {r['step']} | {r['statistic']} | {r['z']:.2f} |" for r in diagnosis["worst"]]
    return out


def diagnosis_figure(diagnosis: dict, path: Path) -> Path:
    """Per-step z-scores of the norm, the mean and the worst projection series, with the threshold."""
    import matplotlib.pyplot as plt

    series = diagnosis["per_step"]
    proj = {k: np.asarray(v) for k, v in series.items() if k not in ("norm", "mean")}
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for name in ("norm", "mean"):
        ax.plot(series[name], lw=1, label=name)
    if proj:
        worst = max(proj, key=lambda k: np.abs(proj[k]).max())
        ax.plot(proj[worst], lw=1, label=f"{worst} (worst projection)")
    thr = diagnosis["threshold_z"]
    for y in (thr, -thr):
        ax.axhline(y, color="k", ls="--", lw=0.8)
    ax.set_xlabel("chain step k")
    ax.set_ylabel("z-score")
    ax.set_title("innovations per step (dashed: Bonferroni threshold)", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
