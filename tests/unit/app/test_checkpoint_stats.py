"""The checkpoint summary line: counts, records, and p50/p99/max per step in milliseconds."""

from __future__ import annotations

import logging

import pytest

from app.checkpoint_stats import CheckpointStats


def test_summary_of_the_period_then_a_fresh_start(caplog: pytest.LogCaptureFixture) -> None:
    stats = CheckpointStats(period_s=3600)
    for i in range(1, 101):  # 1 ms ... 100 ms
        stats.add({"outputs": i / 1000, "total": 2 * i / 1000}, records=10)
    with caplog.at_level(logging.INFO, logger="app.checkpoint_stats"):
        stats.flush()
        stats.flush()  # nothing since: no line
    [line] = caplog.messages
    assert ": 100, 1000 records;" in line
    assert "outputs 51.0/100.0/100.0" in line
    assert "total 102.0/200.0/200.0" in line
    assert "commit" not in line  # a step no checkpoint had is left out


def test_logs_by_itself_once_the_period_is_over(caplog: pytest.LogCaptureFixture) -> None:
    stats = CheckpointStats(period_s=0)
    with caplog.at_level(logging.INFO, logger="app.checkpoint_stats"):
        stats.add({"total": 0.004}, records=3)
    assert "1, 3 records; ms p50/p99/max: total 4.0/4.0/4.0" in caplog.text
