"""Third-party samplers through the CLI: targets, contracts, reports, figures and errors with partial reports.

The external sampler below is written in another style (numpy, its own DDPM loop on the eps_model view); our
own speculative sampler is also validated purely through the black-box and chain-level paths.
"""

import json
import textwrap

import numpy as np
import pytest

from specverify.cli import main
from specverify.errors import SpecverifyError
from specverify.harness.adapters import detect_contract, load

EXTERNAL = textwrap.dedent('''
    import numpy as np
    import torch

    def ddpm(view, n, seed, bug=False):
        """DDPM in numpy on the eps_model + betas view."""
        rng = np.random.default_rng(seed)
        betas = view.betas
        abar = np.cumprod(1 - betas)
        x = rng.normal(size=(n,) + tuple(view.shape))
        for k, t in enumerate(view.timesteps):
            eps = view.eps_model(torch.as_tensor(x), torch.full((n,), int(t))).numpy()
            mean = (x - betas[t] / np.sqrt(1 - abar[t]) * eps) / np.sqrt(1 - betas[t])
            if k == len(view.timesteps) - 1:
                return mean
            var = betas[t] * (1 - abar[t - 1]) / (1 - abar[t])
            x = mean + np.sqrt(var if not bug else betas[t]) * rng.normal(size=x.shape)

    def ddpm_buggy(view, n, seed):
        return ddpm(view, n, seed, bug=True)

    def gauss(n, seed):
        return np.random.default_rng(seed).normal(size=(n, 2))

    def shifted(n, seed):
        return gauss(n, seed) + 0.2

    def wrong_shape(n, seed):
        return np.zeros((n, 3))

    def wrong_count(n, seed):
        return np.zeros((n + 1, 2))

    def nan(n, seed):
        x = gauss(n, seed)
        x[-1, 0] = np.inf
        return x

    def crashes(n, seed):
        raise RuntimeError("out of memory")

    def unseeded(n, seed):
        return np.random.default_rng().normal(size=(n, 2))

    def coupling(mean_p, mean_q, sigma, z, u, bug=False):
        """The reflection coupling in numpy; with bug=True the rejected branch keeps the draft."""
        s = sigma[:, None]
        d = (mean_q - mean_p) / s
        dist = np.linalg.norm(d, axis=1)
        acc = np.log(u) <= -(z * d).sum(1) - 0.5 * dist**2
        e = d / np.where(dist > 0, dist, 1)[:, None]
        rej = mean_q + s * z if bug else mean_p + s * (z - 2 * (z * e).sum(1, keepdims=True) * e)
        return np.where(acc[:, None], mean_q + s * z, rej), acc

    def coupling_no_reflection(mean_p, mean_q, sigma, z, u):
        return coupling(mean_p, mean_q, sigma, z, u, bug=True)

    def coupling_seeded(mean_p, mean_q, sigma, seed):
        rng = np.random.default_rng(seed)
        return coupling(mean_p, mean_q, sigma, rng.normal(size=mean_p.shape), rng.uniform(size=len(mean_p)))

    def coupling_tempered(mean_p, mean_q, sigma, seed):
        rng = np.random.default_rng(seed)
        u = rng.uniform(size=len(mean_p)) ** 2  # accepts w.p. min(1, (p/q)^0.5)
        return coupling(mean_p, mean_q, sigma, rng.normal(size=mean_p.shape), u)

    def coupling_wrong_output(mean_p, mean_q, sigma, z, u):
        return mean_q, np.ones(len(mean_q), dtype=bool)
''')


@pytest.fixture
def ext(tmp_path):
    path = tmp_path / "ext.py"
    path.write_text(EXTERNAL)
    return path


def _check(*argv):
    return main(["check", "--problem", "gaussian", "--dim", "2", "--steps", "20", *argv])


def test_targets_load_from_files_and_modules(ext):
    assert load(f"{ext}:gauss")(3, 0).shape == (3, 2)
    assert load("numpy.random:default_rng") is np.random.default_rng
    assert [detect_contract(load(f"{ext}:{a}")) for a in ("gauss", "ddpm", "coupling")] == ["black-box", "chain",
                                                                                             "kernel"]
    for bad, match in [("nocolon", "module:attr"), (f"{ext}:missing", "no attribute"),
                       ("no_such_pkg_xyz:f", "cannot import"), ("/no/file.py:f", "no such file"),
                       ("numpy:pi", "not a callable")]:
        with pytest.raises(SpecverifyError, match=match):
            load(bad)


