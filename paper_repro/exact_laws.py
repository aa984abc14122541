"""How far the discretised chains are from the laws they approximate, computed exactly.

specverify checks samplers against the law of the DISCRETISED chain (exact), never against the data law
(approximate). This script shows the difference on the `gaussian` and `langevin-gaussian` problems, where both
laws are Gaussian and known in closed form (reference side, float64):

- DDPM / DDIM on N(mu, Sigma): KL(law of the chain's output || data law) against the number of steps.
- Unadjusted Langevin on N(mu, Sigma): KL(finite-step law || target) after n steps, and KL(ULA's stationary law
  || target) against the step size h (per eigen-direction the stationary variance is lambda / (1 - h / (2 lambda))).

Every number is computed by this script. ``--smoke`` runs a small version (CI).
"""

from __future__ import annotations

import argparse
import json

from specverify.harness import reference as ref
from specverify.specs import GaussianSpec, beta_schedule


def diffusion_rows(dims, steps_list, configs):
    rows = []
    for d in dims:
        spec = GaussianSpec.default(d)
        data = ref.data_law(spec)
        for name, schedule, sampler, kw in configs:
            for steps in steps_list:
                tr = ref.diffusion_transition(beta_schedule(schedule, steps), sampler, **kw)
                out = ref.gaussian_chain_law(spec, tr).final
                rows.append({"dim": d, "chain": name, "steps": steps, "kl_chain_vs_data": ref.gaussian_kl(out, data)})
    return rows


def langevin_rows(dims, step_sizes, n_steps):
    rows = []
    for d in dims:
        spec = GaussianSpec.default(d)
        target = ref.data_law(spec)
        for h in step_sizes:
            finite = ref.langevin_gaussian_law(spec, h, n_steps).final
            stationary = ref.ula_stationary_law(spec, h)
            rows.append({"dim": d, "step_size": h, "n_steps": n_steps,
                         "kl_finite_vs_target": ref.gaussian_kl(finite, target),
                         "kl_stationary_vs_target": ref.gaussian_kl(stationary, target)})
    return rows


CONFIGS = [("ddpm (posterior var, linear)", "linear", "ddpm", {}),
           ("ddpm (beta var, linear)", "linear", "ddpm", {"variance": "beta"}),
           ("ddpm (posterior var, cosine)", "cosine", "ddpm", {}),
           ("ddim eta=0.5 (linear)", "linear", "ddim", {"eta": 0.5})]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--smoke", action="store_true", help="small sizes, for CI")
    ap.add_argument("--json", help="also write the rows here")
    args = ap.parse_args(argv)
    dims = [2, 16] if args.smoke else [2, 16, 256, 3072]
    steps = [10, 50] if args.smoke else [10, 50, 200, 1000]
    diff = diffusion_rows(dims, steps, CONFIGS)
    lang = langevin_rows(dims, [0.01, 0.05] if args.smoke else [0.005, 0.01, 0.05, 0.1], 200 if args.smoke else 2000)

    print("KL(output law of the discretised chain || data law N(mu, Sigma)), gaussian problem")
    print(f"{'d':>5}  {'chain':<30}" + "".join(f"{s:>12}" for s in steps))
    for d in dims:
        for name, *_ in CONFIGS:
            vals = [r["kl_chain_vs_data"] for r in diff if r["dim"] == d and r["chain"] == name]
            print(f"{d:>5}  {name:<30}" + "".join(f"{v:>12.3e}" for v in vals))
    print("\nUnadjusted Langevin on N(mu, Sigma) (langevin-gaussian), from x_0 ~ N(0, I)")
    print(f"{'d':>5} {'h':>7} {'n_steps':>8} {'KL(finite || target)':>22} {'KL(stationary || target)':>26}")
    for r in lang:
        print(f"{r['dim']:>5} {r['step_size']:>7} {r['n_steps']:>8} {r['kl_finite_vs_target']:>22.3e} "
              f"{r['kl_stationary_vs_target']:>26.3e}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"diffusion": diff, "langevin": lang}, f, indent=1)
    return diff, lang


if __name__ == "__main__":
    main()
