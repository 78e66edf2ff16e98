"""Failpoint specs parse strictly (a typo must not silently disarm a fault test)."""

from __future__ import annotations

import signal

import pytest

from app.failpoint import Failpoints


@pytest.mark.parametrize(
    "spec",
    ["checkpoint.after_offsets", "checkpoint.after_offsets=0", "nowhere=3", "restore.read=2:pause"],
)
def test_bad_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="bad failpoint"):
        Failpoints(spec)


def test_steps_count_down_and_other_steps_pass() -> None:
    points = Failpoints("checkpoint.after_commit=3:stop, restore.read=2")
    points.hit("checkpoint.after_commit")  # 2 left
    points.hit("checkpoint.after_commit")  # 1 left
    points.hit("checkpoint.after_changelog")  # not armed: nothing happens
    points.hit("restore.read")  # 1 left
    assert points._armed == {
        "checkpoint.after_commit": (1, signal.SIGSTOP),
        "restore.read": (1, signal.SIGKILL),
    }
