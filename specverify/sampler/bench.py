"""Benchmarks of our sampler: plain against speculative on one chain, timed side by side, and nfe_ratio rows.

- :class:`MLPEps` and :func:`build_chain`: the benchmarked chains (the `gmm` problem's DDPM chain, or DDPM on a
  seeded, untrained MLP of realistic cost).
- :class:`Latency` and :func:`with_latency`: a SIMULATED accelerator: every target call takes a fixed extra time
  (an idle parallel device at small batch, where a call costs its latency whatever the batch).
- :func:`timed`: wall seconds of one call (``time.perf_counter``, CUDA synchronised around it).
- :func:`bench_one`: one (chain, batch): an untimed warm-up of every configuration, then ``repeats`` interleaved
  timed runs (:class:`Timing`) of the plain sampler and of each (drafter, window, policy); medians and the
  sampler's statistics.
  :func:`call_seconds` times the round's one target call alone (batch x (window + 1) states), so that a round's
  cost splits into that call and the sampler's own work (``overhead``).
- :func:`nfe_rows`: steps / mean rounds of the speculative sampler per drafter and window (target calls only).

Everything here is measured when called; nothing is cached.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Iterator

import torch

from specverify.errors import SamplerError
from specverify.sampler.chains import GaussianChain, beta_schedule, ddpm
from specverify.sampler.drafters import make_drafter
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems.gmm import GMMProblem
from specverify.sampler.speculative import plain_sample, speculative_sample

__all__ = ["MODELS", "Latency", "MLPEps", "Timing", "bench_one", "build_chain", "call_seconds", "nfe_rows", "timed",
           "with_latency"]

MODELS = ("digits", "gmm", "mlp")


class Latency(torch.nn.Module):
    """``model(x, k)`` that first waits ``seconds`` (time.sleep): a simulated accelerator with a fixed latency per
    call and idle parallel capacity, so a call on batch x (window + 1) states costs about what a call on one does."""

    def __init__(self, model, seconds: float):
        super().__init__()
        self.inner, self.seconds = model, float(seconds)

    def forward(self, x, k):
        time.sleep(self.seconds)
        return self.inner(x, k)


def with_latency(chain: GaussianChain, seconds: float) -> GaussianChain:
    """The same chain whose every target call takes ``seconds`` more (a simulation: label it so)."""
    return dataclasses.replace(chain, model=Latency(chain.model, seconds), name=f"{chain.name}+{seconds * 1e3:g}ms")


class MLPEps(torch.nn.Module):
    """A deterministic, randomly initialised eps-model ``model(x, t)``: the exact eps of N(0, I) data plus an MLP.

    eps(x, t) = sqrt(1 - abar_t) x + MLP([x, emb(t)]), with a sinusoidal time embedding ``emb`` of ``TIME_DIM``
    features. The MLP is untrained (seeded init): it gives the benchmark a model of realistic cost. Its last layer
    is scaled by ``OUT_SCALE`` so that its output is a small perturbation of the N(0, I) denoiser, under which DDPM
    keeps the states O(1); an MLP alone (eps ~ 0) would make DDPM multiply x by 1 / sqrt(abar_T) and blow up.
    """

    TIME_DIM = 64
    OUT_SCALE = 0.1

    def __init__(self, dim: int, betas, *, width: int = 1024, depth: int = 4, seed: int = 0):
        super().__init__()
        time_dim, out_scale = self.TIME_DIM, self.OUT_SCALE
        if depth < 2:
            raise SamplerError(f"depth must be >= 2 (input and output layers), got {depth}")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            sizes = [dim + time_dim] + [width] * (depth - 1) + [dim]
            layers = []
            for i in range(depth):
                layers.append(torch.nn.Linear(sizes[i], sizes[i + 1], dtype=torch.float64))
                if i < depth - 1:
                    layers.append(torch.nn.SiLU())
            self.net = torch.nn.Sequential(*layers)
        with torch.no_grad():
            self.net[-1].weight.mul_(out_scale)
            self.net[-1].bias.mul_(out_scale)
        half = time_dim // 2
        self.register_buffer("freqs", torch.exp(-math.log(10_000.0) * torch.arange(half, dtype=torch.float64) / half))
        abar = torch.cumprod(1 - torch.as_tensor(betas, dtype=torch.float64), 0)
        self.register_buffer("skip", (1 - abar).sqrt())

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        arg = t.to(x.dtype)[:, None] * self.freqs
        return self.skip[t][:, None] * x + self.net(torch.cat([x, torch.sin(arg), torch.cos(arg)], dim=1))


def build_chain(model: str, steps: int, dim: int, *, width: int, depth: int, seed: int) -> GaussianChain:
    """The benchmarked chain: the `digits` network's or the `gmm` problem's DDPM chain, or DDPM on the random MLP."""
    if model == "digits":
        from specverify.sampler.problems.digits import DigitsProblem

        return DigitsProblem().chain(steps)
    if model == "gmm":
        return GMMProblem(dim=dim).chain(steps)
    if model == "mlp":
        betas = beta_schedule("linear", steps)
        return dataclasses.replace(ddpm(MLPEps(dim, betas, width=width, depth=depth, seed=seed), betas, (dim,)),
                                   name="mlp-ddpm")
    raise SamplerError(f"unknown model {model!r}; choose from {MODELS}")


def timed(fn, device: torch.device | str = "cpu"):
    """(seconds, result) of one call of ``fn``, synchronising CUDA around it."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t0 = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - t0, out


