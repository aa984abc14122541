"""Drafters and their registry (``specverify drafters`` lists it)."""

from __future__ import annotations

from specverify.errors import SamplerError
from specverify.sampler.drafters.base import Drafter
from specverify.sampler.drafters.frozen import FrozenDenoiser, FrozenDrift
from specverify.sampler.drafters.independent import Independent, Oracle
from specverify.sampler.drafters.medusa import Medusa
from specverify.sampler.drafters.stress import Stress

__all__ = ["DRAFTERS", "Drafter", "FrozenDenoiser", "FrozenDrift", "Independent", "Medusa", "Oracle", "Stress",
           "make_drafter"]

# name -> (class, one line for `specverify drafters`)
DRAFTERS = {
    "frozen-drift": (FrozenDrift, "paper's training-free drafter: reuse the target increment m_p(x_n) - x_n"),
    "frozen-denoiser": (FrozenDenoiser, "reuse the target's eps/x0/v prediction at x_n with each step's coefficients"),
    "independent": (Independent, "a cheaper chain on the same schedule (needs draft_chain=, e.g. a smaller model)"),
    "medusa": (Medusa, "small heads trained on target rollouts predict the target's future outputs (needs heads=)"),
    "oracle": (Oracle, "the target itself: acceptance 1, output = plain sampler (a test, not a speed-up)"),
    "stress": (Stress, "target mean shifted by delta sigma: acceptance 2 Phi(-delta/2), 0.55 at delta=1.2 (a test)"),
}


def make_drafter(name: str, **kwargs) -> Drafter:
    """A drafter by registry name; ``independent`` needs ``draft_chain=``."""
    if name not in DRAFTERS:
        raise SamplerError(f"unknown drafter {name!r}; choose one of {', '.join(DRAFTERS)}")
    cls = DRAFTERS[name][0]
    if name == "independent" and kwargs.get("draft_chain") is None:
        raise SamplerError("the independent drafter needs draft_chain=: a cheaper chain on the same schedule")
    if name == "medusa" and kwargs.get("heads") is None:
        raise SamplerError("the medusa drafter needs heads=: train them with "
                           "specverify.sampler.drafters.medusa.load_or_train(chain, window, key=...)")
    if name != "independent":
        kwargs.pop("draft_chain", None)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise SamplerError(f"drafter {name!r} does not take these options: {e}") from None
