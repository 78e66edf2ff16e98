"""Fixtures shared by all tests: the real Kafka broker, PostgreSQL, and unique names.

``kafka_bootstrap`` is the broker every integration test talks to. With
``FRAUDSCORE_KAFKA_BOOTSTRAP`` set, that broker is used as it is and nothing is started or
stopped. Otherwise the project's own broker (``fraudscore kafka up``) is started if needed,
waiting until it answers, and stopped at the end of the session only if this session started
it. A missing Java, Maven or broker fails the tests; it never skips them.

``s3`` is an S3-compatible object store for the session: moto's HTTP server in its own
process (``tests/support/s3.py``), stopped at the end.

``postgres`` is a PostgreSQL server for the session: the one named by
``FRAUDSCORE_TEST_POSTGRES_URL``, left alone, or a throwaway server this session starts and
stops (``tests/support/postgres.py``); ``postgres_url`` is a fresh database on it for one
test. A missing PostgreSQL fails the tests that use them; it never skips them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from app.broker import LocalBroker
from app.settings import get_settings
from tests.support.postgres import (
    EXTERNAL_POSTGRES_ENV,
    LocalPostgres,
    PostgresServer,
)
from tests.support.s3 import MotoServer, S3Server

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
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """An S3-compatible server for this test session (see the module docstring)."""
    server = MotoServer(tmp_path_factory.mktemp("s3") / "moto.log")
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this test session (see the module docstring)."""
    external = os.environ.get(EXTERNAL_POSTGRES_ENV)
    if external:
        yield PostgresServer(external)
        return
    local = LocalPostgres()
    try:
        local.start()
        yield PostgresServer(local.url)
    finally:
        local.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer, unique: str) -> Iterator[str]:
    """The SQLAlchemy URL of an empty database of its own on ``postgres``, dropped after."""
    name = f"test_{unique}"
    url = postgres.database(name)
    try:
        yield url
    finally:
        postgres.drop_database(name)


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
        help="run the fault suite's soak variant: 500,000 transactions and 50 kills, and the "
        "slow integration tests (fraudscore bench's contenders)",
    )
