"""Exact tests of the chain constructors in :mod:`specverify.sampler.chains` and of the `gmm` closed-form denoiser.

Every verdict is deterministic: float64 arithmetic compared with formulas written out independently in this
file (Ho et al. 2020 for DDPM, Song et al. 2021 eq. 12 for DDIM, Nichol & Dhariwal 2021 eq. 17 for the cosine
schedule, Bayes' rule by quadrature for the GMM posterior mean). Seeded random inputs only choose the points
at which the identities are checked; no assertion is statistical.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate

from specverify.errors import ChainError
from specverify.sampler.chains import GaussianChain, beta_schedule, ddim, ddpm, gaussian_chain, langevin
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems.gmm import GMMDenoiser, GMMProblem, GMMSpec
from specverify.sampler.speculative import plain_sample

F64 = torch.float64
PREDICTIONS = ("eps", "x0", "v")
RTOL = 1e-10  # float64 identities: the largest error seen is 3e-13 (a product of 1000 factors), 300x below
ATOL = 1e-12


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _states(n: int, shape, seed: int, scale: float = 2.0) -> torch.Tensor:
    return scale * torch.randn((n, *shape), generator=_gen(seed), dtype=F64)


def _all_steps(n_steps: int) -> torch.Tensor:
    return torch.arange(n_steps, dtype=torch.long)


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    torch.testing.assert_close(torch.as_tensor(actual, dtype=F64), torch.as_tensor(expected, dtype=F64),
                               rtol=rtol, atol=atol)


# --- analytic models of diffusion time, written in eps / x0 / v ------------------------------------------------

def _eps_model(T: int):
    """An analytic eps(x, t) that depends on both arguments: tanh(x) (t + 1) / T."""

    def model(x, t):
        return torch.tanh(x) * ((t.to(x.dtype) + 1) / T).view(-1, *([1] * (x.ndim - 1)))

    return model


def _as_prediction(eps_model, betas, prediction: str):
    """The same network written as an x0- or v-predictor (Salimans & Ho 2022: v = sqrt(abar) eps - sqrt(1-abar) x0)."""
    abar = torch.as_tensor(np.cumprod(1 - betas), dtype=F64)

    def model(x, t):
        eps = eps_model(x, t)
        view = (-1, *([1] * (x.ndim - 1)))
        sa, sb = abar[t].sqrt().view(view), (1 - abar[t]).sqrt().view(view)
        x0 = (x - sb * eps) / sa
        return {"eps": eps, "x0": x0, "v": sa * eps - sb * x0}[prediction]

    return model


def _textbook_ddpm(x, k, eps, betas):
    """Ho et al. 2020, Alg. 2: mean = (x_t - beta_t / sqrt(1 - abar_t) eps) / sqrt(alpha_t), t = T - 1 - k,
    with sigma_t^2 = beta_t (1 - abar_{t-1}) / (1 - abar_t), and sigma = 0 at t = 0. One step at a time."""
    T = len(betas)
    means, sigmas = [], []
    for i, kk in enumerate(k.tolist()):
        t = T - 1 - kk
        beta = float(betas[t])
        abar_t = math.prod(1 - float(b) for b in betas[: t + 1])
        abar_prev = math.prod(1 - float(b) for b in betas[:t])  # empty product = 1 at t = 0
        means.append((x[i] - beta / math.sqrt(1 - abar_t) * eps[i]) / math.sqrt(1 - beta))
        sigmas.append(math.sqrt(beta * (1 - abar_prev) / (1 - abar_t)) if t > 0 else 0.0)
    return torch.stack(means), np.array(sigmas)


# --- DDPM / DDIM: eps, x0 and v parametrisations of one denoiser give one chain --------------------------------

@pytest.mark.parametrize("schedule", ["linear", "cosine"])
@pytest.mark.parametrize("sampler,eta", [("ddpm", 1.0), ("ddim", 0.3), ("ddim", 1.0)])
def test_gmm_predictions_give_the_same_mean(sampler, eta, schedule):
    """eps, x0 and v chains built on the same closed-form GMM denoiser have the same mean(x, k) at every k."""
    problem, T = GMMProblem(dim=3), 60
    chains = {p: problem.chain(T, schedule=schedule, sampler=sampler, prediction=p, eta=eta).to(dtype=F64)
              for p in PREDICTIONS}
    x, k = _states(T, (3,), seed=1), _all_steps(T)
    ref = chains["eps"].mean(x, k)
    assert ref.dtype == F64 and ref.shape == x.shape
    for p in ("x0", "v"):
        assert chains[p].output == p
        np.testing.assert_array_equal(chains[p].sigma, chains["eps"].sigma)
        _close(chains[p].mean(x, k), ref)


# --- DDPM against the textbook ----------------------------------------------------------------------------------

@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("schedule,T", [("linear", 1000), ("linear", 50), ("cosine", 50)])
def test_ddpm_matches_textbook(schedule, T, prediction):
    """ddpm(...) mean and posterior sigma equal Ho et al.'s formulas; chain step k is diffusion time T - 1 - k."""
    betas = beta_schedule(schedule, T)
    eps_model = _eps_model(T)
    chain = ddpm(_as_prediction(eps_model, betas, prediction), betas, (4,), prediction=prediction)
    assert chain.n_steps == T and chain.shape == (4,) and chain.output == prediction
    x, k = _states(T, (4,), seed=2), _all_steps(T)
    want_mean, want_sigma = _textbook_ddpm(x, k, eps_model(x, T - 1 - k), betas)
    _close(chain.mean(x, k), want_mean)
    np.testing.assert_allclose(chain.sigma, want_sigma, rtol=RTOL, atol=0)
    assert chain.sigma[-1] == 0.0 and np.all(chain.sigma[:-1] > 0)


