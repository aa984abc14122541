"""The `digits` problem on its quick models (trained in seconds into a temporary cache): deterministic training and
the cache, the chains on (1, 8, 8) states, the three parametrisations, and the speculative sampler against our plain
sampler in law (declared alpha, fixed seeds)."""

import dataclasses
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from specverify._files import atomic_write
from specverify.errors import ChainError
from specverify.harness.stats.omnibus import two_sample_minp
from specverify.sampler import cache
from specverify.sampler.drafters import make_drafter
from specverify.sampler.mutants import mutant_options
from specverify.sampler.noise import TableNoise
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import digits
from specverify.sampler.problems.digits import CONFIGS, DigitsConfig, DigitsProblem, digits_images, digits_labels
from specverify.sampler.speculative import plain_sample, speculative_sample

ALPHA = 1e-3  # false-failure rate of each statistical test in this file
F64 = torch.float64
QUICK, QUICK_DRAFT = CONFIGS["quick"]
TINY = dataclasses.replace(QUICK, iterations=20)


@pytest.fixture(scope="module")
def problem(tmp_path_factory):
    return DigitsProblem(config="quick", cache=tmp_path_factory.mktemp("digits"))


def _equal_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_data_split():
    tr, te = digits_images("train"), digits_images("test")
    assert tr.shape == (1500, 1, 8, 8) and te.shape == (297, 1, 8, 8) and digits_labels("test").shape == (297,)
    assert tr.min() == -1.0 and tr.max() == 1.0
    assert set(np.unique(digits_labels("train"))) == set(range(10))
    assert not (tr.reshape(1500, 1, 64) == te.reshape(1, 297, 64)).all(2).any()  # no held-out image in training


def test_training_is_deterministic_cached_and_leaves_the_global_rng(tmp_path):
    state = torch.get_rng_state()
    a, info = digits.train(TINY)
    assert torch.equal(state, torch.get_rng_state())
    b, _ = digits.train(TINY)
    assert _equal_weights(a, b) and np.isfinite([info["train_loss"], info["test_loss"]]).all()
    c, _ = digits.train(dataclasses.replace(TINY, seed=5))
    assert not _equal_weights(a, c)
    first, i1 = digits.load_or_train(TINY, cache=tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == [f"{TINY.tag()}.pt"] and not i1["cached"]
    second, i2 = digits.load_or_train(TINY, cache=tmp_path)
    assert i2["cached"] and i2["test_loss"] == i1["test_loss"]
    assert _equal_weights(first, second) and _equal_weights(first, a)
    assert len({c.tag() for c in (TINY, QUICK, QUICK_DRAFT, *CONFIGS["full"])}) == 5


def test_the_cache_is_under_specverify_cache_and_reused_from_another_working_directory(tmp_path, monkeypatch):
    root = tmp_path / "root"
    monkeypatch.setenv(cache.ENV, str(root))
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    monkeypatch.chdir(tmp_path / "a")
    first, i1 = digits.load_or_train(TINY)  # the default cache
    assert not i1["cached"] and [p.name for p in (root / "digits").iterdir()] == [f"{TINY.tag()}.pt"]
    assert list((tmp_path / "a").iterdir()) == []  # nothing relative to the working directory
    monkeypatch.chdir(tmp_path / "b")
    second, i2 = digits.load_or_train(TINY)
    assert i2["cached"] and _equal_weights(first, second)
    problem = DigitsProblem(config=(TINY, TINY))  # the problem's default cache is the same folder
    assert problem.training["target"]["cached"] and problem.training["draft"]["cached"]
    assert list((tmp_path / "b").iterdir()) == []


def test_the_cache_root_of_each_platform(tmp_path, monkeypatch):
    monkeypatch.setenv(cache.ENV, str(tmp_path / "x"))
    assert cache.cache_dir("digits") == tmp_path / "x" / "digits"
    monkeypatch.delenv(cache.ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setattr(cache.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_dir("medusa") == tmp_path / "xdg" / "specverify" / "medusa"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/ignored")  # the XDG spec: a relative path is ignored
    assert cache.cache_dir() == tmp_path / "home" / ".cache" / "specverify"
    monkeypatch.setattr(cache.sys, "platform", "darwin")
    assert cache.cache_dir() == tmp_path / "home" / "Library" / "Caches" / "specverify"
    monkeypatch.setattr(cache.sys, "platform", "win32")
    monkeypatch.setenv("LOCALAPPDATA", str(tmp_path / "local"))
    assert cache.cache_dir() == tmp_path / "local" / "specverify" / "Cache"
    assert cache.resolve(None) is None and cache.resolve(tmp_path / "y", "digits") == tmp_path / "y"


def test_the_atomic_write_never_leaves_a_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "f.pt"

    def partial(tmp):  # writes some bytes, then fails, as an interrupted save would
        Path(tmp).write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, partial)
    assert list(path.parent.iterdir()) == []
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(b"old, whole"))
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, partial)
    assert list(path.parent.iterdir()) == [path] and path.read_bytes() == b"old, whole"
    # through load_or_train: a save that fails half-way leaves no model file for the next run to load
    monkeypatch.setattr(torch, "save", lambda obj, f: partial(f))
    with pytest.raises(OSError, match="disk full"):
        digits.load_or_train(TINY, cache=tmp_path / "models")
    assert list((tmp_path / "models").iterdir()) == []


