"""The harness: black-box contract errors, the suite's verdicts and sizes, and `specverify check`."""

import json

import numpy as np
import pytest
import torch

from specverify.cli import main
from specverify.harness import ContractError, check_against_law, check_against_sampler, draw
from specverify.harness.plan import Plan
from specverify.harness.report import markdown
from specverify.harness.stats.sizing import ks_one_sample_n

LAW = (np.array([1.0, -0.5]), np.array([0.5, 2.0]), np.array([[0.6, 0.8], [-0.8, 0.6]]))


def _gauss(scale=1.0, shift=0.0, law=LAW):
    mean, lam, q = law

    def sample(n, seed):
        z = np.random.default_rng(seed).normal(size=(n, len(mean)))
        return mean + shift + scale * (z * np.sqrt(lam)) @ q.T

    return sample


@pytest.mark.parametrize("fn,match", [
    (lambda n, s: 1 / 0, "raised ZeroDivisionError"),
    (lambda n, s: np.zeros(n), r"shape \(\d+,\)"),
    (lambda n, s: np.zeros((n + 1, 2)), "samples for n="),
    (lambda n, s: np.full((n, 2), np.nan), "NaN or Inf"),
    (lambda n, s: np.zeros((n, 3)), "dimension 3"),
    (lambda n, s: "abc", "not an array"),
])
def test_contract_errors_say_what_is_wrong(fn, match):
    with pytest.raises(ContractError, match=match):
        draw(fn, 10, 0, dim=2)


def test_torch_and_jax_outputs_are_accepted():
    import jax.numpy as jnp

    assert draw(lambda n, s: torch.zeros(n, 2), 4, 0).shape == (4, 2)
    assert draw(lambda n, s: jnp.zeros((n, 2)), 4, 0).dtype == np.float64
    half = draw(lambda n, s: torch.full((n, 2), 1.5, dtype=torch.bfloat16, requires_grad=True), 4, 0)
    assert half.dtype == np.float64 and (half == 1.5).all()  # numpy has no bfloat16: converted through torch


def test_a_candidate_that_ignores_its_seed_is_refused():
    rng = np.random.default_rng(0)
    with pytest.raises(ContractError, match="ignores its seed"):
        check_against_law(lambda n, s: rng.normal(size=(n, 2)), *LAW)


def test_law_check_passes_the_truth_and_fails_a_scale_error():
    ok = check_against_law(_gauss(), *LAW, Plan(0.01, seed=1))
    assert ok.verdict == "pass" and ok.exit_code == 0
    assert ok.n == ks_one_sample_n(0.01 / 2 / 3, 0.05, 0.05) and ok.min_detectable_ks == pytest.approx(0.05, rel=0.01)
    bad = check_against_law(_gauss(scale=1.1), *LAW, Plan(0.01, seed=1))
    assert bad.verdict == "fail" and bad.exit_code == 1


def test_sampler_check_passes_the_same_law_and_fails_a_shift():
    assert check_against_sampler(_gauss(), _gauss(), 2, Plan(n=5000, seed=2)).verdict == "pass"
    assert check_against_sampler(_gauss(shift=0.1), _gauss(), 2, Plan(n=5000, seed=2)).verdict == "fail"


def test_report_has_the_documented_fields():
    r = check_against_law(_gauss(), *LAW, Plan(n=500, seed=3)).to_dict()
    assert {"verdict", "alpha", "n", "min_detectable_ks", "tests"} <= r.keys()
    assert {"name", "statistic", "pvalue", "adjusted_pvalue", "rejected"} <= r["tests"][0].keys()


def test_cli_check_passes_our_sampler(tmp_path):
    js = tmp_path / "r.json"
    rc = main(["check", "--problem", "gaussian", "--dim", "2", "--steps", "20", "--drafter", "frozen-drift",
               "--window", "4", "--terminal", "--json", str(js)])
    report = json.loads(js.read_text())
    assert rc == 0 and report["verdict"] == "pass" and report["power_ok"]
    assert report["n"] == ks_one_sample_n(0.01 / 3 / 3, 0.05, 0.05)  # distribution, independence, acceptance


