"""The acceptance-rate study (`specverify accept`): per drafter and window, acceptance per window position, mean
accepted length, rounds and nfe_ratio, each next to its prediction from the logged |D| values, with intervals.

Predictions: the acceptance rate is the mean of 2 Phi(-|D| / 2) over the verified steps (exact in expectation:
``theory/coupling.md``); the accepted length and the rounds come from the dynamic program of
:func:`specverify.harness.predictions.round_moments` fed with the logged probabilities per (chain step, window position),
which assumes acceptances independent given the position (exact for the stress and oracle drafters, an
approximation for state-dependent drafters: ``theory/rounds.md``). Intervals: Clopper-Pearson for rates (the
pooled steps treated as trials: descriptive), Student t over trajectories for per-trajectory means, with a spread
of at least the predicted one (runs where a rare event never shows would otherwise get an empty interval).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import numpy as np
from scipy import stats

from specverify.harness.predictions import round_moments
from specverify.harness.stats.sizing import binomial_interval

__all__ = ["CONFIDENCE", "Study", "acceptance_row", "run_study"]

CONFIDENCE = 0.99


@dataclasses.dataclass(frozen=True)
class Study:
    """An acceptance study's grid and sample: every drafter of ``drafters`` (by name) x window of ``windows`` x
    round policy of ``policies`` (side by side, in the order given), with the ``verifier`` and its ``drafts`` per
    window's first position; ``n`` trajectories per row at ``seed``; intervals at ``confidence``."""

    drafters: Sequence[str]
    windows: Sequence[int]
    n: int
    seed: int = 0
    policies: Sequence[str] = ("accepted+1",)
    verifier: str = "reflection"
    drafts: int = 1
    confidence: float = CONFIDENCE

    def ours(self, drafter: str, window: int, policy: str):
        """The sampler of one row (``bridge.Ours``)."""
        from specverify.bridge import Ours

        return Ours(drafter=drafter, window=window, policy=policy, verifier=self.verifier, drafts=self.drafts)


def _inside(x: float, lo: float, hi: float) -> bool:
    tol = 1e-9 * max(1.0, abs(lo), abs(hi))  # a degenerate interval (no spread) holds its own value
    return bool(lo - tol <= x <= hi + tol)


def _t_interval(v: np.ndarray, confidence: float, model_var: float = 0.0) -> tuple[float, float, float]:
    """Mean and Student t interval over trajectories; the spread is at least the predicted one (``model_var``),
    so that a run whose trajectories happen to agree exactly (rare events not seen) still gets a fair interval."""
    v = np.asarray(v, dtype=np.float64)
    m = float(v.mean())
    var = max(float(v.var(ddof=1)) if v.size > 1 else 0.0, float(model_var))
    if v.size < 2 or var == 0:
        return m, m, m
    h = stats.t.ppf(0.5 + confidence / 2, v.size - 1) * np.sqrt(var / v.size)
    return m, m - h, m + h


def _var(v) -> float:
    v = np.asarray(v, dtype=np.float64)
    return float(v.var(ddof=1)) if v.size > 1 else float("nan")