def test_chains_run_on_images(problem):
    chain, draft = problem.chain(20), problem.draft_chain(20)
    assert chain.shape == draft.shape == (1, 8, 8) and problem.dim == 64
    np.testing.assert_array_equal(chain.sigma, draft.sigma)
    x = plain_sample(chain, 50, seed=0)
    y, st = speculative_sample(chain, make_drafter("frozen-denoiser"), 50, window=4, seed=0)
    z, st_ind = speculative_sample(chain, make_drafter("independent", draft_chain=draft), 50, window=4, seed=0)
    for out in (x, y, z):
        assert out.shape == (50, 1, 8, 8) and torch.isfinite(out).all() and out.abs().max() < 10
    assert st.verified_per_position.sum() > 0 and st_ind.accepted_per_position.sum() > 0
    for kw in [dict(sampler="ddim", eta=0.5), dict(schedule="cosine"), dict(prediction="v")]:
        assert plain_sample(problem.chain(10, **kw), 5, seed=1).shape == (5, 1, 8, 8)


def test_predictions_give_one_chain(problem):
    """eps, x0 and v are three views of one network: the chain means agree (float64)."""
    x = torch.randn(6, 1, 8, 8, generator=torch.Generator().manual_seed(0), dtype=F64)
    k = torch.tensor([0, 5, 10, 20, 28, 29])
    means = [problem.chain(30, prediction=p, schedule="cosine").to(dtype=F64).mean(x, k) for p in ("eps", "x0", "v")]
    torch.testing.assert_close(means[1], means[0], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(means[2], means[0], rtol=1e-9, atol=1e-9)


def test_one_network_for_every_chain_length(problem):
    """The network is conditioned on log SNR: equal abar in two schedules gives equal outputs."""
    m = problem.model(np.full(10, 0.1))  # abar[t] = 0.9^(t + 1)
    m2 = problem.model(np.full(20, 1 - np.sqrt(0.9)))  # abar[2t + 1] = 0.9^(t + 1)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    t = torch.tensor([0, 3, 6, 9])
    torch.testing.assert_close(m(x, t), m2(x, 2 * t + 1), rtol=1e-5, atol=1e-5)


def test_oracle_follows_the_plain_sampler(problem):
    """Oracle drafts under injected noise: every draft accepted, the output is plain's (up to BLAS batch rounding)."""
    chain = problem.chain(15)
    noise = TableNoise.draw(40, 15, chain.shape, seed=2, dtype=F64)
    x0 = chain.prior(40, torch.Generator().manual_seed(3), dtype=F64)
    o = SampleOptions(noise=noise, x0=x0, dtype=F64)
    plain = plain_sample(chain, 40, options=o)
    spec, st = speculative_sample(chain, make_drafter("oracle"), 40, window=4, options=o)
    assert st.acceptance_rate == 1.0
    torch.testing.assert_close(spec, plain, rtol=1e-10, atol=1e-10)


STEPS, N = 40, 2000  # the law tests: chain length and samples per side


@pytest.fixture(scope="module")
def plain(problem):
    return plain_sample(problem.chain(STEPS), N, seed=12, options=SampleOptions(dtype=F64)).reshape(N, -1).numpy()


@pytest.mark.parametrize("drafter,seed", [("frozen-denoiser", 11), ("independent", 13)])
def test_speculative_has_the_law_of_plain(problem, plain, drafter, seed):
    """KS, MMD and energy battery (minP) on flattened samples, independent seeds, at ALPHA."""
    chain = problem.chain(STEPS)
    d = make_drafter(drafter, draft_chain=problem.draft_chain(STEPS) if drafter == "independent" else None)
    x, st = speculative_sample(chain, d, N, window=8, seed=seed, options=SampleOptions(dtype=F64))
    assert st.proposed_per_position.sum() > st.accepted_per_position.sum() > 0  # drafts both accepted and rejected
    b = two_sample_minp(x.reshape(N, -1).numpy(), plain, ALPHA)
    assert not b.reject, b.summary()


def test_the_law_test_catches_a_broken_sampler(problem, plain):
    """Power at the same n: keeping the draft on rejection (no reflection) is rejected."""
    x, _ = speculative_sample(problem.chain(STEPS), make_drafter("frozen-denoiser"), N, window=8, seed=14,
                              options=mutant_options("no-reflection", SampleOptions(dtype=F64)))
    assert two_sample_minp(x.reshape(N, -1).numpy(), plain, ALPHA).reject


def test_config_choice_and_errors(monkeypatch, tmp_path):
    monkeypatch.delenv(digits.ENV, raising=False)
    assert DigitsProblem(cache=tmp_path).config_name == "full"  # the default, when no test override is set
    monkeypatch.setenv(digits.ENV, "quick")
    assert DigitsProblem(cache=tmp_path).configs == CONFIGS["quick"]
    full = DigitsProblem(dim=64, config="full", cache=tmp_path)  # explicit: the override does not apply
    assert full.configs == CONFIGS["full"] and full.config_name == "full"
    assert list(tmp_path.iterdir()) == []  # nothing trained yet
    monkeypatch.setenv(digits.ENV, "huge")
    with pytest.raises(ChainError, match="quick"):
        DigitsProblem(cache=tmp_path)
    with pytest.raises(ChainError, match="fixed dimension 64"):
        DigitsProblem(dim=2, config="quick")
    with pytest.raises(ChainError, match="pair of DigitsConfig"):
        DigitsProblem(config=(DigitsConfig(),))
    with pytest.raises(ChainError, match="ddpm"):
        DigitsProblem(config="quick", cache=tmp_path).chain(10, sampler="euler")
    with pytest.raises(ChainError, match="split"):
        digits_images("validation")


def test_train_script_quick(tmp_path, capsys):
    path = Path(__file__).resolve().parents[2] / "paper_repro" / "train_digits.py"
    spec = importlib.util.spec_from_file_location("train_digits", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--smoke", "--cache", str(tmp_path / "c"), "--out", str(tmp_path), "--steps", "20",
                     "--speedup", "20", "--nfe-n", "20"]) == 0
    out = capsys.readouterr().out
    assert "held-out" in out and "nfe_ratio" in out
    assert (tmp_path / "digits_samples.png").stat().st_size > 0
    import json

    res = json.loads((tmp_path / "digits.json").read_text())
    assert len(res["speedup"]) == 9 and res["quality"]["target"]["train_floor"]["classes"] == 10


def test_registered_builtin_checks_against_the_plain_sampler(tmp_path):
    """`digits` in the registry: flattened (n, 64) samples, our plain sampler as reference, the CLI end to end."""
    from specverify.bridge import Ours, make_candidate, make_reference, make_setup
    from specverify.cli import main

    setup = make_setup("digits", steps=20)
    assert setup.dim == 64 and setup.key.startswith("digits-64-") and setup.key != make_setup("gmm").key
    out = make_candidate(setup, Ours(window=4))(30, 0)
    assert out["samples"].shape == (30, 64)
    kind, ref = make_reference(setup)
    assert kind == "sampler" and ref(30, 1).shape == (30, 64)
    js = tmp_path / "r.json"
    rc = main(["check", "--problem", "digits", "--steps", "20", "--n", "400", "--allow-low-power",
               "--json", str(js), "--alpha", str(ALPHA)])
    report = json.loads(js.read_text())
    assert report["dim"] == 64 and report["n"] == 400 and report["verdict"] in ("pass", "fail")
    assert rc == (0 if report["verdict"] == "pass" else 1)
    assert report["verdict"] == "pass"  # the correct sampler: false failure with probability <= ALPHA
