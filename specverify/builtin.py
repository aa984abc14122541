"""Built-in problems wired for the harness: our sampler (or a mutant) as a candidate, the problem's ground truth
from the reference side, and one call that checks the first against the second.

The CLI (`specverify check`, `specverify mutants`) and the scripts of ``paper_repro/`` go through here.
"""

from __future__ import annotations

import dataclasses

from specverify.errors import SpecverifyError

__all__ = ["STRESS_WINDOW", "Setup", "check", "make_builtin_drafter", "make_candidate", "make_reference", "make_setup",
           "mutant_verdict", "reference_name"]


@dataclasses.dataclass(frozen=True)
class Setup:
    """A built-in problem, its chain options and its number of steps."""

    name: str
    problem: object
    chain_kwargs: dict
    steps: int

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
        if self.name.startswith("langevin"):
            return self.problem.third_party(self.steps)
        kw = self.chain_kwargs
        return self.problem.third_party(self.steps, schedule=kw["schedule"], sampler=kw["sampler"], eta=kw["eta"])


def make_setup(problem: str = "gmm", *, dim: int | None = None, steps: int = 100, chain: str = "ddpm", eta: float = 1.0,
               schedule: str = "linear", prediction: str = "eps", components: int = 8,
               step_size: float | None = None, options: dict | None = None) -> Setup:
    """The named built-in problem (see `specverify problems`) with its diffusion or Langevin chain options.
    ``dim``: default 2, or the problem's fixed size (digits: 64). ``options``: more keyword arguments for the
    problem's constructor (e.g. ``{"config": "quick"}`` for digits)."""
    from specverify.problems import PROBLEMS, default_dim, make_problem

    if isinstance(steps, bool) or int(steps) != steps or steps < 1:
        raise SpecverifyError(f"steps must be >= 1, got {steps}")
    kwargs = {"dim": default_dim(problem) if dim is None else dim, **(options or {})}
    if problem == "gmm":
        kwargs["n_components"] = components
    if problem.startswith("langevin"):
        if chain != "ddpm" or eta != 1.0:
            raise SpecverifyError(f"{problem} is a Langevin chain: --chain and --eta do not apply")
        if step_size is not None:
            kwargs["step_size"] = step_size
        return Setup(problem, make_problem(problem, **kwargs), {}, int(steps))
    if problem in PROBLEMS and step_size is not None:
        raise SpecverifyError("--step-size applies to the Langevin problems only")
    p = make_problem(problem, **kwargs)
    return Setup(problem, p, dict(schedule=schedule, sampler=chain, prediction=prediction, eta=eta), int(steps))


def make_builtin_drafter(setup: Setup, name: str, window: int, *, stress_delta: float = 1.2, device="cpu"):
    """The named drafter for ``setup``: the independent one gets the problem's draft chain, medusa heads trained
    on the problem's target rollouts (cached under .cache/medusa), stress its delta."""
    from specverify.drafters import make_drafter

    if name == "independent":
        return make_drafter(name, draft_chain=setup.draft_chain())
    if name == "medusa":
        from specverify.drafters.medusa import load_or_train

        return make_drafter(name, heads=load_or_train(setup.chain(), window, key=setup.key))
    if name == "stress":
        return make_drafter(name, delta=stress_delta)
    return make_drafter(name)


def make_candidate(setup: Setup, *, sampler: str = "speculative", drafter: str = "frozen-denoiser", window: int = 8,
                   mutant: str | None = None, stress_delta: float = 1.2, device="cpu"):
    """Our sampler (or the named mutant) on ``setup`` as a black box: (n, seed) -> samples and acceptance counts."""
    import torch

    from specverify.mutants import MUTANTS, mutant_sample
    from specverify.sampling import plain_sample, speculative_sample

    if mutant and (mutant not in MUTANTS or sampler != "speculative"):
        raise SpecverifyError(f"--mutant needs --sampler speculative and one of {', '.join(MUTANTS)}")
    chain = setup.chain()
    d = make_builtin_drafter(setup, drafter, window, stress_delta=stress_delta) if sampler != "plain" else None

    def candidate(n, seed):  # image states (digits: (n, 1, 8, 8)) are flattened to (n, d) for the harness
        if sampler == "plain":
            return plain_sample(chain, n, seed=seed, device=device, dtype=torch.float64).cpu().numpy().reshape(n, -1)
        kw = dict(window=window, seed=seed, device=device, dtype=torch.float64)
        if mutant:
            x, st = mutant_sample(mutant, chain, d, n, **kw)
        else:
            x, st = speculative_sample(chain, d, n, **kw)
        return {"samples": x.cpu().numpy().reshape(n, -1), "accepted": st.accepted_per_sample,
                "predicted": st.predicted_per_sample, "verified": st.verified_per_sample,
                "accepted_per_position": st.accepted_per_position,
                "verified_per_position": st.verified_per_position,
                "predicted_per_position": st.predicted_accepted_per_position}

    return candidate


