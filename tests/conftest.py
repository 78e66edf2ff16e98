"""Fixtures shared by all tests: the real Kafka broker, a PostgreSQL server and unique names.

``kafka_bootstrap`` is the broker every integration test talks to. With
``FRAUDSCORE_KAFKA_BOOTSTRAP`` set, that broker is used as it is and nothing is started or
stopped. Otherwise the project's own broker (``fraudscore kafka up``) is started if needed,
waiting until it answers, and stopped at the end of the session only if this session started
it. A missing Java, Maven or broker fails the tests; it never skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from app.broker import LocalBroker
from app.settings import get_settings
from tests.support.postgres import LocalPostgres

EXTERNAL_BROKER_ENV = "FRAUDSCORE_KAFKA_BOOTSTRAP"


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """Bootstrap address of a running Kafka broker for this test session."""
    external = os.environ.get(EXTERNAL_BROKER_ENV)
    if external:
        yield external
        return
    settings = get_settings()
    broker = LocalBroker(settings)
    _pid, started = broker.ensure_running()
    try:
        yield settings.kafka_bootstrap
    finally:
        if started:
            broker.down()


@pytest.fixture(scope="session")
def postgres() -> Iterator[LocalPostgres]:
    """A PostgreSQL server of this session (for the audit catalog), stopped at its end."""
    server = LocalPostgres()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def unique() -> str:
    """A short random hex string for topic, group and transactional-id names."""
    return uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def local_broker(kafka_bootstrap: str) -> LocalBroker | None:
    """The project's own broker when this session uses it (so a test may restart it);
    None when the session talks to an external broker that is not ours to restart."""
    return None if os.environ.get(EXTERNAL_BROKER_ENV) else LocalBroker(get_settings())


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        default=False,
        help="run the fault suite's soak variant: 500,000 transactions and 50 kills",
    )
