"""One small exception hierarchy; every message says what to do."""

__all__ = ["ChainError", "SamplerError", "SpecverifyError"]


class SpecverifyError(Exception):
    """Base class of specverify's errors."""


class ChainError(SpecverifyError, ValueError):
    """A chain, schedule or model output is invalid."""


class SamplerError(SpecverifyError, ValueError):
    """Bad arguments to a sampler or a drafter."""