def test_cli_check_judges_our_trajectories_by_default(tmp_path):
    from specverify.harness.innovations import trajectories_needed

    js = tmp_path / "r.json"
    rc = main(["check", "--problem", "gaussian", "--dim", "2", "--steps", "20", "--drafter", "frozen-drift",
               "--window", "4", "--json", str(js)])
    report = json.loads(js.read_text())
    led = report["ledger"]
    assert rc == 0 and report["verdict"] == "pass" and report["power_ok"]
    assert set(led["blocks"]) == {"initial law", "innovations", "independence", "acceptance"}
    a_test = 0.01 / 4 / led["blocks"]["innovations"]["tests"]
    assert led["projection_test_alpha"] == a_test
    assert report["n"] == max(100, trajectories_needed(a_test, 0.05, 0.02, led["noisy_steps"]))
    assert led["mean_from"].startswith("JAX twin") and led["lags"] == 5


def test_cli_check_fails_a_mutant_with_exit_1(tmp_path):
    js = tmp_path / "r.json"
    rc = main(["check", "--problem", "gaussian", "--dim", "2", "--steps", "20", "--drafter", "stress",
               "--window", "4", "--n", "3000", "--mutant", "no-reflection", "--json", str(js)])
    assert rc == 1 and json.loads(js.read_text())["verdict"] == "fail"


def test_cli_check_two_sample_path():
    assert main(["check", "--problem", "gmm", "--dim", "2", "--steps", "20", "--n", "2000",
                 "--allow-low-power"]) == 0


def test_a_pass_without_the_declared_power_exits_2(tmp_path, capsys):
    js = tmp_path / "r.json"
    rc = main(["check", "--problem", "gaussian", "--dim", "2", "--steps", "10", "--n", "500", "--json", str(js)])
    report = json.loads(js.read_text())
    assert rc == 2 and report["verdict"] == "pass" and report["power_ok"] is False
    assert "too small for the declared power" in capsys.readouterr().err


def test_cli_check_bad_input_exits_2(capsys):
    assert main(["check", "--problem", "gaussian", "--steps", "10", "--n", "500", "--mutant", "nope"]) == 2
    assert "--mutant" in capsys.readouterr().err


def test_too_few_samples_for_the_declared_power_is_reported():
    r = check_against_law(_gauss(), *LAW, Plan(n=500, seed=4, epsilon=0.05))
    assert r.min_detectable_ks > 0.05
    assert len(r.warnings) == 1 and f"n >= {ks_one_sample_n(0.01 / 2 / 3, 0.05, 0.05)}" in r.warnings[0]
    assert check_against_law(_gauss(), *LAW, Plan(seed=4)).warnings == ()  # a tuple: the report is frozen


def test_cli_mutants_kills_and_reports(tmp_path):
    js = tmp_path / "kills.json"
    rc = main(["mutants", "--problem", "gaussian", "--dim", "2", "--steps", "20", "--n", "3000", "--json", str(js)])
    kills = json.loads(js.read_text())
    assert rc == 0 and kills["reference_false_alarm"] is False
    assert len(kills["mutants"]) >= 8 and kills["kill_rate"] == 1.0
    assert {"name", "detected", "min_adjusted_pvalue"} <= kills["mutants"][0].keys()


def _with_acceptance(sampler, bias=0.0, steps=20, p=0.8):
    """A candidate that reports per-trajectory acceptance counts (accepted ~ Binomial(steps, p + bias))."""

    def candidate(n, seed):
        rng = np.random.default_rng(seed + 77)
        return {"samples": sampler(n, seed), "accepted": rng.binomial(steps, p + bias, size=n),
                "predicted": np.full(n, p * steps), "verified": np.full(n, steps)}

    return candidate


def test_acceptance_counts_join_the_verdict_as_a_second_block():
    ok = check_against_law(_with_acceptance(_gauss()), *LAW, Plan(0.01, seed=5))
    assert ok.verdict == "pass" and ok.correction == "bonferroni over blocks: holm[3] + holm[3] + single[1]"
    assert ok.n == ks_one_sample_n(0.01 / 3 / 3, 0.05, 0.05)  # distribution, independence, acceptance: alpha / 3 each
    assert ok.tests[-1].family == "acceptance" and ok.acceptance.verified == 20 * ok.n
    assert ok.acceptance.ci_low <= 0.8 <= ok.acceptance.ci_high
    bad = check_against_law(_with_acceptance(_gauss(), bias=0.02), *LAW, Plan(0.01, seed=5))
    assert bad.verdict == "fail" and [t.name for t in bad.tests if t.rejected] == [bad.tests[-1].name]


