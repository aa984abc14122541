"""One small exception hierarchy; every message says what to do.

Every user-facing error is a :class:`SpecverifyError`; each class is also the builtin a caller would catch
(``ValueError`` for bad input, ``RuntimeError`` for a run that broke). The command line maps any of them,
and any unexpected exception, to exit code 2 (see :func:`specverify.cli.main`); exit 1 means exactness
rejected and nothing else. :data:`EXIT_CODES` and :func:`exit_code` are that one map, read by the command line
and by every result record's ``exit_code``.

One class lives elsewhere: the pytest plugin's ``OptionError`` (:mod:`specverify.pytest_plugin`) is also a
``pytest.UsageError``, so pytest reports a bad option as a usage error, and this module does not import pytest.
"""

__all__ = ["EXIT_CODES", "BudgetError", "CandidateError", "ChainError", "ContractError", "LawInputError", "PermutationError",
           "PowerError", "SampleSizeError", "SamplerError", "ShardError", "SpecverifyError", "StatsError", "UsageError",
           "exit_code"]

EXIT_CODES = {"pass": 0, "fail": 1, "error": 2}  # an outcome -> the process's exit status


def exit_code(outcome: str) -> int:
    """The one exit-code map: "pass" (exactness not rejected, or a command that succeeded) 0, "fail" (rejected) 1,
    anything else ("error": bad arguments, a broken candidate, too few samples, any unexpected exception) 2."""
    return EXIT_CODES.get(outcome, EXIT_CODES["error"])


class SpecverifyError(Exception):
    """Base class of specverify's errors."""


class UsageError(SpecverifyError, ValueError):
    """A bad argument: a count, a level, a name or a path that cannot be used."""


class ChainError(SpecverifyError, ValueError):
    """A chain, schedule or model output is invalid."""


class SamplerError(SpecverifyError, ValueError):
    """Bad arguments to a sampler or a drafter."""


class StatsError(SpecverifyError, ValueError):
    """Bad input to a statistical test (shapes, non-finite values, levels)."""


class SampleSizeError(StatsError):
    """Too few samples for the requested test or power."""


class PowerError(SampleSizeError):
    """The requested sample size cannot deliver the declared power; the message names the n that can."""


class PermutationError(StatsError):
    """Bad arguments to a permutation test (too few permutations for alpha, bad sizes)."""


class LawInputError(StatsError):
    """Samples or a law that cannot be tested (NaN, wrong shape, too few samples, degenerate covariance)."""


class BudgetError(UsageError):
    """An exactness assertion that the session budget cannot pay for."""


class ContractError(SpecverifyError, ValueError):
    """A candidate (or reference) broke its contract: wrong type, shape, count, dtype, NaN or Inf, seed ignored."""


class CandidateError(ContractError, RuntimeError):
    """A candidate (or reference) raised or ran past its time limit.

    Also a :class:`ContractError` (returning at all is part of the contract), so code that caught ContractError
    for a raising candidate still does; and a ``RuntimeError``, since the run broke rather than the input."""


class ShardError(CandidateError):
    """A shard failed for good (its candidate raised, or its worker died more often than the retries allow)."""

    def __init__(self, message: str, status: dict | None = None):
        super().__init__(message)
        self.status = status or {}

    def __reduce__(self):
        return type(self), (str(self), self.status)
