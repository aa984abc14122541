"""paper_repro scripts run in their small mode (examples run as tests). The scripts are thin: their logic is in the
package (specverify.calibration, specverify.benchmarks, specverify.harness.quality, specverify.sampler.bench), which
the other tests import; a script is loaded by its path here only to run its ``main``."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _load(name):
    spec = importlib.util.spec_from_file_location(name, ROOT / "paper_repro" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_exact_laws_smoke(tmp_path, capsys):
    diff, lang = _load("exact_laws").main(["--smoke", "--json", str(tmp_path / "laws.json")])
    assert (tmp_path / "laws.json").exists() and "KL" in capsys.readouterr().out
    # more steps -> closer to the data law; larger h -> further from the target
    for d in {r["dim"] for r in diff}:
        for chain in {r["chain"] for r in diff}:
            kl = [r["kl_chain_vs_data"] for r in diff if r["dim"] == d and r["chain"] == chain]
            assert all(a > b > 0 for a, b in zip(kl, kl[1:], strict=False))
        kl = [r["kl_stationary_vs_target"] for r in lang if r["dim"] == d]
        assert all(0 < a < b for a, b in zip(kl, kl[1:], strict=False))


def test_bench_node_smoke(tmp_path, capsys):
    js, md = tmp_path / "node.json", tmp_path / "node.md"
    assert _load("bench_node").main(["--smoke", "--json", str(js), "--markdown", str(md)]) == 0
    rows = json.loads(js.read_text())["rows"]
    assert [r["rule"] for r in rows] == ["reflection", "dgrs", "rank", "rank-max", "rank-uniform"]
    assert rows[0]["ratio"] == 1.0 and all(r["median_ms"] > 0 for r in rows)
    assert "| 8 | 2 | rank | 4 |" in md.read_text() and "| B | d | rule |" in capsys.readouterr().out


def test_calibrate_smoke(tmp_path):
    """The calibration script in a small run: the report is written and its figures are consistent."""
    mod = _load("calibrate")
    md, js = tmp_path / "cal.md", tmp_path / "cal.json"
    mod.main(["--smoke", "--json", str(js), "--markdown", str(md)])
    import json

    from specverify.calibration import CONFIGS

    res = json.loads(js.read_text())
    assert [r["config"] for r in res] == list(CONFIGS)
    for r in res:
        assert r["rejections"] == round(r["rejection_rate"] * 20) and r["ci99_low"] <= r["rejection_rate"]
        assert all(sum(t["deciles"]) == 20 for t in r["tests"])
    assert "Clopper-Pearson" in md.read_text()


def test_calibrate_innovations_at_the_checks_own_n(tmp_path):
    """--n auto: every replicate runs at the n that the check sizes at --alpha (as `specverify check` does when
    --n is left out), and is read at that alpha only, with its 99% Clopper-Pearson interval; bad input is exit 2."""
    import json

    import pytest

    from specverify.bridge import make_setup, make_target
    from specverify.harness.trajectory_check import transition_plan

    mod = _load("calibrate_innovations")
    js, md = tmp_path / "c.json", tmp_path / "c.md"
    mod.main(["--n", "auto", "--alpha", "0.01", "--configs", "gmm", "--replicates", "1", "--json", str(js),
              "--markdown", str(md)])
    (res,) = json.loads(js.read_text())
    setup = make_setup("gmm", dim=2, steps=100)
    sized = transition_plan(make_target(setup), alpha=0.01, beta=0.05, delta=setup.entry.delta, lags=9, counts=True)
    assert res["settings"]["n"] == sized["n_needed"] and res["n_sized_at"] == 0.01
    assert [a["alpha"] for a in res["alphas"]] == [0.01]
    a = res["alphas"][0]
    assert a["ci99_low"] <= a["rate"] <= a["ci99_high"] and a["rejections"] == round(a["rate"])
    assert "own sized n" in md.read_text() and f"| {sized['n_needed']} | 1 | 0.01 |" in md.read_text()
    for argv in (["--configs", "nope"], ["--n", "auto", "--alpha", "1.5"]):
        with pytest.raises(SystemExit) as e:
            mod.main(argv)
        assert e.value.code == 2


def test_power_smoke(tmp_path, capsys):
    mod = _load("power")
    js = tmp_path / "p.json"
    mod.main(["min-n", "--problem", "gaussian", "--dim", "2", "--smoke", "--json", str(js)])
    import json

    res = json.loads(js.read_text())
    assert len(res["rows"]) >= 8 and all(r["history"][0]["n"] == 100 for r in res["rows"])
    assert "min n=" in capsys.readouterr().out


def test_power_min_n_one_check_per_configuration_and_their_comparison(tmp_path, monkeypatch):
    """min-n --check: each configuration alone on its own grid (innovations from 16, terminal from 100), the
    check's default n per configuration; compare puts the two runs side by side, row for row."""
    import json

    import pytest

    from specverify.sampler import mutants

    monkeypatch.setattr(mutants, "MUTANTS", {k: mutants.MUTANTS[k] for k in ("no-reflection", "inverted-ratio")})
    power, runs = _load("power"), {}
    for check, first in (("innovations", 16), ("terminal", 100)):
        js, md = tmp_path / f"{check}.json", tmp_path / f"{check}.md"
        power.main(["min-n", "--check", check, "--smoke", "--json", str(js), "--markdown", str(md)])
        runs[check] = res = json.loads(js.read_text())
        assert list(res["configs"]) == ["natural", "stress"] and set(res["default_n"]) == {"natural", "stress"}
        assert [r["name"] for r in res["rows"]] == ["no-reflection", "inverted-ratio"]
        assert all(r[c]["history"][0]["n"] == first for r in res["rows"] for c in ("natural", "stress"))
        assert "| no-reflection | keeps the draft on rejection |" in md.read_text()
    page = tmp_path / "compare.md"
    assert power.main(["compare", "--inputs", f"{tmp_path / 'terminal.json'},{tmp_path / 'innovations.json'}",
                       "--markdown", str(page)]) == 0
    text = page.read_text()
    assert runs["terminal"]["command"] in text and runs["innovations"]["command"] in text
    assert text.count("| no-reflection |") == 1 and "terminal | innovations | ratio" in text
    fewer = runs["innovations"] | {"rows": runs["innovations"]["rows"][:1]}  # a run that measured fewer mutants
    (tmp_path / "fewer.json").write_text(json.dumps(fewer))
    assert power.main(["compare", "--inputs", f"{tmp_path / 'terminal.json'},{tmp_path / 'fewer.json'}",
                       "--markdown", str(page)]) == 0
    assert "| inverted-ratio |" not in page.read_text() and "terminal run only: inverted-ratio" in page.read_text()
    for argv in (["min-n", "--configs", "natural"], ["min-n", "--check", "terminal", "--configs", "natural,foo"],
                 ["seeds", "--check", "terminal"],
                 ["compare", "--inputs", f"{tmp_path / 'terminal.json'},{tmp_path / 'terminal.json'}"],
                 ["compare", "--inputs", f"{tmp_path / 'terminal.json'},{tmp_path / 'missing.json'}"]):
        with pytest.raises(SystemExit) as e:
            power.main(argv)
        assert e.value.code == 2, argv