@pytest.mark.parametrize("out,match", [
    ({"x": np.zeros((10, 2))}, "without 'samples'"),
    ({"samples": np.zeros((10, 2)), "accepted": np.ones(10)}, "only one of"),
    ({"samples": np.zeros((10, 2)), "accepted": np.ones(9), "predicted": np.ones(9)}, "one per trajectory"),
    ({"samples": np.zeros((10, 2)), "accepted": -np.ones(10), "predicted": np.ones(10)}, "negative"),
    ({"samples": np.zeros((10, 2)), "acepted": np.ones(10)}, "unknown keys"),
])
def test_mapping_contract_errors(out, match):
    with pytest.raises(ContractError, match=match):
        draw(lambda n, s: out, 10, 0, dim=2)


def test_sampler_check_reports_minp_and_bh():
    r = check_against_sampler(_gauss(), _gauss(), 2, Plan(n=1000, seed=6))
    assert r.correction == "bonferroni over blocks: minP[25] + holm[3]"
    assert {t.name for t in r.tests} >= {"energy", "mmd[h=1 median]", "ks[|x|^2]"}
    assert all(0 < t.pvalue <= t.bh_qvalue + 1e-12 and t.pvalue <= t.adjusted_pvalue for t in r.tests)


def test_per_step_accept_flags_become_trajectory_counts():
    from specverify.harness.contracts import run

    flags = np.array([[1, 1, 0, -1], [1, -1, -1, -1]] * 50)
    dist = np.where(flags >= 0, 0.5, np.nan)
    _, acc = run(lambda n, s: {"samples": np.zeros((n, 2)), "step_accepted": flags, "step_distance": dist}, 100, 0)
    p = 2 * __import__("scipy").stats.norm.cdf(-0.25)
    np.testing.assert_allclose(acc["accepted"][:2], [2, 1])
    np.testing.assert_allclose(acc["verified"][:2], [3, 1])
    np.testing.assert_allclose(acc["predicted"][:2], [3 * p, p])
    with pytest.raises(ContractError, match="step_accepted holds"):
        run(lambda n, s: {"samples": np.zeros((n, 2)), "step_accepted": flags * 2, "step_distance": dist}, 100, 0)
    with pytest.raises(ContractError, match="give both"):
        run(lambda n, s: {"samples": np.zeros((n, 2)), "step_accepted": flags}, 100, 0)


def test_every_report_states_the_rejected_drafted_steps():
    from specverify.harness.suite import rejection_path

    n = 200
    assert rejection_path(None, 0.05)["rejected_steps"] is None and rejection_path(None, 0.05)["note"]
    none = rejection_path({"accepted": np.full(n, 4), "verified": np.full(n, 4), "predicted": np.full(n, 4.0)}, 0.05)
    assert none["rejected_steps"] == 0 and none["trajectories_with_rejection"] == 0 and "cannot show" in none["note"]
    half = rejection_path({"accepted": np.tile([3, 4], n // 2), "verified": np.full(n, 4),
                           "predicted": np.full(n, 3.5)}, 0.05)
    assert half["rejected_steps"] == n // 2 and half["trajectories_with_rejection"] == 0.5 and half["note"] is None
    r = check_against_law(_with_acceptance(_gauss()), *LAW, Plan(n=500, seed=5))
    assert r.rejection_path["rejected_steps"] == int(r.acceptance.verified - r.acceptance.accepted)
    assert "rejected drafted steps" in markdown(r)


def test_a_rejecting_acceptance_block_settles_the_sampler_check_early():
    from specverify.harness.stats.omnibus import SETTLED_PERMUTATIONS

    bad = check_against_sampler(_with_acceptance(_gauss(), bias=0.05), _gauss(), 2, Plan(1e-3, n=3000, seed=5))
    assert bad.verdict == "fail" and [t.family for t in bad.tests if t.rejected] == ["acceptance"]
    battery = [t for t in bad.tests if t.family == "distribution"]
    assert "already rejected" in battery[0].method
    assert bad.permutations <= 32 + SETTLED_PERMUTATIONS  # not the >= 1 / alpha a permutation rejection needs