def test_ddpm_beta_variance_and_bad_variance():
    betas = beta_schedule("linear", 30)
    chain = ddpm(_eps_model(30), betas, (2,), variance="beta")
    np.testing.assert_allclose(chain.sigma, np.sqrt(betas[::-1]), rtol=1e-15, atol=0)
    with pytest.raises(ChainError, match="posterior"):
        ddpm(_eps_model(30), betas, (2,), variance="fixed")
    with pytest.raises(ChainError, match="prediction"):
        ddpm(_eps_model(30), betas, (2,), prediction="score")


def test_ddpm_takes_a_multi_dimensional_event_shape():
    """Per-sample coefficients broadcast over an image-like event shape (c, h, w)."""
    T, shape = 20, (2, 3, 3)
    betas = beta_schedule("linear", T)
    eps_model = _eps_model(T)
    chain = ddpm(eps_model, betas, shape)
    x, k = _states(T, shape, seed=3), _all_steps(T)
    want, _ = _textbook_ddpm(x, k, eps_model(x, T - 1 - k), betas)
    _close(chain.mean(x, k), want)


def test_ddpm_needs_an_array_of_betas():
    with pytest.raises(ChainError, match=r"beta_schedule\('linear', n_steps\)"):
        ddpm(_eps_model(10), "linear", (2,))


# --- DDIM ------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ddim_eta_one_on_full_schedule_is_ddpm(schedule, prediction):
    """DDIM with eta = 1 on every timestep has DDPM's posterior-variance coefficients a, b, sigma."""
    betas = beta_schedule(schedule, 200)
    model = _eps_model(200)
    p = ddpm(model, betas, (2,), prediction=prediction)
    q = ddim(model, betas, (2,), eta=1.0, prediction=prediction)
    for field in ("a", "b", "sigma"):
        np.testing.assert_allclose(getattr(q, field), getattr(p, field), rtol=RTOL, atol=ATOL, err_msg=field)
    assert q.sigma[-1] == 0.0


