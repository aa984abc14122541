"""Profile of one speculative round against one plain step: torch operations and wall time per unit.

Runs ``plain_sample`` and ``speculative_sample`` (batch 1 by default) on one built-in chain and prints, for each:
the top-level torch operations (``torch.profiler``, CPU) per plain step and per speculative round, the most
frequent ones, and the median wall time per step / per round over ``--repeats`` interleaved runs. Only the public
API is used, so the same script profiles any checkout (e.g. ``git stash; git checkout <before>``), which is how
a before / after comparison is made: run it on both and put the two outputs side by side.

    python paper_repro/profile_round.py --model digits --drafter frozen-denoiser --window 8
"""

from __future__ import annotations

import argparse
import collections
import inspect
import statistics
import time

import torch
from torch.profiler import ProfilerActivity, profile

from specverify.sampler.bench import build_chain
from specverify.sampler.drafters import make_drafter
from specverify.sampler.speculative import plain_sample, speculative_sample


def _ops(fn):
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        out = fn()
    events = [e for e in prof.events() if e.name.startswith("aten::") and e.cpu_parent is None]
    return out, events


def _options_kw(args) -> dict:
    """The run's policy and compile as this checkout takes them: in ``options=SampleOptions(...)``, as keywords
    (older checkouts), or not at all (checkouts without them)."""
    known = inspect.signature(speculative_sample).parameters
    opts = ({"policy": args.policy} if args.policy else {}) | ({"compile": True} if args.compile else {})
    if "options" in known:
        from specverify.sampler.options import SampleOptions

        return {"options": SampleOptions(**opts)} if opts else {}
    return {k: v for k, v in opts.items() if k in known}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="digits", choices=("digits", "gmm", "mlp"))
    ap.add_argument("--steps", type=int, default=250)
    ap.add_argument("--dim", type=int, default=64, help="gmm / mlp dimension")
    ap.add_argument("--drafter", default="frozen-denoiser")
    ap.add_argument("--window", type=int, default=8)
    ap.add_argument("--policy", default=None, help="round policy (checkouts that have one)")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--compile", action="store_true", help="compile=True (checkouts that have it): the torch ops "
                    "counted are then those left outside the compiled core")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    chain = build_chain(args.model, args.steps, args.dim, width=256, depth=3, seed=0).to(dtype=torch.float32)
    drafter = make_drafter(args.drafter)
    kw = _options_kw(args)

    def plain():
        return plain_sample(chain, args.batch, seed=0)

    def spec():
        return speculative_sample(chain, drafter, args.batch, window=args.window, seed=0, **kw)

    plain(), spec()  # warm-up
    _, plain_ev = _ops(plain)
    (_, st), spec_ev = _ops(spec)
    units = {"plain step": (plain_ev, chain.n_steps), "speculative round": (spec_ev, st.rounds_total)}
    print(f"profile: {args.model} ({chain.n_steps} steps), {args.drafter}, L={args.window}, batch {args.batch}, "
          f"{args.policy or 'default policy'}{', compiled' if args.compile else ''}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    for name, (ev, n) in units.items():
        top = collections.Counter(e.name.removeprefix("aten::") for e in ev).most_common(8)
        print(f"  {name:<18} {len(ev) / n:7.1f} torch ops   most frequent: "
              + ", ".join(f"{k} {v / n:.1f}" for k, v in top))
    times = {"plain": [], "spec": []}
    for _ in range(args.repeats):
        for key, fn in (("plain", plain), ("spec", spec)):
            t0 = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - t0)
    step = statistics.median(times["plain"]) / chain.n_steps
    rnd = statistics.median(times["spec"]) / st.rounds_total
    spread = max(max(t) / min(t) for t in times.values())
    print(f"  wall: {step * 1e3:.3f} ms per plain step, {rnd * 1e3:.3f} ms per round (round cost {rnd / step:.2f} "
          f"plain steps), nfe_ratio {st.nfe_ratio:.2f}, wall ratio {statistics.median(times['plain']) / statistics.median(times['spec']):.2f}"
          f"; median of {args.repeats}, slowest/fastest x{spread:.2f}")


if __name__ == "__main__":
    main()
