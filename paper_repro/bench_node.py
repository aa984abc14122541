"""CPU cost of one verifier node, side by side: the reflection coupling, D-GRS and rank selection (its three
weightings) on the same inputs, in one run.

What is measured
    Each rule's kernel-level coupling (``reflection_coupling`` on one draft; ``dgrs_coupling`` and
    ``rank_coupling`` on K drafts, the multi-draft contract of ``docs/contract-kernel.md``) on a batch of B nodes:
    mean_p ~ N(0, I_d), mean_q = mean_p + s * N(0, I_d) / sqrt(d) with s = 1 (|D| about 1), sigma = 1, float64.
    The rules run in turn, ``--repeats`` times, interleaved (rule order rotated each repeat), after one untimed
    warm-up call each (the LP of rank's weights is solved and cached there). Reported: median milliseconds per call
    with min-max over the repeats, and the ratio to the reflection coupling's median. Every number is measured by
    this run; the machine's load average is printed with it (other processes slow every column).

This is the verifier's own cost, not a round's: a round adds the target call (which a multi-draft tree makes
1 + K L rows wide) and the drafts. ``paper_repro/multidraft.py`` times whole runs on a simulated accelerator.

    python paper_repro/bench_node.py                 # B = 16, 256, 4096; K = 4; d = 2 and 64
    python paper_repro/bench_node.py --smoke         # tiny, for the tests
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

from specverify.sampler.coupling import reflection_coupling
from specverify.sampler.verifiers import dgrs_coupling, rank_coupling

RULES = ("reflection", "dgrs", "rank", "rank-max", "rank-uniform")


def inputs(batch: int, drafts: int, dim: int, seed: int) -> dict:
    """One batch of nodes (see the module docstring), float64."""
    g = torch.Generator().manual_seed(seed)
    mean_p = torch.randn(batch, dim, generator=g, dtype=torch.float64)
    mean_q = mean_p + torch.randn(batch, dim, generator=g, dtype=torch.float64) / dim**0.5
    z = torch.randn(batch, drafts, dim, generator=g, dtype=torch.float64)
    u = torch.rand(batch, drafts + 1, generator=g, dtype=torch.float64)
    return {"mean_p": mean_p, "mean_q": mean_q, "means_q": mean_q[:, None].expand(-1, drafts, -1).contiguous(),
            "sigma": torch.ones(batch, dtype=torch.float64), "z": z, "u": u}


def call(rule: str, x: dict):
    """One call of ``rule``'s coupling on the nodes ``x``."""
    if rule == "reflection":
        return reflection_coupling(x["mean_p"], x["mean_q"], x["sigma"], x["z"][:, 0], x["u"][:, 0])
    args = (x["mean_p"], x["means_q"], x["sigma"], x["z"], x["u"])
    if rule == "dgrs":
        return dgrs_coupling(*args)
    return rank_coupling(*args, weights={"rank": "lp", "rank-max": "max", "rank-uniform": "uniform"}[rule])


def measure(x: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each rule, ``repeats`` interleaved rounds after one warm-up call each."""
    for rule in RULES:
        call(rule, x)
    out = {rule: [] for rule in RULES}
    for r in range(repeats):
        for rule in RULES[r % len(RULES):] + RULES[:r % len(RULES)]:
            t0 = time.perf_counter()
            call(rule, x)
            out[rule].append(time.perf_counter() - t0)
    return out


def rows(batches, dims, drafts: int, repeats: int, seed: int) -> list[dict]:
    out = []
    for dim in dims:
        for batch in batches:
            times = measure(inputs(batch, drafts, dim, seed), repeats)
            base = statistics.median(times["reflection"])
            for rule, t in times.items():
                med = statistics.median(t)
                out.append({"batch": batch, "dim": dim, "drafts": 1 if rule == "reflection" else drafts,
                            "rule": rule, "median_ms": 1e3 * med, "min_ms": 1e3 * min(t), "max_ms": 1e3 * max(t),
                            "ratio": med / base})
    return out


def markdown(res: dict) -> str:
    lines = [f"torch threads {res['threads']}, load average {res['load']}, {res['repeats']} interleaved repeats; "
             "ratio = the rule's median over the reflection coupling's (same B and d).", "",
             "| B | d | rule | K | median ms | min-max ms | ratio |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['batch']} | {r['dim']} | {r['rule']} | {r['drafts']} | {r['median_ms']:.3f} | "
              f"{r['min_ms']:.3f}-{r['max_ms']:.3f} | {r['ratio']:.1f} |" for r in res["rows"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", default="16,256,4096")
    ap.add_argument("--dims", default="2,64")
    ap.add_argument("--drafts", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--smoke", action="store_true", help="B = 8, d = 2, 3 repeats")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--markdown", type=Path, help="the table as a page, with the command that made it")
    args = ap.parse_args(argv)
    if args.smoke:
        args.batches, args.dims, args.repeats = "8", "2", 3
    batches, dims = [int(b) for b in args.batches.split(",")], [int(d) for d in args.dims.split(",")]
    res = {"threads": torch.get_num_threads(), "load": [round(v, 2) for v in os.getloadavg()],
           "repeats": args.repeats, "rows": rows(batches, dims, args.drafts, args.repeats, args.seed)}
    print(markdown(res), end="")
    if args.json:
        args.json.write_text(json.dumps(res, indent=2) + "\n")
    if args.markdown:
        command = "python paper_repro/bench_node.py " + " ".join(argv if argv is not None else sys.argv[1:])
        head = ("# One verifier node's CPU cost, side by side\n\nGenerated by `paper_repro/bench_node.py`; every "
                f"figure below was measured by:\n\n    {command}\n\n")
        args.markdown.write_text(head + markdown(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
