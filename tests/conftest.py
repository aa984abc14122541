"""Test-wide settings: the `digits` problem uses its quick models (trained in seconds) unless
SPECVERIFY_DIGITS_CONFIG is set; the full models are for paper_repro/. That variable is only a test override of
DigitsProblem's default config (code that means a config passes ``config=``). Trained models are cached where the
package caches them: ``$SPECVERIFY_CACHE`` if set, else the user cache folder (specverify.sampler.cache); tests of
the cache itself point SPECVERIFY_CACHE at a temporary folder."""

import os
import time

import pytest

os.environ.setdefault("SPECVERIFY_DIGITS_CONFIG", "quick")


SLOW_SECONDS = 300  # a slow test's expected time on a CI machine unless its marker says ``slow(seconds=...)``


def pytest_runtest_setup(item):
    """The slow lane under a deadline: a slow test that would not end before SPECVERIFY_SLOW_DEADLINE (epoch
    seconds, set by .ci/run), going by its marker's ``seconds``, is skipped with that reason, not killed mid-run."""
    deadline, mark = os.environ.get("SPECVERIFY_SLOW_DEADLINE"), item.get_closest_marker("slow")
    if deadline and mark is not None and time.time() + mark.kwargs.get("seconds", SLOW_SECONDS) > float(deadline):
        pytest.skip("slow lane: no time left before its CI deadline (SPECVERIFY_SLOW_DEADLINE); run `pytest -m slow`")


def pytest_collection_modifyitems(config, items):
    """Tests marked ``slow(last=True)`` run after the other tests, so a deadline skips them first."""
    def last(item):
        mark = item.get_closest_marker("slow")
        return mark is not None and mark.kwargs.get("last", False)

    items.sort(key=last)
