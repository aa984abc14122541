"""The contract a third-party sampler codes against, as plain, torch-free types (shared by both halves).

:class:`ThirdPartyView` is a problem as an outside sampler sees it; the torch side builds one per problem
(``DiffusionProblem.third_party``), the judge reads one through its adapters (``specverify.harness.adapters``,
``specverify.harness.targets``). Its callables take and return the caller's arrays (torch tensors for our
problems); nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["ThirdPartyView"]


@dataclasses.dataclass(frozen=True, eq=False)
class ThirdPartyView:
    """A problem as an outside sampler sees it.

    ``mean(x, k)`` and ``sigma[k]``: chain step k maps x_k to N(mean(x_k, k), sigma_k^2 I) (always present).
    ``eps_model(x, t)``, ``betas``, ``timesteps``, ``eta``: the diffusion-model view (None for Langevin
    problems). Chain step k runs the model at diffusion time ``timesteps[k]``.
    ``prior_mean``, ``prior_std``: the initial law, x_0 ~ N(prior_mean, prior_std^2 I) (always present).
    """

    shape: tuple[int, ...]
    n_steps: int
    mean: Callable[[Any, Any], Any]
    sigma: np.ndarray
    eps_model: Callable[[Any, Any], Any] | None = None
    betas: np.ndarray | None = None
    timesteps: np.ndarray | None = None
    eta: float | None = None
    sampler: str = ""
    prior_mean: float = 0.0
    prior_std: float = 1.0