def make_reference(setup: Setup, *, device="cpu"):
    """The problem's ground truth from the reference side: ("law", GaussianLaw) or ("sampler", fn(n, seed)).
    digits has no closed form and no JAX twin of its network: its reference is our plain sampler on the same
    chain (so a check there tests the speculative machinery, not the plain sampler)."""
    if setup.name == "digits":
        return "sampler", make_candidate(setup, sampler="plain", device=device)
    import jax

    from specverify import reference as ref
    from specverify.specs import beta_schedule

    problem, steps, kw = setup.problem, setup.steps, setup.chain_kwargs
    if setup.name.startswith("langevin"):
        h = problem.step_size
        if setup.name == "langevin-gaussian":
            return "law", ref.langevin_gaussian_law(problem.spec, h, steps).final
        score = ref.logistic_score(problem.spec)

        def langevin_reference(n, seed):
            k0, k1 = jax.random.split(jax.random.PRNGKey(seed))
            x0 = problem.prior_std * jax.random.normal(k0, (n, problem.dim))
            return ref.sample_langevin(k1, score, h, steps, x0)

        return "sampler", langevin_reference
    betas = beta_schedule(kw["schedule"], steps)
    tr = ref.diffusion_transition(betas, kw["sampler"], eta=kw["eta"])
    if setup.name == "gaussian":
        return "law", ref.gaussian_chain_law(problem.spec, tr).final
    eps = ref.gmm_eps(problem.spec, betas)

    def diffusion_reference(n, seed):
        return ref.sample_diffusion(jax.random.PRNGKey(seed), eps, tr, n, problem.dim)

    return "sampler", diffusion_reference


def reference_name(setup: Setup) -> str:
    """What :func:`make_reference` returns for ``setup``, in words."""
    if setup.problem.exact_law:
        return "exact law"
    return "plain sampler (ours: digits has no JAX twin)" if setup.name == "digits" else "JAX reference sampler"


def check(setup: Setup, candidate, reference=None, *, alpha: float = 0.01, beta: float = 0.05,
          epsilon: float = 0.05, n: int | None = None, seed: int = 0, n_perm: int | None = None,
          keep_samples: bool = False):
    """Run the suite: ``candidate`` against ``reference`` (default: the problem's, from :func:`make_reference`)."""
    from specverify.harness import check_against_law, check_against_sampler

    kind, ref = make_reference(setup) if reference is None else reference
    opts = dict(alpha=alpha, beta=beta, epsilon=epsilon, n=n, seed=seed, keep_samples=keep_samples)
    if kind == "law":
        return check_against_law(candidate, ref.mean, ref.eigvals, ref.eigvecs, **opts)
    return check_against_sampler(candidate, ref, setup.dim, n_perm=n_perm, **opts)


STRESS_WINDOW = 4


def mutant_verdict(setup: Setup, reference, mutant: str | None, *, drafter: str = "frozen-denoiser",
                   window: int = 8, stress_delta: float = 1.2, alpha: float = 0.01, beta: float = 0.05,
                   epsilon: float = 0.05, n: int | None = None, seed: int = 0, device="cpu") -> dict:
    """Check ``mutant`` (None: the correct sampler) under two configurations, the given drafter and the stress
    drafter, at alpha / 2 each (so the verdict's false-alarm rate is <= alpha); detected if either rejects.
    Returns a row with each configuration's verdict, n, min adjusted p-value and the tests that rejected."""
    configs = {"default": (drafter, window), "stress": ("stress", STRESS_WINDOW)}
    row = {"name": mutant or "correct", "configurations": {}}
    for label, (d, w) in configs.items():
        cand = make_candidate(setup, drafter=d, window=w, mutant=mutant, stress_delta=stress_delta, device=device)
        rep = check(setup, cand, reference, alpha=alpha / len(configs), beta=beta, epsilon=epsilon, n=n, seed=seed)
        row["configurations"][label] = {"drafter": d, "window": w, "verdict": rep.verdict, "n": rep.n,
                                        "min_adjusted_pvalue": min(t["adjusted_pvalue"] for t in rep.tests),
                                        "rejected_tests": [t["name"] for t in rep.tests if t["rejected"]]}
    row["detected"] = any(c["verdict"] == "fail" for c in row["configurations"].values())
    row["min_adjusted_pvalue"] = min(c["min_adjusted_pvalue"] for c in row["configurations"].values())
    row["caught_by"] = [k for k, c in row["configurations"].items() if c["verdict"] == "fail"]
    return row