def call_seconds(chain: GaussianChain, rows: int, *, device, dtype, calls: int = 20) -> float:
    """Mean wall seconds of one target call ``chain.evaluate`` on ``rows`` states (prior draws at steps spread
    over the chain), after one untimed call: what a round's single call costs with no sampler work around it."""
    x = chain.prior(rows, torch.Generator(device=device).manual_seed(0), device=device, dtype=dtype)
    k = torch.arange(rows, device=device) % chain.n_steps

    def run():
        for _ in range(calls):  # outputs dropped as they come: a list of them would hold calls x the batch
            chain.evaluate(x, k, check_finite=False)

    with torch.no_grad():
        chain.evaluate(x, k, check_finite=False)
        seconds, _ = timed(run, device)
    return seconds / calls


@dataclasses.dataclass(frozen=True)
class Timing:
    """How :func:`bench_one` times: ``repeats`` interleaved timed runs of every configuration, seeded with ``seed``,
    on ``device`` in ``dtype``."""

    seed: int
    repeats: int
    device: torch.device | str = "cpu"
    dtype: torch.dtype = torch.float32


@dataclasses.dataclass(frozen=True)
class _Measured:
    """What :func:`_measure` recorded, by run key (None: the plain sampler, else a config): the untimed first run's
    seconds, the timed runs' seconds, the last run's result; and the lone target call's seconds per window."""

    warmup: dict
    times: dict
    results: dict
    calls: dict


def _measure(runs: dict, chain: GaussianChain, batch: int, windows, timing: Timing) -> _Measured:
    device = torch.device(timing.device)
    warmup = {key: timed(fn, device)[0] for key, fn in runs.items()}  # allocator, kernels, lazy init, compilation
    times = {key: [] for key in runs}
    calls = {w: [] for w in windows}
    results = {}
    for _ in range(timing.repeats):  # interleaved, so slow drifts of the machine hit every column alike
        for key, fn in runs.items():
            seconds, results[key] = timed(fn, device)
            times[key].append(seconds)
        for w in calls:
            calls[w].append(call_seconds(chain, batch * (w + 1), device=device, dtype=timing.dtype))
    return _Measured(warmup, times, results, calls)


def _row(model, chain, batch, config, m: _Measured) -> dict:
    name, window, policy, compiled = config
    plain_s, spec_s = statistics.median(m.times[None]), statistics.median(m.times[config])
    (x_spec, stats), x_plain, times = m.results[config], m.results[None], m.times
    warmup_s, call_s = m.warmup[config], statistics.median(m.calls[window])
    step_s = plain_s / chain.n_steps
    round_cost, call_cost = (spec_s / stats.rounds_total) / step_s, call_s / step_s
    return dict(
        model=model, chain=chain.name, steps=chain.n_steps, dim=chain.dim, batch=batch, drafter=name,
        window=window, policy=policy, compiled=compiled, warmup_s=warmup_s, plain_s=plain_s, spec_s=spec_s,
        wall_ratio=plain_s / spec_s, nfe_ratio=stats.nfe_ratio,
        call_ratio=chain.n_steps / stats.rounds_total, acceptance_rate=stats.acceptance_rate,
        round_cost=round_cost, wall_per_call=1 / round_cost, call_s=call_s, call_cost=call_cost,
        overhead=round_cost - call_cost,
        rounds_total=stats.rounds_total, rounds_mean=stats.rounds_mean,
        target_evaluations=stats.target_evaluations, plain_target_evaluations=batch * chain.n_steps,
        plain_times_s=times[None], spec_times_s=times[config],
        plain_abs_max=float(x_plain.abs().max()), spec_abs_max=float(x_spec.abs().max()),
    )


def bench_one(model: str, chain: GaussianChain, batch: int, configs, timing: Timing,
              drafters: dict | None = None) -> list[dict]:
    """Rows for one (model, batch): plain timed ``timing.repeats`` times, each (drafter, window[, policy[,
    compile]]) of ``configs`` timed against it, interleaved, medians reported (policy: accepted+1 and compile: False
    when left out; the first, untimed, run of each is its ``warmup_s``, compilation included). ``drafters``:
    {(name, window): Drafter} for drafters that need more than a name (default: ``make_drafter(name)``)."""
    device = torch.device(timing.device)
    chain = chain.to(device=device, dtype=timing.dtype)
    options = SampleOptions(device=device, dtype=timing.dtype)
    configs = [tuple(c) + ("accepted+1", False)[len(c) - 2:] for c in configs]  # (name, window, policy, compile)
    drafters = drafters or {(name, w): make_drafter(name) for name, w, _, _ in configs}

    def plain():
        return plain_sample(chain, batch, seed=timing.seed, options=options)

    def spec(name, window, policy, compiled):
        o = dataclasses.replace(options, policy=policy, compile=compiled)
        return lambda: speculative_sample(chain, drafters[(name, window)], batch, window=window, seed=timing.seed,
                                          options=o)

    runs = {None: plain} | {c: spec(*c) for c in configs}
    measured = _measure(runs, chain, batch, {c[1] for c in configs}, timing)
    return [_row(model, chain, batch, c, measured) for c in configs]


def nfe_rows(chain: GaussianChain, drafters: dict, windows, n: int, *, seed: int,
             dtype=torch.float64) -> Iterator[dict]:
    """nfe_ratio, acceptance and rounds of the speculative sampler for each {name: Drafter} and window (``n``
    samples, seeded), one row at a time, as each is measured."""
    options = SampleOptions(dtype=dtype)
    for name, drafter in drafters.items():
        for w in windows:
            seconds, (_, st) = timed(lambda d=drafter, w=w: speculative_sample(chain, d, n, window=w, seed=seed,
                                                                               options=options))
            yield {"steps": chain.n_steps, "drafter": name, "window": w, "nfe_ratio": st.nfe_ratio,
                   "acceptance_rate": st.acceptance_rate, "rounds_mean": st.rounds_mean, "seconds": seconds}
