"""Join the pages that ``calibrate.py --n auto --n-perm sequential --steps 100`` wrote (one run per configuration
and alpha, each with its ``--json`` beside its ``--markdown``) into one page with a summary table read from the JSON:

    python paper_repro/calibration_sized.py theory/calibration_sized.md law_0.05.md law_0.01.md two_0.05.md ...
    python paper_repro/calibration_sized.py --title "..." --note "..." theory/calibration_screen.md two_0.05.md ...

With ``--keep PAGE`` (a page this script wrote), a named run whose page and JSON are not here is carried over from
PAGE unchanged: its summary row and its section (a new run then joins the earlier ones without rerunning them).
"""
import argparse
import json
from pathlib import Path


def summary_row(r: dict) -> str:
    workers = f" ({r['workers']} workers)" if r.get("workers", 1) > 1 else ""
    perms = "-" if r["permutations_median"] is None else f"{r['permutations_median']:.0f} / {r['permutations_max']}"
    return (f"| {r['config']} ({r['problem']} d={r['dim']}, {r['steps']} steps) | {r['alpha']} | {r['n']} | "
            f"{r['replicates']} | {r['rejections']} | [{r['ci99_low']:.4f}, {r['ci99_high']:.4f}] | "
            f"{'yes' if r['alpha_inside_ci'] else 'NO'} | {perms} | {r['seconds'] / r['replicates']:.1f}{workers} |")


def kept_runs(page: Path) -> dict[str, tuple[list[str], str]]:
    """Run name -> (summary rows, section) of an earlier page of this script (rows and sections in one order)."""
    head, *sections = page.read_text().split("\n## Run: ")
    rows = [ln for ln in head.splitlines() if ln.startswith("| ") and not ln.startswith("| configuration")]
    if len(rows) != len(sections):
        raise SystemExit(f"error: {page} has {len(rows)} summary rows for {len(sections)} runs; regenerate it")
    return {s.split("\n", 1)[0].strip(): ([r], "## Run: " + s) for r, s in zip(rows, sections, strict=True)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("pages", type=Path, nargs="+")
    ap.add_argument("--title", default="Calibration at the default sizing (n from alpha, 100 steps)")
    ap.add_argument("--note", default="", help="a paragraph after the standard introduction")
    ap.add_argument("--keep", type=Path, help="an earlier page of this script: runs named here but absent come from it")
    args = ap.parse_args(argv)
    out, pages = args.out, args.pages
    kept = kept_runs(args.keep) if args.keep else {}
    runs = []  # (summary rows, section) per page, in the order given
    for p in pages:
        if p.exists():
            section = p.read_text().replace("\n## ", "\n### ").replace("# Calibration of the suite under the null",
                                                                       "## Run: " + p.stem, 1)
            runs.append(([summary_row(r) for r in json.loads(p.with_suffix(".json").read_text())], section))
        elif p.stem in kept:
            runs.append(kept[p.stem])
        else:
            raise SystemExit(f"error: {p} does not exist" + (f" and {args.keep} has no run {p.stem}" if kept else ""))
    lines = ["| configuration | alpha | n (sized) | replicates | rejections | 99% Clopper-Pearson | holds alpha? | "
             "permutations (median / max) | wall s per replicate |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [row for rows, _ in runs for row in rows]
    carried = ", ".join(p.stem for p in pages if not p.exists())
    carried = f" (runs carried over unchanged from the page's previous version: {carried})" if carried else ""
    intro = f"""# {args.title}

`--n auto` sizes n as `specverify check` does (from alpha, beta = 0.05, epsilon = 0.05 and the number of tests);
`--n-perm sequential` is the sequential permutation engine that `check` uses by default. The n = 500, 20-step
runs are in [calibration.md](calibration.md). The summary below is read from the runs' JSON by
`paper_repro/calibration_sized.py`{carried}; each section after it
is the page `paper_repro/calibrate.py` wrote for one run, with its command, unedited apart from its headings. Runs
with fewer than 1000 replicates have wider intervals (their cost per replicate is in the last column; with
`--workers 2` it is the wall time over the replicates, two running at once).

{args.note}

""" + "\n".join(lines) + "\n"
    out.write_text("\n".join([intro] + [section for _, section in runs]))
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
