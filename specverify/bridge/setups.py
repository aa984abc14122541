"""The problem registry of the door: each built-in problem set up on both sides (:class:`Setup`: its torch chain
and third-party view from :mod:`specverify.sampler.problems`, its ground truth from
:mod:`specverify.harness.reference`), the judge's transition for the transition-level check, and
:data:`REGISTRY`. Adding a problem is one file per side and one entry here; nothing else dispatches on problem
names."""

from __future__ import annotations

import dataclasses

from specverify._validate import positive_int
from specverify.bridge.ours import Ours, make_candidate
from specverify.errors import UsageError
from specverify.harness.dimension import ChainOptions

__all__ = ["REGISTRY", "ProblemChain", "ProblemEntry", "Setup", "entry", "make_reference", "make_setup",
           "make_target", "reference_name", "setup_of"]


@dataclasses.dataclass(frozen=True)
class ProblemChain(ChainOptions):
    """A built-in problem's chain: a diffusion's options (:class:`~specverify.harness.dimension.ChainOptions`:
    ``sampler`` ddpm or ddim, the beta ``schedule``, the model's ``prediction`` eps, x0 or v, DDIM's ``eta``) or
    a Langevin chain's ``step_size`` h (None: the problem's). Checked against the problem by :func:`make_setup`,
    and by the chain when it is built."""

    step_size: float | None = None


@dataclasses.dataclass(frozen=True)
class Setup:
    """A built-in problem, its chain options and its number of steps."""

    name: str
    problem: object
    chain_kwargs: dict
    steps: int

    @property
    def entry(self) -> ProblemEntry:
        return entry(self.name)

    @property
    def dim(self) -> int:
        return self.problem.dim

    @property
    def key(self) -> str:
        """Identifies the chain for caches (trained drafter heads): problem, d, options and any trained models."""
        tags = [c.tag() for c in getattr(self.problem, "configs", ())]
        return f"{self.name}-{self.dim}-{sorted(self.chain_kwargs.items())}" + "".join(f"-{t}" for t in tags)

    def chain(self):
        return self.problem.chain(self.steps, **self.chain_kwargs)

    def draft_chain(self):
        return self.problem.draft_chain(self.steps, **self.chain_kwargs)

    def view(self):
        """The third-party view of :meth:`chain` (eps_model + betas, and mean + sigma)."""
        if self.entry.langevin:
            return self.problem.third_party(self.steps)
        kw = self.chain_kwargs
        return self.problem.third_party(self.steps, schedule=kw["schedule"], sampler=kw["sampler"], eta=kw["eta"])


def make_setup(problem: str = "gmm", *, dim: int | None = None, steps: int = 100, chain: ProblemChain | None = None,
               components: int = 8, options: dict | None = None) -> Setup:
    """The named built-in problem (see `specverify problems`) with its diffusion or Langevin ``chain``
    (:class:`ProblemChain`, default ``ProblemChain()``). ``dim``: default 2, or the problem's fixed size (digits:
    64); ``components``: gmm's mixture size. ``options``: more keyword arguments for the problem's constructor
    (e.g. ``{"config": "quick"}`` for digits)."""
    from specverify.sampler.problems import default_dim

    e = entry(problem)
    c = ProblemChain() if chain is None else chain
    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise UsageError(f"steps must be an integer >= 1, got {steps}")
    kwargs = {"dim": default_dim(problem) if dim is None else dim, **(options or {})}
    positive_int(components, "components", " (gmm: mixture size)", error=UsageError)
    given = {"components": components, "step_size": c.step_size}
    for option, keyword in e.options.items():
        if given[option] is not None:
            kwargs[keyword] = given[option]
    if e.langevin:
        if c.sampler != "ddpm" or c.eta != 1.0:
            raise UsageError(f"{problem} is a Langevin chain: --chain and --eta do not apply")
        return Setup(problem, e.problem(**kwargs), {}, int(steps))
    if c.step_size is not None:
        raise UsageError("--step-size applies to the Langevin problems only")
    return Setup(problem, e.problem(**kwargs), dict(schedule=c.schedule, sampler=c.sampler, prediction=c.prediction,
                                                    eta=c.eta), int(steps))