def _cell_probs(ver: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Acceptance probability per (chain step, window position) from logged counts. A cell no window visited
    borrows its own position's ratio over the nearest steps (half-width 1, 2, 4, ... until one was visited):
    acceptance falls along the window, so a position's neighbours are the right stand-in (the step's mean over
    positions would be dominated by the early positions and overstate the late ones)."""
    T = ver.shape[0]
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(ver > 0, pred / np.where(ver > 0, ver, 1), np.nan)
        cv = np.vstack([np.zeros((1, ver.shape[1])), np.cumsum(ver, 0)])
        cp = np.vstack([np.zeros((1, ver.shape[1])), np.cumsum(pred, 0)])
        k = np.arange(T)
        h = 1
        while np.isnan(p).any() and h < 2 * T:
            lo, hi = np.clip(k - h, 0, T), np.clip(k + h + 1, 0, T)
            v, q = cv[hi] - cv[lo], cp[hi] - cp[lo]
            p = np.where(np.isnan(p) & (v > 0), q / np.where(v > 0, v, 1), p)
            h *= 2
        by_step = pred.sum(1) / ver.sum(1)  # a position never visited at all: the step's mean
    p = np.where(np.isnan(p), by_step[:, None], p)
    return np.clip(np.nan_to_num(p, nan=1.0), 0.0, 1.0)


def _step_probs(st) -> np.ndarray:
    """Logged acceptance probability per (chain step, window position) (see :func:`_cell_probs`)."""
    return _cell_probs(st.verified_per_step, st.predicted_per_step)


def acceptance_row(st, sigma, *, needs_anchor: bool, confidence: float = CONFIDENCE) -> dict:
    """One row of the study from a run's :class:`specverify.sampler.speculative.SpecStats`."""
    a, v = int(st.accepted_per_position.sum()), int(st.verified_per_position.sum())
    lo, hi = binomial_interval(a, v, confidence) if v else (float("nan"), float("nan"))
    pred = st.predicted_acceptance_rate
    mom = round_moments(_step_probs(st), st.window, sigma, needs_anchor=needs_anchor, policy=st.policy)
    rounds, r_lo, r_hi = _t_interval(st.rounds, confidence, mom.rounds_var)
    acc, a_lo, a_hi = _t_interval(st.accepted_per_sample, confidence, mom.accepted_var)
    per_position = []
    for j in range(st.window):
        aj, vj = int(st.accepted_per_position[j]), int(st.verified_per_position[j])
        if vj:
            plo, phi = binomial_interval(aj, vj, confidence)
            per_position.append({"position": j, "verified": vj, "rate": aj / vj, "ci_low": plo, "ci_high": phi,
                                 "predicted": float(st.predicted_accepted_per_position[j] / vj)})
    windows_per_sample = st.windows / st.n_samples
    return {
        "drafter": st.drafter, "window": st.window, "policy": st.policy, "verifier": st.verifier, "drafts": st.drafts,
        "n": st.n_samples,
        "acceptance_rate": a / v if v else float("nan"), "predicted_acceptance_rate": pred,
        "ci_low": lo, "ci_high": hi, "acceptance_inside": bool(v) and _inside(pred, lo, hi),
        "accepted_per_trajectory": acc, "accepted_ci": [a_lo, a_hi],
        "predicted_accepted_per_trajectory": mom.accepted_mean,
        "mean_accepted_length": st.mean_accepted_length,
        "predicted_accepted_length": mom.accepted_mean / mom.windows_mean if mom.windows_mean else float("nan"),
        "windows_per_trajectory": windows_per_sample, "predicted_windows_per_trajectory": mom.windows_mean,
        "rounds_mean": rounds, "rounds_ci": [r_lo, r_hi], "predicted_rounds_mean": mom.rounds_mean,
        "rounds_inside": _inside(mom.rounds_mean, r_lo, r_hi),
        "accepted_inside": _inside(mom.accepted_mean, a_lo, a_hi),
        "nfe_ratio": st.nfe_ratio, "predicted_nfe_ratio": st.n_steps / mom.rounds_mean,
        "target_rows_per_round": st.target_evaluations / max(int(st.rounds.sum()), 1),
        # spread across trajectories against the independent model's: a ratio above 1 means acceptances are
        # positively dependent (rejections cluster), which the rounds prediction ignores (theory/rounds.md)
        "rounds_var": _var(st.rounds), "predicted_rounds_var": float(mom.rounds_var),
        "accepted_var": _var(st.accepted_per_sample), "predicted_accepted_var": float(mom.accepted_var),
        "per_position": per_position,
    }


