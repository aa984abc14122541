"""Torch-side problems: denoisers against dense textbook formulas, third-party views, draft chains, registry."""

import numpy as np
import pytest
import torch

from specverify.cli import main
from specverify.errors import ChainError
from specverify.sampler.problems import PROBLEMS, fixed_dim, make_problem
from specverify.specs import GaussianSpec, beta_schedule

F64 = torch.float64


def _x(n, d, seed=0):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=F64)


@pytest.mark.parametrize("dim", [1, 2, 16])
def test_gaussian_denoiser_against_a_dense_solve(dim):
    p = make_problem("gaussian", dim=dim)
    betas = beta_schedule("cosine", 40)
    model = p.model(betas, "x0").to(F64)
    cov = torch.tensor(p.spec.cov)
    mu = torch.tensor(p.spec.mean)
    abar = np.cumprod(1 - betas)
    x = _x(7, dim)
    for t in (0, 13, 39):
        a = float(abar[t])
        gain = np.sqrt(a) * torch.linalg.solve(a * cov + (1 - a) * torch.eye(dim, dtype=F64), cov)
        expect = mu + (x - np.sqrt(a) * mu) @ gain  # gain is symmetric
        got = model(x, torch.full((7,), t))
        torch.testing.assert_close(got, expect, rtol=1e-10, atol=1e-12)


def test_gaussian_covariance_is_not_diagonal():
    cov = GaussianSpec.default(8).cov
    assert np.abs(cov - np.diag(np.diag(cov))).max() > 0.05
    np.testing.assert_allclose(cov, cov.T, atol=1e-14)
    assert np.linalg.eigvalsh(cov).min() > 0


@pytest.mark.parametrize("name", ["gaussian", "gmm"])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_third_party_view_reproduces_the_chain(name, sampler):
    """eps_model + betas through the textbook DDPM / DDIM update gives the chain's mean; sigma matches."""
    p = make_problem(name, dim=3)
    view = p.third_party(25, sampler=sampler, eta=0.7)
    chain = p.chain(25, sampler=sampler, eta=0.7).to(dtype=F64)
    abar = np.cumprod(1 - view.betas)
    x = _x(5, 3, seed=1)
    for k in range(view.n_steps):
        t = int(view.timesteps[k])
        kk = torch.full((5,), k)
        eps = view.eps_model(x, torch.full((5,), t))
        a_t, a_prev = abar[t], (abar[t - 1] if t > 0 else 1.0)
        if sampler == "ddpm":
            beta = view.betas[t]
            expect = (x - beta / np.sqrt(1 - a_t) * eps) / np.sqrt(1 - beta)
        else:
            x0 = (x - np.sqrt(1 - a_t) * eps) / np.sqrt(a_t)
            expect = np.sqrt(a_prev) * x0 + np.sqrt(1 - a_prev - view.sigma[k] ** 2) * eps
        torch.testing.assert_close(view.mean(x, kk), expect, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(chain.mean(x, kk), expect, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(view.sigma, chain.sigma)


@pytest.mark.parametrize("name", list(PROBLEMS))
def test_draft_chain_shares_the_schedule_and_differs(name):
    d = fixed_dim(name) or 4
    p = make_problem(name, dim=d)
    target, draft = p.chain(30).to(dtype=F64), p.draft_chain(30).to(dtype=F64)
    np.testing.assert_array_equal(target.sigma, draft.sigma)
    x, k = _x(6, d, seed=2).reshape(6, *target.shape), torch.arange(6) * 4
    assert not torch.allclose(target.mean(x, k), draft.mean(x, k))


def test_langevin_model_score_is_the_posterior_gradient():
    p = make_problem("langevin-model", dim=6)
    X, y = torch.tensor(p.spec.X), torch.tensor(p.spec.y)

    def log_post(theta):
        logits = theta @ X.T
        return (y * logits - torch.nn.functional.softplus(logits)).sum(1) - 0.5 * (theta**2).sum(1)

    theta = 0.3 * _x(4, 6, seed=3)
    thetag = theta.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(log_post(thetag).sum(), thetag)
    chain = p.chain(10).to(dtype=F64)
    h = chain.b[0]
    torch.testing.assert_close(chain.mean(theta, torch.zeros(4, dtype=torch.long)), theta + h * g,
                               rtol=1e-10, atol=1e-12)


def test_langevin_gaussian_score():
    p = make_problem("langevin-gaussian", dim=5, step_size=0.03)
    chain = p.chain(10).to(dtype=F64)
    x = _x(3, 5, seed=4)
    prec = torch.linalg.inv(torch.tensor(p.spec.cov))
    expect = x - 0.03 * (x - torch.tensor(p.spec.mean)) @ prec
    torch.testing.assert_close(chain.mean(x, torch.zeros(3, dtype=torch.long)), expect, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(chain.sigma, np.sqrt(0.06))


def test_problem_errors():
    with pytest.raises(ChainError, match="unknown problem"):
        make_problem("cifar")
    with pytest.raises(ChainError, match="1..31"):
        make_problem("langevin-model", dim=40)
    with pytest.raises(ChainError, match="Langevin chain"):
        make_problem("langevin-gaussian").chain(10, sampler="ddim")


def test_image_sized_problems_run():
    """d = 3072 (3 x 32 x 32 flattened): one chain step of every problem that takes any d."""
    for name in ("gaussian", "gmm", "langevin-gaussian"):
        chain = make_problem(name, dim=3072).chain(10).to(dtype=torch.float32)
        x = torch.randn(4, 3072)
        m = chain.mean(x, torch.full((4,), 3))
        assert m.shape == (4, 3072) and torch.isfinite(m).all()


def test_cli_lists_every_problem_with_its_law(capsys):
    assert main(["problems"]) == 0
    out = capsys.readouterr().out
    for name, cls in PROBLEMS.items():
        assert f"{name}  [exact law: {'yes' if cls.exact_law else 'no'}]" in out
        for flag in cls.params:
            assert flag in out


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_cli_samples_every_problem(problem, tmp_path):
    js = tmp_path / "s.json"
    dim = fixed_dim(problem) or 3
    args = ["--problem", problem, "--dim", str(dim), "--steps", "20", "--n", "30", "--json", str(js)]
    assert main(["sample", *args]) == 0
    assert js.exists()


def test_fixed_size_problems_take_their_size_and_refuse_others(capsys):
    assert fixed_dim("digits") == 64 and fixed_dim("gmm") is None
    assert make_problem("digits").dim == 64
    with pytest.raises(ChainError, match="fixed dimension 64"):
        make_problem("digits", dim=3)
    assert main(["sample", "--problem", "digits", "--dim", "3", "--steps", "5", "--n", "5"]) == 2
    assert "fixed dimension 64" in capsys.readouterr().err


def test_cli_rejects_options_of_the_other_kind(capsys):
    assert main(["sample", "--problem", "langevin-gaussian", "--chain", "ddim", "--steps", "5", "--n", "5"]) == 2
    assert main(["sample", "--problem", "gaussian", "--step-size", "0.1", "--steps", "5", "--n", "5"]) == 2
    assert "Langevin" in capsys.readouterr().err
