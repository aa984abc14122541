"""What the faces read of the sampler side, through the door: its registries (problems, drafters, mutants,
verifiers), a run's options and record (SampleOptions, SpecStats) and the few builders and benchmarks they call.
Faces import these from here, never from ``specverify.sampler`` (``tests/test_layering.py``). Importing this
module imports torch: faces import it where they use it, not at their top."""

from specverify.sampler.bench import Timing, bench_one
from specverify.sampler.drafters import DRAFTERS, make_drafter, medusa
from specverify.sampler.mutants import MUTANTS
from specverify.sampler.options import SampleOptions
from specverify.sampler.problems import PROBLEMS, default_dim, make_problem
from specverify.sampler.problems.digits import digits_images, digits_labels
from specverify.sampler.speculative import SpecStats
from specverify.sampler.verifiers import VERIFIERS

__all__ = ["DRAFTERS", "MUTANTS", "PROBLEMS", "VERIFIERS", "SampleOptions", "SpecStats", "Timing", "bench_one",
           "default_dim", "digits_images", "digits_labels", "make_drafter", "make_problem", "medusa"]
