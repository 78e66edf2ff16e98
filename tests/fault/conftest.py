"""Fault tests: real worker processes on the real broker, killed on purpose.

Each test gets its own deployment (input, decisions, DLQ and changelog topics, group, state)
and feeds the same generated input: 50,000 transactions over 5,000 cards with out-of-order
arrivals, plus malformed records, produced at a steady pace while faults happen.
FRAUDSCORE_FAULT_SCALE multiplies the input (the soak variant: see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import FraudscoreSettings
from tests.support.deployment import Deployment

SCALE = float(os.environ.get("FRAUDSCORE_FAULT_SCALE", "1"))
COUNT = int(50_000 * SCALE)
CARDS = 5_000
MALFORMED = 100
SEED = 2026
RATE = 5_000.0  # records per second offered while faults happen


@pytest.fixture
def deployment(kafka_bootstrap: str, unique: str, tmp_path: Path) -> Iterator[Deployment]:
    settings = FraudscoreSettings(
        kafka_bootstrap=kafka_bootstrap,
        input_topic=f"tx-{unique}",
        decisions_topic=f"decisions-{unique}",
        dlq_topic=f"tx-{unique}.dlq",
        changelog_topic=f"state-{unique}.changelog",
        group_id=f"fraudscore-{unique}",
        var_dir=tmp_path / "var",
        session_timeout_ms=6_000,
    )
    dep = Deployment(settings, tmp_path)
    yield dep
    dep.stop_all()
