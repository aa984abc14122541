"""Test-wide settings: the `digits` problem uses its quick models (trained in seconds) unless
SPECVERIFY_DIGITS_CONFIG is set; the full models are for paper_repro/. That variable is only a test override of
DigitsProblem's default config (code that means a config passes ``config=``). Trained models are cached where the
package caches them: ``$SPECVERIFY_CACHE`` if set, else the user cache folder (specverify.sampler.cache); tests of
the cache itself point SPECVERIFY_CACHE at a temporary folder."""

import os

os.environ.setdefault("SPECVERIFY_DIGITS_CONFIG", "quick")