def setup_of(problem: str, options: dict) -> Setup:
    """:func:`make_setup` from a flat mapping of its keywords and :class:`ProblemChain`'s fields (a stress
    configuration's ``options``, e.g. ``{"dim": 2, "steps": 10, "schedule": "cosine"}``)."""
    fields = {f.name for f in dataclasses.fields(ProblemChain)}
    chain = ProblemChain(**{k: v for k, v in options.items() if k in fields})
    return make_setup(problem, chain=chain, **{k: v for k, v in options.items() if k not in fields})


def make_reference(setup: Setup, *, device="cpu"):
    """The problem's ground truth from the reference side: ("law", GaussianLaw) or ("sampler", fn(n, seed))."""
    return setup.entry.truth(setup, device)


def reference_name(setup: Setup) -> str:
    """What :func:`make_reference` returns for ``setup``, in words."""
    return setup.entry.truth_name


# ---------------------------------------------------------------------------------------------------------
# The registry: each problem's ground truth, from the reference side (JAX/numpyro)


def _diffusion(setup: Setup):
    from specverify.harness import reference as ref
    from specverify.specs import beta_schedule

    kw = setup.chain_kwargs
    betas = beta_schedule(kw["schedule"], setup.steps)
    return ref, betas, ref.diffusion_transition(betas, kw["sampler"], eta=kw["eta"])


def _gaussian_truth(setup: Setup, device):
    ref, _, tr = _diffusion(setup)
    return "law", ref.gaussian_chain_law(setup.problem.spec, tr).final


def _gmm_truth(setup: Setup, device):
    import jax

    ref, betas, tr = _diffusion(setup)
    eps, dim = ref.gmm_eps(setup.problem.spec, betas), setup.dim

    def diffusion_reference(n, seed):
        return ref.sample_diffusion(jax.random.PRNGKey(seed), eps, tr, (n, dim))

    return "sampler", diffusion_reference


def _images_truth(setup: Setup, device):
    ref, betas, tr = _diffusion(setup)
    return "sampler", ref.images_sampler(setup.problem.spec, betas, tr)


def _langevin_gaussian_truth(setup: Setup, device):
    from specverify.harness import reference as ref

    return "law", ref.langevin_gaussian_law(setup.problem.spec, setup.problem.step_size, setup.steps).final


def _langevin_model_truth(setup: Setup, device):
    import jax

    from specverify.harness import reference as ref

    problem, steps = setup.problem, setup.steps
    score = ref.logistic_score(problem.spec)

    def langevin_reference(n, seed):
        k0, k1 = jax.random.split(jax.random.PRNGKey(seed))
        x0 = problem.prior_std * jax.random.normal(k0, (n, problem.dim))
        return ref.sample_langevin(k1, score, problem.step_size, steps, x0)

    return "sampler", langevin_reference


def _plain_truth(setup: Setup, device):
    """No closed form and no JAX twin of the network: our plain sampler on the same chain (so a check tests
    the speculative machinery, not the plain sampler)."""
    return "sampler", make_candidate(setup, Ours(sampler="plain"), device=device)


# The judge's transitions (the innovation block's mean): JAX twins where they exist


def _jax_diffusion_target(setup: Setup, eps_builder):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from specverify.harness.targets import Transition

    _, betas, tr = _diffusion(setup)
    eps = eps_builder(setup.problem.spec, betas)
    t, cx, ce = jnp.asarray(tr.t), jnp.asarray(tr.c_x), jnp.asarray(tr.c_eps)
    mean = jax.jit(lambda x, k: cx[k][:, None] * x + ce[k][:, None] * eps(x, t[k]))
    return Transition(lambda x, k: np.asarray(mean(jnp.asarray(x), jnp.asarray(k))), np.asarray(tr.sigma),
                      (setup.dim,), 0.0, 1.0, f"JAX twin ({setup.name}, {tr.sampler})", (tr.c_x, tr.c_eps))