def run_study(setup, study: Study, options=None, *, medusa_train: dict | None = None) -> list[dict]:
    """Run our speculative sampler for every row of ``study`` on a built-in ``setup``; one row each. ``options``:
    how it runs (``bridge.registry.SampleOptions``: device, dtype, progress; default float64 on CPU);
    ``medusa_train``: see ``bridge.make_builtin_drafter``."""
    from specverify.bridge import Built, make_builtin_drafter, run_ours

    chain = setup.chain()
    rows = []
    for name in study.drafters:
        for window in study.windows:
            drafter = make_builtin_drafter(setup, name, window, medusa_train=medusa_train)
            for policy in study.policies:
                t0 = time.perf_counter()
                _, st = run_ours(setup, study.ours(name, window, policy), study.n, study.seed, options,
                                 Built(chain, drafter))
                row = acceptance_row(st, chain.sigma, needs_anchor=drafter.needs_anchor, confidence=study.confidence)
                row["seconds"] = time.perf_counter() - t0
                rows.append(row)
    return rows


def markdown(result: dict, command: str) -> str:
    """The study's rows as a Markdown table (intervals at ``CONFIDENCE``)."""
    out = [f"# Acceptance study: {result['problem']} d={result['dim']}, {result['steps']} steps, n={result['n']}",
           "", f"Measured by `{command}`.", "",
           "| drafter | L | policy | acceptance [99% CP] | predicted | accepted length | predicted | rounds [99% t] | "
           "predicted | nfe_ratio | predicted |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        flag = "" if r["acceptance_inside"] else " *"
        out.append(f"| {r['drafter']} | {r['window']} | {r['policy']} | {r['acceptance_rate']:.4f} [{r['ci_low']:.4f}, "
                   f"{r['ci_high']:.4f}] | {r['predicted_acceptance_rate']:.4f}{flag} "
                   f"| {r['mean_accepted_length']:.3f} | {r['predicted_accepted_length']:.3f} | {r['rounds_mean']:.2f} "
                   f"[{r['rounds_ci'][0]:.2f}, {r['rounds_ci'][1]:.2f}] | {r['predicted_rounds_mean']:.2f}"
                   f"{'' if r['rounds_inside'] else ' *'} | {r['nfe_ratio']:.3f} | {r['predicted_nfe_ratio']:.3f} |")
    out += ["", "`*`: the prediction lies outside the measured interval."]
    return "\n".join(out) + "\n"


def plots(result: dict, outdir) -> list:
    """Acceptance per window position (measured with intervals, predicted) and rounds, measured vs predicted."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    rows = result["rows"]
    drafters = list(dict.fromkeys(r["drafter"] for r in rows))
    fig, axes = plt.subplots(1, len(drafters), figsize=(4.5 * len(drafters), 3.5), squeeze=False)
    for ax, name in zip(axes[0], drafters, strict=True):
        for r in (r for r in rows if r["drafter"] == name):
            pp = r["per_position"]
            x = [p["position"] for p in pp]
            rate = np.array([p["rate"] for p in pp])
            err = np.array([[p["rate"] - p["ci_low"] for p in pp], [p["ci_high"] - p["rate"] for p in pp]])
            line = ax.errorbar(x, rate, yerr=err, fmt="o", ms=3, capsize=2, label=f"L={r['window']}")
            ax.plot(x, [p["predicted"] for p in pp], "-", color=line[0].get_color(), lw=0.8)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("window position")
        ax.set_ylabel("acceptance (points: measured; lines: predicted)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    paths = [outdir / "acceptance_per_position.png"]
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    for name in drafters:
        sel = [r for r in rows if r["drafter"] == name]
        ax.errorbar([r["predicted_rounds_mean"] for r in sel], [r["rounds_mean"] for r in sel],
                    yerr=np.array([[r["rounds_mean"] - r["rounds_ci"][0] for r in sel],
                                   [r["rounds_ci"][1] - r["rounds_mean"] for r in sel]]), fmt="o", label=name)
    lim = [min(r["predicted_rounds_mean"] for r in rows) * 0.9, max(r["predicted_rounds_mean"] for r in rows) * 1.1]
    ax.plot(lim, lim, "k--", lw=0.8)
    ax.set_xlabel("predicted rounds per trajectory")
    ax.set_ylabel("measured rounds per trajectory")
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths.append(outdir / "rounds_measured_vs_predicted.png")
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths
