"""The harness: contracts and the suite. It never imports the sampler side; it sees samplers as black boxes."""

from specverify.harness.contracts import ContractError, check_seeded, draw
from specverify.harness.plan import Plan
from specverify.harness.report import AcceptanceSummary, Report
from specverify.harness.stats.results import AdjustedTest
from specverify.harness.suite import check_against_law, check_against_sampler

__all__ = ["AcceptanceSummary", "AdjustedTest", "ContractError", "Plan", "Report", "check_against_law",
           "check_against_sampler", "check_seeded", "draw"]
