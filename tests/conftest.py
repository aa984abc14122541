"""Test-wide settings: the `digits` problem uses its quick models (trained in seconds, cached under .cache/digits)
unless SPECVERIFY_DIGITS_CONFIG is set; the full models are for paper_repro/."""

import os

os.environ.setdefault("SPECVERIFY_DIGITS_CONFIG", "quick")