def _jax_langevin_target(setup: Setup, score):
    import jax
    import jax.numpy as jnp
    import numpy as np

    from specverify._validate import step_sizes
    from specverify.harness.targets import Transition

    h = step_sizes(setup.problem.step_size, setup.steps)
    hj = jnp.asarray(h)
    mean = jax.jit(lambda x, k: x + hj[k][:, None] * score(x))
    return Transition(lambda x, k: np.asarray(mean(jnp.asarray(x), jnp.asarray(k))), np.sqrt(2 * h), (setup.dim,),
                      0.0, float(setup.problem.prior_std), f"JAX twin ({setup.name}, Langevin)")


def _view_target(setup: Setup):
    """No JAX twin (digits): the third-party view's mean, in float64."""
    from specverify.harness.targets import as_transition

    return as_transition(setup.view(), source=f"third-party view ({setup.name}: no JAX twin of its network)")


def make_target(setup: Setup):
    """The judge's transition of ``setup``'s chain (``harness.targets.Transition``): its JAX twin where one exists
    (gaussian, gmm, images, the Langevin problems), else the third-party view's mean (digits)."""
    from specverify.harness import reference as ref

    name = setup.name
    if name in ("gaussian", "gmm", "images"):
        return _jax_diffusion_target(setup, {"gaussian": ref.gaussian_eps, "gmm": ref.gmm_eps,
                                             "images": ref.images_eps}[name])
    if name == "langevin-gaussian":
        return _jax_langevin_target(setup, ref.gaussian_score(setup.problem.spec))
    if name == "langevin-model":
        return _jax_langevin_target(setup, ref.logistic_score(setup.problem.spec))
    return _view_target(setup)


@dataclasses.dataclass(frozen=True)
class ProblemEntry:
    """A built-in problem across the door.

    ``problem``: the torch-side class (its chain, draft chain and third-party view); ``langevin``: the chain
    family (step size) rather than a diffusion (schedule, sampler, eta); ``truth(setup, device)``: the ground
    truth, ("law", law) or ("sampler", fn(n, seed)); ``truth_name``: that, in words; ``options``: the
    :func:`make_setup` keywords the problem takes, mapped to its constructor's; ``delta``: the default smallest
    per-step shift the transition-level check is sized for (images: 0.05, so that a default check of 3072-pixel
    trajectories stays within minutes on 2 cores).
    """

    name: str
    problem: type
    langevin: bool
    truth: object
    truth_name: str
    options: dict = dataclasses.field(default_factory=dict)
    delta: float = 0.02


def _registry() -> dict:
    from specverify.sampler import problems as P

    entries = [
        ProblemEntry("gaussian", P.GaussianProblem, False, _gaussian_truth, "exact law"),
        ProblemEntry("gmm", P.GMMProblem, False, _gmm_truth, "JAX reference sampler", {"components": "n_components"}),
        ProblemEntry("langevin-gaussian", P.LangevinGaussianProblem, True, _langevin_gaussian_truth, "exact law",
                     {"step_size": "step_size"}),
        ProblemEntry("langevin-model", P.LangevinModelProblem, True, _langevin_model_truth, "JAX reference sampler",
                     {"step_size": "step_size"}),
        ProblemEntry("digits", P.DigitsProblem, False, _plain_truth, "plain sampler (ours: digits has no JAX twin)"),
        ProblemEntry("images", P.ImagesProblem, False, _images_truth, "JAX reference sampler", delta=0.05),
    ]
    return {e.name: e for e in entries}


REGISTRY: dict[str, ProblemEntry] = _registry()


def entry(name: str) -> ProblemEntry:
    """The registry entry of a built-in problem; a clear error for an unknown name."""
    if name not in REGISTRY:
        raise UsageError(f"unknown problem {name!r}; choose one of {', '.join(REGISTRY)} (see `specverify problems`)")
    return REGISTRY[name]