def test_min_n_curtailed_gives_the_smallest_n_of_the_full_count():
    """--curtail stops an n at the miss that leaves it below 95% of the seeds: the same smallest n as the full
    count, fewer calls, and the smallest n's count over every seed."""
    smallest = _load("power_min_n")._smallest_n
    rates = {16: 0.0, 32: 0.6, 64: 1.0}  # the share of seeds that detect at each n

    def detect(n, seed):
        calls.append((n, seed))
        return ["check"] if (seed - 1000) < rates[n] * 20 else []

    calls = []
    full = smallest(detect, [16, 32, 64], 20)
    n_full, calls = len(calls), []
    cut = smallest(detect, [16, 32, 64], 20, curtail=True)
    assert full["min_n"] == cut["min_n"] == 64 and len(calls) < n_full
    assert [h["replicates"] for h in cut["history"]] == [2, 14, 20]
    assert cut["history"][-1] == full["history"][-1]


def test_power_tape_replays_the_recorded_calls_in_order():
    import numpy as np
    import pytest

    tape = _load("power")._Tape(lambda n, seed: np.random.default_rng(seed).normal(size=(n, 2)))
    first = [tape(4, 1), tape(4, 2)]
    tape.replay()
    assert all(np.array_equal(a, tape(4, s)) for a, s in zip(first, (1, 2), strict=True))
    tape.replay()
    with pytest.raises(RuntimeError, match="out of order"):
        tape(4, 2)


def test_power_engines_smoke(tmp_path, monkeypatch):
    """Both engines at one n on the same samples; the fixed engine draws exactly its B; the page is written."""
    import json

    from specverify.sampler import mutants

    monkeypatch.setattr(mutants, "MUTANTS", {"inverted-ratio": mutants.MUTANTS["inverted-ratio"]})
    js, md = tmp_path / "e.json", tmp_path / "e.md"
    assert _load("power").main(["engines", "--smoke", "--json", str(js), "--markdown", str(md)]) == 0
    res = json.loads(js.read_text())
    assert [r["name"] for r in res["rows"]] == ["correct", "inverted-ratio"] and res["fixed_b"] == 999
    for seed in (s for r in res["rows"] for s in r["seeds"]):
        assert seed["sequential"]["n"] == seed["fixed"]["n"] == 200 and seed["fixed"]["permutations"] == 999
        assert seed["sequential"]["permutations"] >= 1
    assert "| inverted-ratio |" in md.read_text() and "fixed B = 999" in md.read_text()


