"""Writing a test's input, and reading topics back for assertions (``read_committed`` by
default)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TypeAlias

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord

from app.settings import FraudscoreSettings
from sinks.kafka import client_options, topic_partitions

Record: TypeAlias = ConsumerRecord  # aiokafka is untyped: ConsumerRecord[bytes, bytes]


async def send_input(settings: FraudscoreSettings, records: Iterable[tuple[bytes, bytes]]) -> None:
    """Produce ``(key, value)`` records to the input topic, in order, acknowledged."""
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(settings.input_topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def _reader(settings: FraudscoreSettings, topic: str, isolation: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation,
    )
    await consumer.start()
    consumer.assign(await topic_partitions(settings, topic))
    return consumer


async def read_topic(
    settings: FraudscoreSettings,
    topic: str,
    *,
    expect: int,
    timeout_s: float = 120.0,
    isolation_level: str = "read_committed",
) -> list[Record]:
    """All records of ``topic`` from the beginning, waiting until ``expect`` have arrived.

    Keeps reading for a grace period after reaching ``expect`` so that duplicates written
    right behind the expected records are seen too.
    """
    consumer = await _reader(settings, topic, isolation_level)
    try:
        records: list[Record] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for part in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(part)
            if len(records) >= expect:
                deadline = min(deadline, time.monotonic() + 1.0)
        return records
    finally:
        await consumer.stop()


async def read_partitions(settings: FraudscoreSettings, topic: str) -> dict[int, list[Record]]:
    """Every committed record of every partition of ``topic``, up to its current end."""
    consumer = await _reader(settings, topic, "read_committed")
    try:
        tps = sorted(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        out: dict[int, list[Record]] = {tp.partition: [] for tp in tps}
        for tp in tps:
            while await consumer.position(tp) < ends[tp]:
                batch = await consumer.getmany(tp, timeout_ms=500)
                out[tp.partition].extend(batch.get(tp, []))
        return out
    finally:
        await consumer.stop()
