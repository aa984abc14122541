"""Noise sources for the samplers. Randomness is an argument.

A noise source hands out, for flattened (sample id, chain step) pairs, standard normal vectors z and uniforms u.
``GeneratorNoise`` draws fresh values from a ``torch.Generator`` on every call. ``TableNoise`` looks them up in
fixed tables indexed by (sample, step): the plain sampler and the speculative sampler then consume the same
noise per (sample, step), which is what the oracle-drafter identity test needs. Verifiers beyond reflection
(several drafts per step, block verification) also need noise that belongs to no step: ``fresh_normal`` and
``fresh_uniform``, which only a generator can give.
"""

from __future__ import annotations

import torch

from specverify.errors import SamplerError

__all__ = ["GeneratorNoise", "NoiseSource", "TableNoise"]


class NoiseSource:
    """Interface: ``normal(ids, steps, shape, like)`` -> (m, *shape); ``uniform(ids, steps)`` -> (m,) float64."""

    def normal(self, ids: torch.Tensor, steps: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def uniform(self, ids: torch.Tensor, steps: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def fresh_normal(self, like: torch.Tensor) -> torch.Tensor:
        """Standard normals shaped like ``like``, tied to no (sample, step): new on every call."""
        raise SamplerError(f"{type(self).__name__} gives one draw per (sample, step); this verifier also needs "
                           "fresh noise per round: use GeneratorNoise (the default with a seed)")

    def fresh_uniform(self, shape: tuple, device) -> torch.Tensor:
        """Float64 uniforms of ``shape``, tied to no (sample, step)."""
        self.fresh_normal(torch.empty(0))


class GeneratorNoise(NoiseSource):
    """Fresh draws from a generator (or a seed) on every call."""

    def __init__(self, generator: torch.Generator | int | None = None, device=None):
        if generator is None or isinstance(generator, int):
            g = torch.Generator(device=device or "cpu")
            if generator is None:
                g.seed()
            else:
                g.manual_seed(generator)
            generator = g
        self.generator = generator

    def normal(self, ids, steps, like):
        return torch.randn(like.shape, generator=self.generator, device=like.device, dtype=like.dtype)

    def uniform(self, ids, steps):
        # float64 uniforms: P(u = 0) = 2^-53, so log u <= log ratio is an exact Bernoulli(min(1, ratio)).
        return torch.rand(ids.shape, generator=self.generator, device=ids.device, dtype=torch.float64)

    def fresh_normal(self, like):
        return self.normal(None, None, like)

    def fresh_uniform(self, shape, device):
        return torch.rand(shape, generator=self.generator, device=device, dtype=torch.float64)


class TableNoise(NoiseSource):
    """Noise fixed per (sample, step): ``z`` of shape (n, n_steps, *shape), ``u`` of shape (n, n_steps)."""

    def __init__(self, z: torch.Tensor, u: torch.Tensor):
        if z.ndim < 3 or u.shape != z.shape[:2]:
            raise SamplerError(f"z must be (n, n_steps, *shape) and u (n, n_steps); "
                               f"got {tuple(z.shape)} and {tuple(u.shape)}")
        if not bool(((u > 0) & (u < 1)).all()):
            raise SamplerError("u must lie in the open interval (0, 1)")
        self.z, self.u = z, u.to(torch.float64)

    @classmethod
    def draw(cls, n, n_steps, shape, *, seed=0, device=None, dtype=torch.float32) -> TableNoise:
        g = torch.Generator(device=device or "cpu").manual_seed(seed)
        z = torch.randn((n, n_steps, *shape), generator=g, device=device, dtype=dtype)
        u = torch.rand((n, n_steps), generator=g, device=device, dtype=torch.float64).clamp_min(1e-300)
        return cls(z, u)

    def normal(self, ids, steps, like):
        out = self.z[ids, steps]
        if out.shape != like.shape:
            raise SamplerError(f"noise table gives {tuple(out.shape)} where the sampler needs {tuple(like.shape)}")
        return out.to(like.dtype)

    def uniform(self, ids, steps):
        return self.u[ids, steps]
