"""Wall-clock benchmark: plain vs speculative sampling, side by side on the same model in one run.

What is measured
    For each model, batch size, drafter and window, one full sampling run of ``batch`` samples with
    ``plain_sample`` (one batched target call per chain step) and with ``speculative_sample`` (De Bortoli et al.,
    ICML 2025, Alg. 2), on the same chain object, device, dtype and seed. Timings use ``time.perf_counter``
    (bracketed by ``torch.cuda.synchronize`` on CUDA) after one untimed warm-up run of every configuration; the
    plain and speculative runs are interleaved and each reported time is the median of ``--repeats`` runs.
    torch's thread count is left at its default and printed in the header.

Models (``specverify.sampler.bench``, where the timer and the runs live; this script parses and prints)
    digits  the built-in `digits` network (trained here, cached; 250 DDPM steps by default), 1 x 8 x 8.
    gmm  the built-in closed-form `gmm` problem (DDPM, linear schedule, eps-prediction). Its model is a few
         vector operations, so both samplers spend their time in per-step Python and dispatch overhead.
    mlp  a "heavy" eps-model: a deterministic, randomly initialised (seeded, untrained) MLP of ``--depth``
         linear layers of width ``--width`` with a sinusoidal time embedding, last layer scaled by 0.1, added
         to the exact eps of N(0, I) data, sqrt(1 - abar_t) x, so that the states stay O(1); wrapped as
         ``ddpm(model, beta_schedule("linear", steps), (dim,))``. Every call runs the full MLP.

Round policies (``--policies``, both by default, side by side): accepted+1 (the sampler's default: every round
commits accepted + 1 steps) and window-start (``theory/rounds.md``).

Simulated accelerator (``--latency-ms``, default 0 and 5): every target call of BOTH samplers first sleeps that
long (``specverify.sampler.bench.Latency``), modelling a device with idle parallel capacity at small batch. Rows
with latency > 0 are a SIMULATION and the table says so.

nfe table (``--nfe``): the acceptance study (``specverify accept``) on digits and gmm, every drafter, windows 1 to
16, both policies: acceptance, rounds and nfe_ratio next to their predictions (``theory/rounds.md``).

Columns
    latency_ms        the simulated per-call latency (0: the real model only).
    plain_s / spec_s  median wall seconds of one sampling run.
    wall_ratio        plain_s / spec_s; above 1 means speculative sampling was faster on this machine.
    nfe_ratio         ``SpecStats.nfe_ratio`` = steps / (mean over samples of the rounds in which a sample
                      needed the target): the paper's sequential-call saving per sample. It ignores the batch and
                      the cost of a call.
    call_ratio        steps / ``SpecStats.rounds_total``: sequential batched target calls of plain over
                      speculative for the whole batch, which waits for its slowest sample (so call_ratio <=
                      nfe_ratio).
    accept            ``SpecStats.acceptance_rate``: accepted over verified drafted steps.
    round_cost        (spec_s / rounds_total) / (plain_s / steps): the wall time of one speculative round in
                      units of one plain step, so that wall_ratio = call_ratio / round_cost exactly.
    call_cost         one target call on batch x (window + 1) states, timed alone (interleaved with the runs), in
                      plain steps: what a round would cost if the sampler did nothing but its call. It is measured
                      at the full batch; at batch 256 the batch is compacted once half of it has finished, so
                      there it is an upper bound of the call's share.
    overhead          round_cost - call_cost: the sampler's own work per round (drafting, coupling, commit,
                      tally, the host read), in plain steps.
    wall/call         wall_ratio / call_ratio = 1 / round_cost: the share of the call saving that reaches the
                      wall clock. It is below 1 by the call's growth with the batch (call_cost - 1) and by the
                      overhead.

How to read the ratios
    wall_ratio = call_ratio / round_cost. A round evaluates the target on up to batch x (window + 1) states in
    one call and adds drafting and coupling bookkeeping (tens of small tensor operations per drafted step).
    With a cheap model every call costs a fixed dispatch overhead (plain_s hardly grows with the batch; the
    footer prints by how much), so round_cost measures that bookkeeping, not saved model calls. With a heavy
    model on hardware that a batch does not saturate, a round costs about one plain step and wall_ratio tends
    to call_ratio; once the hardware is saturated (large batches on a CPU) a round costs up to window + 1
    plain steps and speculation can be slower in wall-clock time even with nfe_ratio well above 1.

Run ``python paper_repro/bench_sampler.py`` (about 30 s on 2 idle CPU cores) or ``--smoke`` (seconds, for CI).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from specverify.sampler.bench import MODELS, Timing, bench_one, build_chain, with_latency
from specverify.specs import ROUND_POLICIES

DEFAULTS = dict(batch_sizes=[1, 16, 256], repeats=3, width=1024, latency_ms=[0.0, 5.0])
SMOKE = dict(steps=20, batch_sizes=[1, 16], repeats=1, width=128, latency_ms=[0.0, 1.0])
STEPS = {"digits": 250, "gmm": 100, "mlp": 100}  # default chain steps per model
FOOTER = {
    "digits": "digits: the trained 8x8 network, batch 1 is dispatch-bound on a CPU (a round's bookkeeping matters).",
    "gmm": "gmm: cheap closed-form model, so wall-clock is overhead-bound (fixed dispatch cost per call): "
           "wall_ratio measures the samplers' bookkeeping, not saved model calls.",
    "mlp": "mlp: heavy eps-model; wall_ratio approaches call_ratio only while a round of batch x (window + 1) "
           "states costs about one plain step (round_cost ~ 1), and falls below it once the batch saturates "
           "the device.",
}

COLUMNS = [("model", "{:<6}"), ("latency_ms", "{:>10.1f}"), ("batch", "{:>5}"), ("drafter", "{:<15}"),
           ("window", "{:>6}"), ("policy", "{:<12}"), ("compiled", "{!s:<8}"),
           ("plain_s", "{:>9.4f}"), ("spec_s", "{:>9.4f}"), ("wall_ratio", "{:>10.2f}"), ("nfe_ratio", "{:>9.2f}"),
           ("call_ratio", "{:>10.2f}"), ("acceptance_rate", "{:>6.3f}"), ("round_cost", "{:>10.2f}"),
           ("call_cost", "{:>9.2f}"), ("overhead", "{:>8.2f}"), ("wall_per_call", "{:>9.2f}")]
HEADERS = {"acceptance_rate": "accept", "wall_per_call": "wall/call"}


def format_table(rows: list[dict]) -> str:
    widths = [len(fmt.format(rows[0][key])) if rows else 8 for key, fmt in COLUMNS]
    head = "  ".join(HEADERS.get(key, key).rjust(w) if ">" in fmt else HEADERS.get(key, key).ljust(w)
                     for (key, fmt), w in zip(COLUMNS, widths, strict=True))
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append("  ".join(fmt.format(r[key]) for key, fmt in COLUMNS))
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    p.add_argument("--policies", nargs="+", choices=ROUND_POLICIES, default=list(ROUND_POLICIES))
    p.add_argument("--latency-ms", nargs="+", type=float,
                   help="simulated per-call latency of the target, ms (default 0 5; smoke: 0 1)")
    p.add_argument("--compile", action="store_true",
                   help="also time each configuration with compile=True (torch.compile of the round; its "
                        "compilation is the warmup_s column, left out of spec_s)")
    p.add_argument("--nfe", action="store_true", help="also print the nfe_ratio table (measured vs predicted)")
    p.add_argument("--nfe-n", type=int, default=500, help="trajectories per row of the nfe table")
    p.add_argument("--batch-sizes", nargs="+", type=int, help="default 1 16 256 (smoke: 1 16)")
    p.add_argument("--drafters", nargs="+", choices=("frozen-drift", "frozen-denoiser", "oracle"),
                   default=["frozen-drift", "frozen-denoiser"])
    p.add_argument("--windows", nargs="+", type=int, default=[8], help="drafted steps per window (default 8)")
    p.add_argument("--steps", type=int, help="chain steps (default: digits 250, gmm and mlp 100; smoke: 20)")
    p.add_argument("--dim", type=int, help="data dimension for every model (default 2 for gmm, 64 for mlp)")
    p.add_argument("--width", type=int, help="MLP width (default 1024, smoke: 128)")
    p.add_argument("--depth", type=int, default=4, help="MLP linear layers (default 4)")
    p.add_argument("--repeats", type=int, help="timed runs per configuration, median reported (default 3)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (every run) and MLP init seed")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--json", type=Path, help="also write every row (and the settings) here as JSON")
    p.add_argument("--markdown", type=Path, help="also write the table here as a Markdown page")
    p.add_argument("--render", type=Path, metavar="JSON",
                   help="measure nothing: write --markdown from the JSON of an earlier run")
    p.add_argument("--smoke", action="store_true",
                   help="tiny sizes for CI: steps 20, batches 1 16, repeats 1, MLP width 128")
    return p


def main(argv: list[str] | None = None) -> list[dict]:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.render is not None:
        if args.markdown is None:
            parser.error("--render needs --markdown")
        report = json.loads(args.render.read_text())
        args.markdown.write_text(markdown(report))
        return report["rows"]
    for key, value in (SMOKE if args.smoke else DEFAULTS).items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if (args.steps is not None and args.steps < 1) or args.repeats < 1 or min(args.batch_sizes) < 1 \
            or min(args.windows) < 1 or min(args.latency_ms) < 0:
        parser.error("--steps, --repeats, --batch-sizes and --windows must be >= 1, --latency-ms >= 0")
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was asked for but torch sees no CUDA device; use --device cpu")
    dtype = getattr(torch, args.dtype)
    if args.compile:  # each (model, drafter, policy) compiles its own round core: more than dynamo's default
        # limit of 8 per function, past which the later configurations would silently run eager
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, 64)
    configs = [(name, w, pol, c) for name in args.drafters for w in args.windows for pol in args.policies
               for c in ((False, True) if args.compile else (False,))]

    print(f"bench_sampler: torch {torch.__version__}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f", {torch.get_num_threads()} threads, {args.dtype}, repeats {args.repeats} "
          f"(median), seed {args.seed}", flush=True)
    rows = _wall_rows(args, configs, device, dtype)
    print()
    print(format_table(rows))
    if any(r["latency_ms"] > 0 for r in rows):
        print("latency_ms > 0: SIMULATED accelerator (every target call of both samplers sleeps that long first).")
    print()
    for model in args.models:
        shapes = sorted({(r["dim"], r["chain"]) for r in rows if r["model"] == model})
        extra = f" [{', '.join(f'{c}, d={d}' for d, c in shapes)}]"
        if model == "mlp":
            extra += f" [width {args.width}, depth {args.depth}]"
        print(FOOTER[model] + extra)
        plain = {r["batch"]: r["plain_s"] for r in rows if r["model"] == model}
        lo, hi = min(plain), max(plain)
        if hi > lo:
            print(f"  measured: {model} plain_s grows x{plain[hi] / plain[lo]:.2f} from batch {lo} to batch {hi}.")
    print("wall_ratio = plain_s / spec_s (> 1: speculative faster); nfe_ratio = steps / mean rounds per sample; "
          "call_ratio = steps / batched rounds.")
    if args.repeats > 1:
        spread = max(max(ts) / min(ts) for r in rows for ts in (r["plain_times_s"], r["spec_times_s"]))
        print(f"timing spread: the slowest of {args.repeats} repeats is at most x{spread:.2f} the fastest"
              + (" -- the machine was busy; rerun on an idle machine before trusting the ratios." if spread > 1.5
                 else "."))
    nfe = _nfe_table(args) if args.nfe else []
    meta = dict(torch=torch.__version__, device=str(device), threads=torch.get_num_threads(), dtype=args.dtype,
                steps=args.steps, repeats=args.repeats, seed=args.seed, width=args.width, depth=args.depth,
                batch_sizes=args.batch_sizes, drafters=args.drafters, windows=args.windows, smoke=args.smoke,
                command="python paper_repro/bench_sampler.py " + " ".join(sys.argv[1:] if argv is None else argv))
    for path, text in ((args.json, json.dumps({"settings": meta, "rows": rows, "nfe": nfe}, indent=2) + "\n"),
                       (args.markdown, markdown({"settings": meta, "rows": rows}))):
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return rows


MD_COLUMNS = [("model", "{}"), ("latency_ms", "{:g}"), ("batch", "{}"), ("drafter", "{}"), ("policy", "{}"),
              ("compiled", "{}"), ("plain_s", "{:.4f}"), ("spec_s", "{:.4f}"), ("wall_ratio", "{:.2f}"),
              ("nfe_ratio", "{:.2f}"), ("call_ratio", "{:.2f}"), ("round_cost", "{:.2f}"), ("call_cost", "{:.2f}"),
              ("overhead", "{:.2f}"), ("wall_per_call", "{:.2f}")]


def markdown(report: dict) -> str:
    """A page with the run's settings, its command and every row; latency rows are labelled a simulation."""
    meta, rows = report["settings"], report["rows"]
    spread = max((max(ts) / min(ts) for r in rows for ts in (r["plain_times_s"], r["spec_times_s"])), default=1)
    head = [(HEADERS | {"latency_ms": "latency ms"}).get(h, h) for h, _ in MD_COLUMNS]
    lines = ["# Wall clock: plain against speculative, side by side", "",
             f"Generated by `{meta.get('command', 'python paper_repro/bench_sampler.py')}` (torch {meta['torch']}, "
             f"{meta['device']}, {meta['threads']} threads, {meta['dtype']}, median of {meta['repeats']} "
             f"interleaved repeats; the slowest repeat is at most x{spread:.2f} the fastest). Every number below "
             "was measured by that command.", "",
             "**Rows with latency > 0 are a SIMULATION**: every target call of both samplers first sleeps that long "
             "(`specverify.sampler.bench.Latency`), on top of the model's own compute.", "",
             "round cost = seconds per round / seconds per plain step; call cost = one target call on batch x "
             "(window + 1) states timed alone, in plain steps; overhead = round cost - call cost, the sampler's own "
             "work; wall/call = wall ratio / call ratio = 1 / round cost. Column meanings: "
             "`paper_repro/bench_sampler.py --help`.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join(fmt.format(r[k]) for k, fmt in MD_COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def _wall_rows(args, configs, device, dtype) -> list[dict]:
    rows = []
    for model in args.models:
        dim = args.dim if args.dim is not None else {"digits": 64, "gmm": 2, "mlp": 64}[model]
        steps = args.steps or STEPS[model]
        base = build_chain(model, steps, dim, width=args.width, depth=args.depth, seed=args.seed)
        for latency in args.latency_ms:
            chain = with_latency(base, latency / 1e3) if latency > 0 else base
            for batch in args.batch_sizes:
                new = bench_one(model, chain, batch, configs, Timing(args.seed, args.repeats, device, dtype))
                for r in new:
                    r["latency_ms"] = latency
                    print(f"  measured {model} +{latency:g}ms batch={batch} {r['drafter']} L={r['window']} "
                          f"{r['policy']}: plain {r['plain_s']:.4f}s spec {r['spec_s']:.4f}s", file=sys.stderr,
                          flush=True)
                rows += new
    return rows


def _nfe_table(args) -> list[dict]:
    """The acceptance study on digits and gmm, both policies: measured next to predicted."""
    from specverify import study
    from specverify.bridge import make_setup

    windows = [1, 2, 4, 8, 16] if not args.smoke else [1, 4]
    out = []
    for name in ("digits", "gmm"):
        setup = make_setup(name, steps=args.steps or STEPS.get(name, 100))
        drafters = ["frozen-drift", "frozen-denoiser", "independent"] + (["medusa"] if not args.smoke else [])
        rows = study.run_study(setup, study.Study(drafters, windows, args.nfe_n, args.seed, args.policies))
        print(f"\nnfe table: {name}, {setup.chain().n_steps} steps, n = {args.nfe_n} per row (rounds: 99% t interval)")
        print(f"  {'drafter':<16}{'L':>3} {'policy':<13}{'accept':>7} {'pred':>6}  {'rounds [99%]':>20} {'pred':>7}"
              f"  {'nfe':>5} {'pred':>5}")
        for r in rows:
            lo, hi = r["rounds_ci"]
            print(f"  {r['drafter']:<16}{r['window']:>3} {r['policy']:<13}{r['acceptance_rate']:>7.3f} "
                  f"{r['predicted_acceptance_rate']:>6.3f}  {r['rounds_mean']:>7.2f} [{lo:>6.2f},{hi:>6.2f}] "
                  f"{r['predicted_rounds_mean']:>7.2f}{' ' if r['rounds_inside'] else '*'} {r['nfe_ratio']:>5.2f} "
                  f"{r['predicted_nfe_ratio']:>5.2f}")
        out += [{"problem": name, **{k: v for k, v in r.items() if k != "per_position"}} for r in rows]
    return out


if __name__ == "__main__":
    main()