def _textbook_ddim(x, ts, eps, abar_all, eta):
    """Song et al. 2021, eq. 12, one step at a time:

        x_prev = sqrt(abar_prev) x0_hat + sqrt(1 - abar_prev - sigma^2) eps + sigma z,
        x0_hat = (x - sqrt(1 - abar) eps) / sqrt(abar),
        sigma = eta sqrt((1 - abar_prev) / (1 - abar)) sqrt(1 - abar / abar_prev),

    with abar_prev = 1 after the last timestep."""
    means, sigmas = [], []
    for i, t in enumerate(ts):
        abar = float(abar_all[t])
        abar_prev = float(abar_all[ts[i + 1]]) if i + 1 < len(ts) else 1.0
        sigma = eta * math.sqrt((1 - abar_prev) / (1 - abar)) * math.sqrt(1 - abar / abar_prev)
        x0_hat = (x[i] - math.sqrt(1 - abar) * eps[i]) / math.sqrt(abar)
        means.append(math.sqrt(abar_prev) * x0_hat + math.sqrt(1 - abar_prev - sigma**2) * eps[i])
        sigmas.append(sigma)
    return torch.stack(means), np.array(sigmas)


@pytest.mark.parametrize("prediction", PREDICTIONS)
@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_ddim_subsequence_matches_song_eq12(schedule, prediction):
    """DDIM with eta = 0.5 on an irregular descending subsequence of a 1000-step schedule."""
    T, eta = 1000, 0.5
    ts = [999, 950, 800, 640, 500, 333, 200, 101, 40, 7, 0]
    betas = beta_schedule(schedule, T)
    eps_model = _eps_model(T)
    chain = ddim(_as_prediction(eps_model, betas, prediction), betas, (3,), eta=eta, timesteps=ts,
                 prediction=prediction)
    assert chain.n_steps == len(ts)
    x, k = _states(len(ts), (3,), seed=4), _all_steps(len(ts))
    t = torch.tensor(ts, dtype=torch.long)
    want_mean, want_sigma = _textbook_ddim(x, ts, eps_model(x, t), np.cumprod(1 - betas), eta)
    _close(chain.mean(x, k), want_mean)
    np.testing.assert_allclose(chain.sigma, want_sigma, rtol=RTOL, atol=0)
    assert chain.sigma[-1] == 0.0


@pytest.mark.parametrize("eta", [0.0, -0.5, float("nan")])
def test_ddim_rejects_eta_not_positive(eta):
    with pytest.raises(ChainError, match="eta must be > 0"):
        ddim(_eps_model(10), beta_schedule("linear", 10), (2,), eta=eta)


@pytest.mark.parametrize("timesteps", [[3, 5, 1], [5, 5, 1], [10, 4], [4, -1], []])
def test_ddim_rejects_bad_timesteps(timesteps):
    with pytest.raises(ChainError, match="strictly decreasing"):
        ddim(_eps_model(10), beta_schedule("linear", 10), (2,), timesteps=timesteps)


def test_ddim_rejects_eta_above_one():
    with pytest.raises(ChainError, match="eta <= 1"):
        ddim(_eps_model(10), beta_schedule("linear", 10), (2,), eta=1.5)


# --- beta_schedule ---------------------------------------------------------------------------------------------

def test_linear_schedule():
    betas = beta_schedule("linear", 1000)
    assert betas.shape == (1000,) and betas.dtype == np.float64
    assert betas[0] == pytest.approx(1e-4, rel=1e-12) and betas[-1] == pytest.approx(0.02, rel=1e-12)
    np.testing.assert_allclose(np.diff(betas), (0.02 - 1e-4) / 999, rtol=1e-9)
    # Fewer steps: the same curve scaled by 1000 / n_steps (Nichol & Dhariwal's convention).
    short = beta_schedule("linear", 100)
    assert short[0] == pytest.approx(1e-3, rel=1e-12) and short[-1] == pytest.approx(0.2, rel=1e-12)


