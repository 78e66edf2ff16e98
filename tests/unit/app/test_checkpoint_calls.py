"""The checkpointer's call thread: every transactional call on one long-lived thread, each
waited for with a time limit."""

from __future__ import annotations

import threading
from concurrent.futures import TimeoutError as FutureTimeout

import pytest

from app.checkpoint import CallThread


def test_calls_run_in_order_on_one_thread_other_than_the_callers() -> None:
    calls = CallThread()
    try:
        # Thread objects, not idents: the ident of a finished thread is given to the next one
        threads = [calls.run(threading.current_thread, 5.0) for _ in range(3)]
        assert all(thread is threads[0] for thread in threads)
        assert threads[0] is not threading.current_thread()
        assert calls.run(lambda: "answer", 5.0) == "answer"
    finally:
        calls.stop()


def test_an_exception_reaches_the_caller_and_the_thread_goes_on() -> None:
    calls = CallThread()

    def fail() -> None:
        raise ValueError("broken")

    try:
        with pytest.raises(ValueError, match="broken"):
            calls.run(fail, 5.0)
        assert calls.run(lambda: 1, 5.0) == 1
    finally:
        calls.stop()


def test_a_hung_call_times_out_for_the_caller_and_is_left_running() -> None:
    calls, release, finished = CallThread(), threading.Event(), threading.Event()

    def hang() -> None:
        release.wait(10.0)
        finished.set()

    with pytest.raises(FutureTimeout):
        calls.run(hang, 0.05)
    assert not finished.is_set()  # still hung: nobody cancelled it
    release.set()
    calls.stop()
    assert finished.wait(5.0)
