"""Join the pages that ``calibrate.py --n auto --n-perm sequential --steps 100`` wrote (one run per configuration
and alpha, each with its ``--json`` beside its ``--markdown``) into one page with a summary table read from the JSON:

    python paper_repro/calibration_sized.py theory/calibration_sized.md law_0.05.md law_0.01.md two_0.05.md ...
    python paper_repro/calibration_sized.py --title "..." --note "..." theory/calibration_screen.md two_0.05.md ...
"""
import argparse
import json
from pathlib import Path

ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("out", type=Path)
ap.add_argument("pages", type=Path, nargs="+")
ap.add_argument("--title", default="Calibration at the default sizing (n from alpha, 100 steps)")
ap.add_argument("--note", default="", help="a paragraph after the standard introduction")
args = ap.parse_args()
out, pages = args.out, args.pages
rows = [r for p in pages for r in json.loads(p.with_suffix(".json").read_text())]
lines = ["| configuration | alpha | n (sized) | replicates | rejections | 99% Clopper-Pearson | holds alpha? | "
         "permutations (median / max) | wall s per replicate |", "|---|---|---|---|---|---|---|---|---|"]
for r in rows:
    workers = f" ({r['workers']} workers)" if r.get("workers", 1) > 1 else ""
    perms = "-" if r["permutations_median"] is None else f"{r['permutations_median']:.0f} / {r['permutations_max']}"
    lines.append(f"| {r['config']} ({r['problem']} d={r['dim']}, {r['steps']} steps) | {r['alpha']} | {r['n']} | "
                 f"{r['replicates']} | {r['rejections']} | [{r['ci99_low']:.4f}, {r['ci99_high']:.4f}] | "
                 f"{'yes' if r['alpha_inside_ci'] else 'NO'} | {perms} | {r['seconds'] / r['replicates']:.1f}"
                 f"{workers} |")
intro = f"""# {args.title}

`--n auto` sizes n as `specverify check` does (from alpha, beta = 0.05, epsilon = 0.05 and the number of tests);
`--n-perm sequential` is the sequential permutation engine that `check` uses by default. The n = 500, 20-step
runs are in [calibration.md](calibration.md). The summary below is read from the runs' JSON by
`paper_repro/calibration_sized.py`; each section after it
is the page `paper_repro/calibrate.py` wrote for one run, with its command, unedited apart from its headings. Runs
with fewer than 1000 replicates have wider intervals (their cost per replicate is in the last column; with
`--workers 2` it is the wall time over the replicates, two running at once).

{args.note}

""" + "\n".join(lines) + "\n"
parts = [intro]
for p in pages:
    parts.append(p.read_text().replace("\n## ", "\n### ").replace("# Calibration of the suite under the null",
                                                                   "## Run: " + p.stem, 1))
out.write_text("\n".join(parts))