def test_cosine_schedule():
    """Nichol & Dhariwal 2021, eq. 17: abar_t = f(t) / f(0), f(t) = cos^2((t / T + s) / (1 + s) pi / 2), with
    the betas clipped at 0.999."""
    T, s = 100, 0.008
    betas = beta_schedule("cosine", T)
    assert betas.shape == (T,) and np.all(betas > 0) and np.all(betas <= 0.999)
    assert betas.max() == 0.999  # the clip is active at t = T - 1, where f(T) = 0
    f = [math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2 for t in range(T + 1)]
    unclipped = betas < 0.999
    want_abar = np.array([f[t + 1] / f[0] for t in range(T)])
    np.testing.assert_allclose(np.cumprod(1 - betas)[unclipped], want_abar[unclipped], rtol=1e-12)


def test_explicit_betas_pass_through():
    betas = beta_schedule([0.1, 0.2, 0.3])
    np.testing.assert_array_equal(betas, [0.1, 0.2, 0.3])
    assert betas.dtype == np.float64


@pytest.mark.parametrize("kind,n_steps,match", [
    ("quadratic", 10, r"unknown beta schedule 'quadratic'; use 'linear', 'cosine'"),
    ("linear", None, "n_steps must be a positive int"),
    ("cosine", 0, "n_steps must be a positive int"),
])
def test_bad_schedule_kinds(kind, n_steps, match):
    with pytest.raises(ChainError, match=match):
        beta_schedule(kind, n_steps)


@pytest.mark.parametrize("betas", [[], [0.1, 1.0], [0.0, 0.1], [-0.1, 0.2], [0.1, float("nan")], [[0.1, 0.2]]],
                         ids=["empty", "one", "zero", "negative", "nan", "2d"])
def test_bad_beta_arrays(betas):
    with pytest.raises(ChainError, match=r"non-empty 1-D array with every entry in \(0, 1\)"):
        beta_schedule(betas)


def test_non_numeric_betas_raise_chain_error():
    with pytest.raises(ChainError):
        beta_schedule([0.1, "a"])


# --- Langevin --------------------------------------------------------------------------------------------------

def _gaussian_target(d: int, seed: int):
    """log N(x; mu, S) per sample (up to a constant) and its analytic gradient -P (x - mu), P = S^-1."""
    g = _gen(seed)
    A = torch.randn(d, d, generator=g, dtype=F64)
    P = A @ A.T / d + torch.eye(d, dtype=F64)
    mu = torch.randn(d, generator=g, dtype=F64)

    def log_prob(x):
        r = x - mu
        return -0.5 * ((r @ P) * r).sum(1)

    def grad(x):
        return -(x - mu) @ P

    return log_prob, grad


@pytest.mark.parametrize("step_size", [0.01, np.linspace(0.05, 0.001, 12)], ids=["constant", "per-step"])
def test_langevin_mean_and_sigma(step_size):
    """mean(x, k) = x + h_k grad log pi(x) (autograd of log_prob vs the analytic gradient); sigma = sqrt(2 h)."""
    T, d = 12, 5
    log_prob, grad = _gaussian_target(d, seed=5)
    chain = langevin(step_size=step_size, n_steps=T, shape=(d,), log_prob=log_prob)
    h = np.broadcast_to(np.asarray(step_size, dtype=np.float64), (T,)).copy()
    np.testing.assert_allclose(chain.sigma, np.sqrt(2 * h), rtol=1e-15)
    x, k = _states(T, (d,), seed=6), _all_steps(T)
    want = x + torch.as_tensor(h, dtype=F64)[:, None] * grad(x)
    _close(chain.mean(x, k), want)
    with torch.no_grad():  # the samplers run under no_grad; the log_prob path must still differentiate
        _close(chain.mean(x, k), want)
    by_score = langevin(step_size=step_size, n_steps=T, shape=(d,), score=grad)
    _close(by_score.mean(x, k), want)


def test_langevin_needs_exactly_one_of_score_log_prob_and_model():
    log_prob, grad = _gaussian_target(2, seed=7)
    with pytest.raises(ChainError, match="exactly one of score=, log_prob= or model="):
        langevin(0.1, 5, (2,), score=grad, log_prob=log_prob)
    with pytest.raises(ChainError, match="exactly one of score=, log_prob= or model="):
        langevin(0.1, 5, (2,))


