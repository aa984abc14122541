"""The benchmark script runs in its small mode (examples run as tests) and reports what it measured.

The assertions are structural, never on timings' values beyond positivity: wall-clock numbers depend on the
machine. nfe_ratio >= 1 is a guarantee rather than a measured property: under either round policy no round
commits fewer steps than the plain sampler's call (accepted+1: every round commits at least one step;
window-start: the first drafted step of a window from a fresh anchor is the target step itself).
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

from specverify.specs import ROUND_POLICIES

SCRIPT = Path(__file__).resolve().parents[1] / "paper_repro" / "bench_sampler.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("bench_sampler", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_sampler_smoke(tmp_path, capsys):
    bench = _load_script()
    out = tmp_path / "bench.json"
    page = tmp_path / "wall.md"
    returned = bench.main(["--smoke", "--json", str(out), "--markdown", str(page)])

    report = json.loads(out.read_text())
    rows = report["rows"]
    assert report["settings"]["smoke"] is True and report["settings"]["steps"] == 20
    # models x latencies x batch sizes x drafters x policies (one window)
    assert len(rows) == len(returned) == 3 * 2 * 2 * 2 * 2
    for model in ("digits", "gmm", "mlp"):
        for batch in (1, 16):
            mine = [r for r in rows if r["model"] == model and r["batch"] == batch]
            assert {r["drafter"] for r in mine} == {"frozen-drift", "frozen-denoiser"}, (model, batch)
            assert {(r["policy"], r["latency_ms"]) for r in mine} == {(p, lat) for p in ROUND_POLICIES
                                                                      for lat in (0.0, 1.0)}, (model, batch)
    for r in rows:
        assert r["steps"] == 20 and r["window"] == 8
        assert r["plain_s"] > 0 and r["spec_s"] > 0, r
        assert r["wall_ratio"] == r["plain_s"] / r["spec_s"]
        assert r["nfe_ratio"] >= 1, r
        assert 1 <= r["call_ratio"] <= r["nfe_ratio"], r
        assert 0 <= r["acceptance_rate"] <= 1, r
        assert math.isfinite(r["plain_abs_max"]) and math.isfinite(r["spec_abs_max"]), r
        assert r["call_s"] > 0 and math.isclose(r["overhead"], r["round_cost"] - r["call_cost"]), r
        assert math.isclose(r["wall_per_call"], r["wall_ratio"] / r["call_ratio"]), r

    printed = capsys.readouterr().out
    for column in ("batch", "drafter", "window", "plain_s", "spec_s", "wall_ratio", "nfe_ratio", "accept",
                   "call_cost", "overhead", "wall/call"):
        assert column in printed
    assert "overhead-bound" in printed
    assert "SIMULATED accelerator" in printed  # every table with a simulated latency says so

    text = page.read_text()
    assert "--smoke" in text and "SIMULATION" in text  # the command that made it, and the label
    assert len([line for line in text.splitlines() if line.startswith("| digits")]) == 2 * 2 * 2 * 2
    again = tmp_path / "again.md"
    bench.main(["--render", str(out), "--markdown", str(again)])
    assert again.read_text() == text  # rendered from the JSON alone
