"""Integration tests of the project's local Kafka broker, against the real running broker.

They check what the rest of the test suite relies on: ``up`` is idempotent, ``status`` and
the CLI see the broker, records round-trip through it, and transactions work on a single node
(the replication-factor-1 settings of ``__transaction_state``).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from typer.testing import CliRunner

from app.broker import LocalBroker
from app.cli import app as cli_app
from app.settings import get_settings
from tests.conftest import EXTERNAL_BROKER_ENV

pytestmark = pytest.mark.integration

TIMEOUT_S = 30.0


@pytest.fixture
def local_broker(kafka_bootstrap: str) -> LocalBroker:
    """The project's broker, which the session fixture has started (or found running)."""
    if os.environ.get(EXTERNAL_BROKER_ENV):
        pytest.skip(f"{EXTERNAL_BROKER_ENV} selects an external broker; ours is not managed")
    return LocalBroker(get_settings())


@asynccontextmanager
async def _topic(bootstrap: str, name: str) -> AsyncIterator[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, num_partitions=1, replication_factor=1)])
        yield name
        await admin.delete_topics([name])
    finally:
        await admin.close()


async def _first_record(bootstrap: str, topic: str, isolation: str) -> tuple[bytes, bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level=isolation,
    )
    await consumer.start()
    try:
        record = await asyncio.wait_for(consumer.getone(), TIMEOUT_S)
    finally:
        await consumer.stop()
    return record.key, record.value


def test_up_is_idempotent(local_broker: LocalBroker) -> None:
    first = local_broker.up()
    assert local_broker.up() == first
    assert local_broker.ensure_running() == (first, False)


def test_status_reports_the_running_broker(local_broker: LocalBroker) -> None:
    status = local_broker.status()
    assert status.running
    assert status.pid == local_broker.up()
    assert status.bootstrap == get_settings().kafka_bootstrap
    assert status.log_path.is_file()
    assert (status.data_dir / "meta.properties").is_file()


def test_cli_status_json_reports_running(local_broker: LocalBroker) -> None:
    result = CliRunner().invoke(cli_app, ["kafka", "status", "--output", "json"])
    assert result.exit_code == 0, result.output
    status = json.loads(result.stdout)
    assert status["running"] is True
    assert status["pid"] == local_broker.up()
    assert status["bootstrap"] == get_settings().kafka_bootstrap


async def test_produce_consume_round_trip(kafka_bootstrap: str, unique: str) -> None:
    async with _topic(kafka_bootstrap, f"broker-roundtrip-{unique}") as topic:
        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, b"value-1", key=b"key-1")
        finally:
            await producer.stop()
        record = await _first_record(kafka_bootstrap, topic, "read_uncommitted")
    assert record == (b"key-1", b"value-1")


async def test_transactions_commit_and_abort_on_a_single_node(
    kafka_bootstrap: str, unique: str
) -> None:
    async with _topic(kafka_bootstrap, f"broker-tx-{unique}") as topic:
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka_bootstrap, transactional_id=f"broker-test-{unique}"
        )
        await producer.start()  # InitProducerId: needs __transaction_state on one broker
        try:
            await producer.begin_transaction()
            await producer.send_and_wait(topic, b"aborted", key=b"k")
            await producer.abort_transaction()
            async with producer.transaction():
                await producer.send_and_wait(topic, b"committed", key=b"k")
        finally:
            await producer.stop()
        record = await _first_record(kafka_bootstrap, topic, "read_committed")
    assert record == (b"k", b"committed")