def test_acceptance_study_smoke(tmp_path):
    md = tmp_path / "study.md"
    _load("acceptance_study").main(["--smoke", "--markdown", str(md)])
    text = md.read_text()
    assert "## Acceptance study: gmm d=2, 20 steps" in text and "| frozen-denoiser | 16 |" in text


def test_claims_smoke(tmp_path):
    """The claims command in its smoke mode: RESULTS.md, results.json and every figure written; its numbers come
    from the run (the page quotes the JSON); every exactness check passes (alpha split over the checks)."""
    import json

    from specverify.benchmarks import DIFFUSION_DRAFTERS, SMOKE

    mod = _load("claims")
    assert mod.main(["--smoke", "--out", str(tmp_path)]) == 0
    res = json.loads((tmp_path / "results.json").read_text())
    page = (tmp_path / "RESULTS.md").read_text()
    for f in res["figures"]:
        assert Path(f).exists() and Path(f).stat().st_size > 1000
    assert set(res["speed"]) == {"digits", "gmm", "langevin-model"}
    assert {r["drafter"] for r in res["speed"]["digits"]} == set(DIFFUSION_DRAFTERS)
    checks = res["exactness"]
    assert len(checks) == 10 and all(r["verdict"] == "pass" for r in checks)
    assert all(abs(r["alpha"] * len(checks) - SMOKE.family_alpha) < 1e-12 for r in checks)
    for r in res["speed"]["gmm"]:
        assert f"**{r['nfe_ratio']:.2f}**" in page and 1 <= r["nfe_ratio"] <= r["window"] + 1  # accepted + 1
    assert {r["policy"] for r in res["speed"]["gmm"]} == {"accepted+1", "window-start"}
    best = max((r for r in res["speed"]["digits"] if r["drafter"] == "frozen-denoiser" and r["policy"] == "accepted+1"),
               key=lambda r: r["nfe_ratio"])
    assert f"{best['nfe_ratio']:.2f} at window {best['window']}" in page
    assert {r["sampler"] for r in res["quality"]} >= {"plain", "speculative frozen-denoiser", "training digits (floor)"}
    (tmp_path / "RESULTS.md").unlink()
    assert mod.main(["--render", "--out", str(tmp_path)]) == 0
    assert (tmp_path / "RESULTS.md").read_text() == page  # the page is a function of results.json


def test_acceptance_study_reports_a_miss_with_its_dispersion():
    """A prediction outside its interval is listed with measured, predicted and variance ratio (measured over the
    independent model's); rows from runs before the variance was logged show '-'."""
    mod = _load("acceptance_study")
    row = {"rounds_mean": 557.26, "predicted_rounds_mean": 553.24, "rounds_var": 90.0, "predicted_rounds_var": 60.0,
           "acceptance_rate": 0.7, "predicted_acceptance_rate": 0.71}
    assert (mod._measured(row, "rounds_inside"), mod._predicted(row, "rounds_inside")) == ("557.3", "553.2")
    assert mod._dispersion(row, "rounds_inside") == "1.50"
    assert mod._dispersion(row, "acceptance_inside") == "-"
    assert mod._dispersion({}, "accepted_inside") == "-"


def test_frechet_distance_of_the_digits_quality():
    """Against the closed form for Gaussian fits: commuting covariances, and scipy's sqrtm on a generic pair."""
    import numpy as np
    from scipy import linalg

    from specverify.harness.quality import frechet

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(400, 3)), rng.normal(size=(300, 3)) @ np.diag([1.0, 2.0, 0.5]) + 1.0
    ca, cb = np.cov(a.T), np.cov(b.T)
    expect = ((a.mean(0) - b.mean(0)) ** 2).sum() + np.trace(ca + cb - 2 * linalg.sqrtm(ca @ cb).real)
    np.testing.assert_allclose(frechet(a, b), expect, rtol=1e-10)
    assert abs(frechet(a, a)) < 1e-10
    p = rng.dirichlet(np.ones(4), size=200)  # rows sum to 1: singular covariance, no warning, finite
    assert np.isfinite(frechet(p, rng.dirichlet(np.ones(4), size=200)))


def test_every_script_imports():
    """Each paper_repro script loads (its imports of the package resolve): a renamed or removed name in the
    package fails here, not in the next measurement run."""
    import sys

    import pytest

    names = sorted(p.stem for p in (ROOT / "paper_repro").glob("*.py") if not p.stem.startswith("_"))
    assert "stress_controls" in names and "multidraft" in names
    for name in names:
        spec = importlib.util.spec_from_file_location(f"_script_{name}", ROOT / "paper_repro" / f"{name}.py")
        mod = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
        try:
            spec.loader.exec_module(mod)
        except SystemExit as e:  # a script that parses arguments at import would end the test: say which
            pytest.fail(f"paper_repro/{name}.py exits at import ({e})")
        finally:
            sys.modules.pop(spec.name, None)