def test_external_chain_sampler_passes_and_its_planted_bug_fails(ext, tmp_path):
    js, md, figs = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "figs"
    assert _check("--candidate", f"{ext}:ddpm", "--json", str(js), "--markdown", str(md), "--plots", str(figs)) == 0
    r = json.loads(js.read_text())
    assert r["verdict"] == "pass" and r["candidate"].endswith(":ddpm") and r["power_ok"]
    assert md.read_text().startswith("# specverify check") and "| test |" in md.read_text()
    assert sorted(p.name for p in figs.iterdir()) == ["qq_worst_coordinates.png", "squared_norm.png"]
    assert _check("--candidate", f"{ext}:ddpm_buggy", "--json", str(js)) == 1
    assert json.loads(js.read_text())["verdict"] == "fail"


def test_black_box_against_a_black_box_reference(ext):
    assert _check("--candidate", f"{ext}:gauss", "--reference", f"{ext}:gauss", "--n", "2000",
                  "--allow-low-power") == 0
    assert _check("--candidate", f"{ext}:shifted", "--reference", f"{ext}:gauss", "--n", "2000") == 1


@pytest.mark.parametrize("attr,match", [("wrong_shape", "dimension 3"), ("wrong_count", "samples for n="),
                                        ("nan", "NaN or Inf"), ("crashes", "raised RuntimeError: out of memory"),
                                        ("unseeded", "ignores its seed")])
def test_bad_candidates_exit_2_with_a_partial_report(ext, tmp_path, capsys, attr, match):
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    assert _check("--candidate", f"{ext}:{attr}", "--json", str(js), "--markdown", str(md)) == 2
    r = json.loads(js.read_text())
    assert r["verdict"] == "error" and r["candidate"].endswith(attr)
    assert match in r["error"] and match in capsys.readouterr().err and "ERROR" in md.read_text()


def test_a_candidate_that_does_not_load_exits_2_with_both_partial_reports(tmp_path, capsys):
    js, md = tmp_path / "r.json", tmp_path / "r.md"
    assert _check("--candidate", "nonexistent_module:fn", "--json", str(js), "--markdown", str(md)) == 2
    r = json.loads(js.read_text())
    assert r["verdict"] == "error" and r["candidate"] == "nonexistent_module:fn"
    assert "cannot import" in r["error"] and "cannot import" in capsys.readouterr().err
    assert "ERROR" in md.read_text() and "cannot import" in md.read_text()


def test_our_speculative_sampler_through_the_public_paths_only(tmp_path):
    """Black box and chain level, written as a user would: the public API and the CLI, no internal imports."""
    mod = tmp_path / "ours.py"
    mod.write_text(textwrap.dedent('''
        import torch

        import specverify
        from specverify.sampler.problems import make_problem

        _chain = make_problem("gaussian", dim=2).chain(20)

        def black_box(n, seed):
            x, _ = specverify.speculative_sample(_chain, specverify.make_drafter("stress", delta=1.2), n,
                                                 window=4, seed=seed)
            return x

        def chain_level(view, n, seed):
            chain = specverify.gaussian_chain(view.mean, view.sigma, view.shape)
            x, st = specverify.speculative_sample(chain, specverify.make_drafter("frozen-drift"), n, window=4,
                                                  seed=seed, options=specverify.SampleOptions(dtype=torch.float64))
            return {"samples": x, "accepted": st.accepted_per_sample, "predicted": st.predicted_per_sample}
    '''))
    js = tmp_path / "r.json"
    assert _check("--candidate", f"{mod}:black_box") == 0
    assert _check("--candidate", f"{mod}:chain_level", "--json", str(js)) == 0
    r = json.loads(js.read_text())
    assert r["tests"][-1]["family"] == "acceptance" and r["acceptance"]["accepted"] > 0


@pytest.mark.parametrize("attr,rc", [("coupling", 0), ("coupling_seeded", 0), ("coupling_no_reflection", 1),
                                     ("coupling_tempered", 1), ("coupling_wrong_output", 1)])
def test_kernel_level_couplings(ext, tmp_path, attr, rc):
    js = tmp_path / "k.json"
    assert main(["check", "--candidate", f"{ext}:{attr}", "--n", "5000", "--json", str(js)]) == rc
    r = json.loads(js.read_text())
    assert r["verdict"] == ("pass" if rc == 0 else "fail")
    if attr in ("coupling", "coupling_no_reflection"):
        assert r["form"] == "injected" and r["exact_ok"] is (rc == 0)


def test_the_worked_examples_of_the_contract_pages(tmp_path):
    """The commands of docs/contract-*.md on examples/numpy_sampler.py (smaller n where the page says none)."""
    from pathlib import Path

    ex = Path(__file__).resolve().parents[2] / "examples" / "numpy_sampler.py"
    js = tmp_path / "r.json"
    assert main(["check", "--candidate", f"{ex}:coupling", "--n", "5000", "--json", str(js)]) == 0
    assert json.loads(js.read_text())["exact_ok"] is True
    assert _check("--steps", "50", "--candidate", f"{ex}:speculative") == 0
    assert main(["check", "--candidate", f"{ex}:candidate", "--reference", f"{ex}:reference", "--dim", "2",
                 "--n", "1000", "--allow-low-power"]) == 0
