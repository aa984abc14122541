"""The contract's time limit and output types (specverify.harness.contracts)."""

import signal
import threading
import time

import numpy as np
import pytest
import torch

from specverify.errors import CandidateError, ContractError
from specverify.harness.contracts import draw, run, time_limit


def _slow(n, seed):
    time.sleep(5)
    return np.zeros((n, 2))


def test_a_call_past_the_limit_is_a_candidate_error_and_a_contract_error():
    t0 = time.perf_counter()
    with pytest.raises(CandidateError, match=r"candidate\(n=4, seed=0\) ran past the time limit of 0.1 s") as e:
        draw(_slow, 4, 0, timeout=0.1)
    assert time.perf_counter() - t0 < 2
    assert isinstance(e.value, ContractError) and isinstance(e.value, RuntimeError)
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)  # no alarm left behind


def test_the_limit_cannot_be_swallowed_by_the_candidate():
    def stubborn(n, seed):
        while True:
            try:
                time.sleep(5)
            except Exception:  # noqa: BLE001, S112 - what a careless sampler does
                continue

    with pytest.raises(CandidateError, match="time limit"), time_limit(0.1):
        draw(stubborn, 4, 0)


def test_an_enclosing_timer_is_given_back():
    fired = []
    old = signal.signal(signal.SIGALRM, lambda *a: fired.append(1))
    try:
        signal.setitimer(signal.ITIMER_REAL, 30)
        assert draw(lambda n, s: np.zeros((n, 2)), 4, 0, timeout=1).shape == (4, 2)
        left = signal.getitimer(signal.ITIMER_REAL)[0]
        assert 25 < left <= 30 and signal.getsignal(signal.SIGALRM) is not signal.SIG_DFL
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert not fired


def test_off_the_main_thread_there_is_no_limit():
    out = {}
    t = threading.Thread(target=lambda: out.update(x=draw(lambda n, s: np.ones((n, 2)), 3, 0, timeout=0.01)))
    t.start()
    t.join()
    assert out["x"].shape == (3, 2)


@pytest.mark.parametrize("out,match", [
    (lambda n: [[0.0, 0.0]] * n, "list, not an array"),
    (lambda n: 7, "int, not an array"),
    (lambda n: np.zeros((n, 2), dtype=np.float16), "float16"),
    (lambda n: torch.zeros(n, 2, dtype=torch.float16), "torch float16"),
    (lambda n: np.zeros((n, 2), dtype=np.int64), "int64"),
    (lambda n: np.zeros((n, 2), dtype=bool), "bool"),
])
def test_outputs_that_are_not_float_arrays_are_refused(out, match):
    with pytest.raises(ContractError, match=match):
        draw(lambda n, s: out(n), 4, 0)


def test_a_raising_candidate_keeps_its_cause():
    def broken(n, seed):
        raise KeyError("weights")

    with pytest.raises(CandidateError, match=r"raised KeyError: 'weights'") as e:
        run(broken, 4, 0, what="reference")
    assert isinstance(e.value.__cause__, KeyError) and "reference(n=4, seed=0)" in str(e.value)


def test_bad_counts_and_seeds_are_usage_errors():
    from specverify.errors import UsageError

    with pytest.raises(UsageError, match="n must be a positive int"):
        draw(lambda n, s: np.zeros((n, 2)), 0, 0)
    with pytest.raises(UsageError, match="seed must be an int"):
        draw(lambda n, s: np.zeros((n, 2)), 4, 0.5)
