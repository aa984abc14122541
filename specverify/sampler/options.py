"""The samplers' options (:class:`SampleOptions`): one small frozen record, checked once when it is made.

``speculative_sample(chain, drafter, n, window=..., seed=..., options=...)`` and ``plain_sample(chain, n, seed=...,
options=...)`` take everything beyond the window and the seed here, so that a run's settings can be built once,
passed around and changed with :func:`dataclasses.replace` (which checks them again).
"""

from __future__ import annotations

import dataclasses

import torch

from specverify.errors import SamplerError
from specverify.sampler.kernel import Parts
from specverify.sampler.noise import NoiseSource
from specverify.sampler.verifiers import check_verifier
from specverify.specs import ROUND_POLICIES

__all__ = ["SPECULATIVE_ONLY", "SampleOptions", "check_plain"]


@dataclasses.dataclass(frozen=True)
class SampleOptions:
    """How a sampler runs, beyond the window and the seed (defaults: the plain float32 run on CPU).

    Both samplers: ``noise`` (a :class:`specverify.sampler.noise.NoiseSource`; default: ``GeneratorNoise`` from the
    seed), ``x0`` (the initial states, (n, *shape); default: prior draws from the seed), ``device`` (default: x0's,
    else CPU), ``dtype`` (torch.float32 or torch.float64), ``progress`` (a tqdm bar) and ``path`` (return the whole
    path, (n, T + 1, *shape), instead of x_T).

    Speculative only (:data:`SPECULATIVE_ONLY`; ``plain_sample`` refuses them away from their defaults): ``policy``
    (one of :data:`specverify.specs.ROUND_POLICIES`), ``verifier`` (one of
    :data:`specverify.sampler.verifiers.VERIFIERS`) with ``drafts`` drafts at each window's first position,
    ``max_batch`` (samples per batch; default: as many as keep one (batch, window + 1, *shape) block under 2^25
    elements), ``compile`` (True or a backend's name: the round's core through ``torch.compile``) and ``parts``
    (the round's replaced parts, :class:`specverify.sampler.kernel.Parts`: for the mutation tests only).
    """

    policy: str = "accepted+1"
    verifier: str = "reflection"
    drafts: int = 1
    noise: NoiseSource | None = None
    x0: torch.Tensor | None = None
    device: torch.device | str | None = None
    dtype: torch.dtype = torch.float32
    max_batch: int | None = None
    progress: bool = False
    compile: bool | str = False
    path: bool = False
    parts: Parts | None = None

    def __post_init__(self):
        mb = self.max_batch
        if mb is not None and (not isinstance(mb, int) or isinstance(mb, bool) or mb < 1):
            raise SamplerError(f"max_batch must be a positive int or None, got {mb!r}")
        if self.policy not in ROUND_POLICIES:
            raise SamplerError(f"policy must be one of {', '.join(ROUND_POLICIES)}, got {self.policy!r}")
        check_verifier(self.verifier, self.drafts)
        if self.dtype not in (torch.float32, torch.float64):
            raise SamplerError(f"dtype must be torch.float32 or torch.float64, got {self.dtype}")
        if self.parts is not None and not isinstance(self.parts, Parts):
            raise SamplerError(f"parts must be a specverify.sampler.kernel.Parts or None, got {self.parts!r}")


SPECULATIVE_ONLY = ("policy", "verifier", "drafts", "max_batch", "compile", "parts")
_DEFAULTS = SampleOptions()


def check_plain(options: SampleOptions) -> None:
    """Refuse the options the plain sampler cannot honour (:data:`SPECULATIVE_ONLY` away from their defaults)."""
    for name in SPECULATIVE_ONLY:
        value = getattr(options, name)
        if value is not getattr(_DEFAULTS, name) and value != getattr(_DEFAULTS, name):
            raise SamplerError(f"plain_sample has no {name} option (got {name}={value!r}): it is speculative_sample's; "
                               f"leave it at its default ({getattr(_DEFAULTS, name)!r}) for the plain sampler")