@pytest.mark.parametrize("step_size", [0.0, -0.1, [0.1, 0.0, 0.1]])
def test_langevin_rejects_non_positive_steps(step_size):
    with pytest.raises(ChainError, match="step_size must be > 0"):
        langevin(step_size, 3, (2,), score=lambda x: -x)


# --- GaussianChain validation ----------------------------------------------------------------------------------

def _identity(x, k):
    return x


@pytest.mark.parametrize("kwargs,match", [
    (dict(sigma=[1.0, float("nan")]), "sigma has NaN or Inf entries at steps"),
    (dict(sigma=[1.0, -0.5]), "sigma must be >= 0"),
    (dict(a=[1.0, float("inf")]), "a has NaN or Inf"),
    (dict(sigma=[1.0, 1.0, 1.0]), "equal lengths"),
    (dict(sigma=[], a=[], b=[]), "non-empty 1-D array"),
    (dict(sigma=[[1.0, 1.0]]), "non-empty 1-D array"),
    (dict(shape=()), "shape must be a non-empty tuple"),
    (dict(shape=(2, 0)), "shape must be a non-empty tuple"),
    (dict(model="not callable"), "model must be callable"),
], ids=["nan-sigma", "negative-sigma", "inf-a", "lengths", "empty", "2d-sigma", "empty-shape", "zero-dim",
        "model"])
def test_gaussian_chain_validates_its_fields(kwargs, match):
    fields = dict(model=_identity, sigma=[1.0, 0.5], a=[1.0, 1.0], b=[0.1, 0.1], shape=(2,)) | kwargs
    with pytest.raises(ChainError, match=match):
        GaussianChain(**fields)


def test_gaussian_chain_freezes_its_arrays():
    chain = GaussianChain(_identity, [1.0, 0.5], [1.0, 1.0], [0.1, 0.1], (2,))
    assert chain.sigma.dtype == np.float64 and not chain.sigma.flags.writeable
    with pytest.raises(ValueError):
        chain.sigma[0] = 3.0


def _chain_with(model) -> GaussianChain:
    return GaussianChain(model, [1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5], (3,))


@pytest.mark.parametrize("method", ["evaluate", "mean"])
@pytest.mark.parametrize("model,match", [
    (lambda x, k: x[:, :2], r"model returned \(4, 2\), expected a tensor of shape \(4, 3\) \(same as x\)"),
    (lambda x, k: x.numpy(), r"model returned ndarray, expected a tensor of shape \(4, 3\)"),
    (lambda x, k: x.to(torch.float32), r"model returned torch.float32 for torch.float64 input; move the model "
                                       r"with chain.to\(dtype=...\)"),
    (lambda x, k: torch.where((k == 2)[:, None], torch.nan, x),
     r"model returned NaN or Inf at chain steps \[2\]; check the model and its inputs"),
], ids=["shape", "not-a-tensor", "dtype", "nan"])
def test_bad_model_outputs_raise_chain_error(method, model, match):
    chain = _chain_with(model)
    x, k = _states(4, (3,), seed=8), torch.tensor([0, 1, 2, 2])
    with pytest.raises(ChainError, match=match):
        getattr(chain, method)(x, k)


class _LinearModel(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3, 3)

    def forward(self, x, k):
        return self.lin(x)


