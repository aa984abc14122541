"""The door: the problem registry maps every built-in problem to its torch side and its ground truth."""

import numpy as np
import pytest

from specverify.bridge import REGISTRY, Plan, ProblemChain, entry, make_reference, make_setup, reference_name
from specverify.errors import UsageError
from specverify.sampler.problems import PROBLEMS


def test_the_registry_and_the_sampler_side_name_the_same_problems():
    assert list(REGISTRY) == list(PROBLEMS)
    for name, e in REGISTRY.items():
        assert e.name == name and e.problem is PROBLEMS[name]


@pytest.mark.parametrize("name", ["gaussian", "gmm", "langevin-gaussian", "langevin-model"])
def test_every_problem_has_a_ground_truth_of_the_kind_its_class_declares(name):
    setup = make_setup(name, dim=3, steps=6)
    kind, truth = make_reference(setup)
    assert kind == ("law" if setup.problem.exact_law else "sampler")
    assert reference_name(setup) == REGISTRY[name].truth_name
    x = np.asarray(truth.mean if kind == "law" else truth(5, 0))
    assert x.shape[-1] == 3 and np.isfinite(x).all()


def test_options_go_only_to_the_problems_that_take_them():
    assert make_setup("gmm", dim=2, steps=4, components=3).problem.spec.weights.size == 3
    with pytest.raises(UsageError, match="Langevin problems only"):
        make_setup("gaussian", dim=2, steps=4, chain=ProblemChain(step_size=0.1))
    with pytest.raises(UsageError, match="--chain and --eta do not apply"):
        make_setup("langevin-gaussian", dim=2, steps=4, chain=ProblemChain("ddim"))


def test_an_unknown_problem_names_the_choices():
    with pytest.raises(UsageError, match="choose one of gaussian, gmm"):
        entry("cifar")


def test_medusa_training_options_reach_the_heads(tmp_path, monkeypatch):
    """study / bridge pass medusa_train to the heads' training: a rollout count where 1000 do not fit (images)."""
    from specverify import study

    monkeypatch.setenv("SPECVERIFY_CACHE", str(tmp_path))
    setup = make_setup("gmm", dim=2, steps=12)
    train = {"n_traj": 20, "epochs": 1, "hidden": 16}
    row, = study.run_study(setup, study.Study(["medusa"], [3], n=100), medusa_train=train)
    assert row["drafter"] == "medusa" and row["n"] == 100
    from specverify.sampler.drafters.medusa import cache_path

    assert cache_path(setup.chain(), 3 + 1, key=setup.key, **train).exists()  # named by the training options
    assert not cache_path(setup.chain(), 3 + 1, key=setup.key).exists()  # not the default training


@pytest.mark.parametrize("path", [True, False])
def test_check_probes_the_candidate_once(path):
    """bridge.check calls candidate(8, seed) twice (the same seed must give the same samples; what comes back
    chooses the check) and no more: seed hygiene reuses the probe's samples, and a samples-only candidate goes to
    the terminal battery with the same probe."""
    from specverify.bridge import check, make_candidate

    setup = make_setup("gaussian", dim=2, steps=10)
    inner, calls = make_candidate(setup, path=path), []

    def candidate(n, seed):
        calls.append((n, seed))
        return inner(n, seed)

    rep = check(setup, candidate, plan=Plan(n=100, seed=3))
    assert rep.reference.startswith("innovations") == path
    assert calls.count((8, 3)) == 2 and not [c for c in calls if c[0] < 8]
