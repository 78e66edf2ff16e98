"""Fault tests: real worker processes on the real broker, killed on purpose.

Each test gets its own deployment (input, decisions, DLQ and changelog topics, group, state)
and feeds the same generated input: 50,000 transactions over 5,000 cards with out-of-order
arrivals, plus malformed records, produced at a steady pace while faults happen.
``pytest --soak`` runs the soak variant: 500,000 transactions and 50 kills.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from app.process import WorkerProcess
from tests.support.deployment import Deployment
from tests.support.settings import isolated_settings

CARDS = 5_000
MALFORMED = 100
SEED = 2026
RATE = 5_000.0  # records per second offered while faults happen


@dataclass(frozen=True)
class Load:
    count: int  # valid transactions fed
    kills: int  # SIGKILLs of the random-kill test


@pytest.fixture
def load(request: pytest.FixtureRequest) -> Load:
    return Load(500_000, 50) if request.config.getoption("--soak") else Load(50_000, 16)


@pytest.fixture
def deployment(kafka_bootstrap: str, unique: str, tmp_path: Path) -> Iterator[Deployment]:
    # fetches of 100 records and checkpoints of about 500: a worker working off a backlog
    # still goes through enough checkpoints for the failpoints' counts (a fetch is processed
    # whole, so with the defaults a backlog of 10,000 records took as few as 5)
    settings = isolated_settings(
        kafka_bootstrap,
        unique,
        tmp_path / "var",
        session_timeout_ms=6_000,
        fetch_max_records=100,
        checkpoint_max_records=500,
    )
    dep = Deployment(settings, tmp_path)
    yield dep
    dep.stop_all()


@pytest.fixture
def processes() -> Iterator[list[WorkerProcess]]:
    """Processes a test starts (audit sinks, aggregators): stopped when it ends, however."""
    started: list[WorkerProcess] = []
    yield started
    for process in started:
        process.stop()
