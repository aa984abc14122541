"""The alpha ledger: validated once, its blocks never spend more than alpha, carried in the terminal report, and
one Bonferroni split for the families of checks (--stress, mutants)."""

import json

import numpy as np
import pytest

from specverify import bridge
from specverify.errors import UsageError
from specverify.harness import check_against_law
from specverify.harness.ledger import AlphaLedger, Block, split_family
from specverify.harness.plan import Plan
from specverify.harness.report import markdown
from specverify.bridge.stress_configs import STRESS, stress_split
from specverify.harness.suite import terminal_plan

MEAN, LAM, Q = np.zeros(2), np.ones(2), np.eye(2)


def _ledger(**kw):
    fields = dict(kind="terminal", alpha=0.01, beta=0.05, blocks={"distribution": Block(3, 0.005),
                                                                  "independence": Block(3, 0.005)},
                  correction="Bonferroni over blocks", test_alpha=0.005 / 3, n_needed=1000, effect=0.05)
    return AlphaLedger(**(fields | kw))


@pytest.mark.parametrize("kw,match", [
    ({"alpha": 0.0}, r"alpha \(the family-wise false-alarm rate\) must be in \(0, 1\), got 0.0"),
    ({"alpha": 1.5}, r"alpha \(the family-wise false-alarm rate\) must be in \(0, 1\), got 1.5"),
    ({"alpha": float("nan")}, "alpha .* must be finite"),
    ({"beta": 1.0}, r"beta \(the miss rate at epsilon\) must be in \(0, 1\), got 1.0"),
    ({"kind": "transition", "beta": -0.1}, r"beta \(the miss rate at delta\) must be in \(0, 1\)"),
    ({"alpha": 0.008}, "the blocks spend alpha 0.01, more than the family's 0.008"),
    ({"kind": "nope"}, "kind is one of"),
    ({"test_alpha": 0.02}, "one test's alpha"),
    ({"n_needed": 0}, "n_needed must be a positive int"),
])
def test_a_bad_ledger_is_a_usage_error_that_says_what_is_wrong(kw, match):
    with pytest.raises(UsageError, match=match):
        _ledger(**kw)


def test_the_checks_refuse_bad_levels_with_the_same_messages():
    with pytest.raises(UsageError, match=r"beta \(the miss rate at epsilon\)"):
        terminal_plan("exact", 2, Plan(0.01, beta=0.0), counts=False)
    with pytest.raises(UsageError, match=r"alpha \(the family-wise false-alarm rate\)"):
        check_against_law(lambda n, s: np.zeros((n, 2)), MEAN, LAM, Q, alpha=2.0)
    with pytest.raises(UsageError, match=r"alpha \(the family-wise false-alarm rate\)"):
        stress_split(0.0)


@pytest.mark.parametrize("kind", ["exact", "sampler"])
@pytest.mark.parametrize("counts", [False, True])
@pytest.mark.parametrize("dim", [1, 2, 100])
def test_the_blocks_alphas_add_up_to_at_most_alpha(kind, counts, dim):
    led = terminal_plan(kind, dim, Plan(0.01), counts=counts)
    assert sum(b.alpha for b in led.blocks.values()) <= 0.01 * (1 + 1e-12)
    assert list(led.blocks) == ["distribution", "independence"] + (["acceptance"] if counts else [])
    assert led.test_alpha * led.blocks["distribution"].tests <= led.blocks["distribution"].alpha * (1 + 1e-12)
    assert (led.screen_share is not None) == (kind == "sampler")


def test_the_two_sample_plan_counts_the_batterys_own_tests():
    from specverify.harness.stats.omnibus import KERNEL_TESTS, Permutations, n_tests, two_sample_minp

    rng = np.random.default_rng(0)
    battery = two_sample_minp(rng.normal(size=(100, 3)), rng.normal(size=(100, 3)), 0.05, Permutations(99))
    assert len(battery.tests) == n_tests(3) == terminal_plan("sampler", 3, Plan(0.01),
                                                             counts=False).blocks["distribution"].tests
    assert [t.name for t in battery.tests[-len(KERNEL_TESTS):]] == list(KERNEL_TESTS)


def test_a_terminal_report_carries_its_ledger_in_json_and_markdown():
    def exact(n, seed):
        return np.random.default_rng(seed).standard_normal((n, 2))

    r = check_against_law(exact, MEAN, LAM, Q, Plan(0.01, 0.05, 0.1, seed=0))
    led = json.loads(json.dumps(r.to_dict()))["ledger"]
    assert led["kind"] == "terminal" and not r.transition_level
    assert led["n"] == r.n == led["n_needed"] and led["detectable_effect"] == pytest.approx(r.min_detectable_ks)
    assert led["blocks"] == {"distribution": {"tests": 3, "alpha": 0.01 / 2},
                             "independence": {"tests": 3, "alpha": 0.01 / 2}}
    assert led["effect"] == 0.1 and led["effect_unit"] == "KS distance"
    page = markdown(r)
    assert "## Alpha ledger" in page and "| distribution | 3 | 0.005 |" in page
    assert f"smallest KS distance detected with power 0.95: {r.min_detectable_ks:.4f}" in page


def test_the_transition_ledger_keeps_the_keys_it_had_as_a_dict():
    led = _ledger(kind="transition", extra={"noisy_steps": 9, "lags": 3})
    assert list(led) == ["alpha", "beta", "delta", "correction", "blocks", "projection_test_alpha", "noisy_steps",
                         "lags", "n_needed"]
    done = led.used(500, 0.03, trajectory_dtype="float64", mean_from="x")
    assert list(done)[-5:] == ["n_needed", "n", "smallest_detectable_shift", "trajectory_dtype", "mean_from"]
    assert done["n"] == 500 and done["blocks"]["distribution"] == {"tests": 3, "alpha": 0.005}


def test_families_of_checks_share_alpha_by_one_bonferroni_split():
    s = stress_split(0.01)
    assert s["main"] == 0.005 and all(s[c.name] == 0.01 / (2 * len(STRESS)) for c in STRESS)
    assert sum(s.members.values()) <= 0.01 * (1 + 1e-12)
    m = bridge.mutant_split(0.01)
    assert dict(m.members) == {"default": 0.005, "stress": 0.005}
    assert m.to_dict() == {"alpha": 0.01, "correction": "Bonferroni over the checks",
                           "checks": {"default": 0.005, "stress": 0.005}}
    with pytest.raises(UsageError, match="at least one configuration"):
        split_family(0.01, [])