def test_to_moves_a_module_model():
    chain = GaussianChain(_LinearModel(), [1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [0.5, 0.5, 0.5], (3,))
    moved = chain.to(dtype=F64)
    assert moved is not chain and moved.n_steps == chain.n_steps
    x, k = _states(4, (3,), seed=9), torch.zeros(4, dtype=torch.long)
    assert moved.mean(x, k).dtype == F64


def test_sampling_leaves_the_callers_chains_alone():
    chain = GMMProblem(dim=3).chain(10)
    c64 = chain.to(dtype=F64)
    x, k = _states(10, (3,), seed=10), _all_steps(10)
    before = c64.mean(x, k)
    plain_sample(chain, 2, seed=0, options=SampleOptions(dtype=torch.float32))
    _close(c64.mean(x, k), before, rtol=0, atol=0)


# --- the generic chain -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(3,), (2, 3)])
def test_gaussian_chain_mean_is_mean_fn(shape):
    def mean_fn(x, k):
        return torch.sin(x) * (k.to(x.dtype) + 1).view(-1, *([1] * (x.ndim - 1))) - 0.3

    sigma = [0.5, 0.4, 0.3, 0.0]
    chain = gaussian_chain(mean_fn, sigma, shape)
    np.testing.assert_array_equal(chain.a, 0.0)
    np.testing.assert_array_equal(chain.b, 1.0)
    np.testing.assert_array_equal(chain.sigma, sigma)
    assert chain.output == "mean" and chain.n_steps == 4 and chain.shape == shape
    x, k = _states(8, shape, seed=11), torch.tensor([0, 1, 2, 3, 3, 2, 1, 0])
    torch.testing.assert_close(chain.mean(x, k), mean_fn(x, k), rtol=0, atol=0)


# --- the GMM closed-form denoiser ------------------------------------------------------------------------------

def test_one_component_denoiser_is_the_gaussian_posterior_mean():
    """For x0 ~ N(mu, v I): E[x0 | x_t] = mu + sqrt(abar) v / (abar v + 1 - abar) (x_t - sqrt(abar) mu)."""
    d, T, v = 4, 100, 0.3
    mu = np.array([0.5, -1.0, 2.0, 0.0])
    betas = beta_schedule("linear", T)
    den = GMMDenoiser(GMMSpec(np.ones(1), mu[None], np.array([v])), betas, "x0")
    x, t = _states(T, (d,), seed=12), torch.arange(T)
    abar = torch.as_tensor(np.cumprod(1 - betas))[:, None]
    mu_t = torch.as_tensor(mu)
    want = mu_t + abar.sqrt() * v / (abar * v + 1 - abar) * (x - abar.sqrt() * mu_t)
    _close(den.x0(x, t), want)
    _close(den(x, t), want)


def test_two_component_denoiser_matches_quadrature():
    """d = 1, two components: E[x0 | x_t] = int x0 p(x0) N(x_t; sqrt(abar) x0, 1 - abar) dx0 / (same without x0)."""
    T = 100
    spec = GMMSpec(np.array([0.3, 0.7]), np.array([[-1.0], [1.5]]), np.array([0.2, 0.5]))
    betas = beta_schedule("linear", T)
    abar_all = np.cumprod(1 - betas)
    den = GMMDenoiser(spec, betas, "x0")

    def prior(x0):
        return sum(w * math.exp(-0.5 * (x0 - m[0]) ** 2 / v) / math.sqrt(2 * math.pi * v)
                   for w, m, v in zip(spec.weights, spec.means, spec.variances, strict=True))

    for t in (0, 10, 50, 99):
        abar = float(abar_all[t])
        for xt in (-2.0, 0.3, 2.5):
            def lik(x0, xt=xt, abar=abar):
                return math.exp(-0.5 * (xt - math.sqrt(abar) * x0) ** 2 / (1 - abar))

            # Integrate where the integrand lives: around the likelihood peak x_t / sqrt(abar) and the means.
            width = 12 * math.sqrt((1 - abar) / abar)
            lo, hi = min(-8.0, xt / math.sqrt(abar) - width), max(8.0, xt / math.sqrt(abar) + width)
            pts = [xt / math.sqrt(abar), -1.0, 1.5]
            kw = dict(points=pts, epsabs=0.0, epsrel=1e-12, limit=500)
            num, _ = integrate.quad(lambda x0, lik=lik: x0 * prior(x0) * lik(x0), lo, hi, **kw)
            den_, _ = integrate.quad(lambda x0, lik=lik: prior(x0) * lik(x0), lo, hi, **kw)
            got = den.x0(torch.tensor([[xt]], dtype=F64), torch.tensor([t]))
            assert float(got) == pytest.approx(num / den_, rel=1e-8, abs=1e-10), (t, xt)
