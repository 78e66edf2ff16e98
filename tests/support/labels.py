"""Writing a test's labels topic, and waiting for the aggregator's database to reach a state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from aiokafka import AIOKafkaProducer

from app.settings import FraudscoreSettings
from sinks.kafka import client_options, ensure_topics


async def send_labels(
    settings: FraudscoreSettings,
    records: Sequence[tuple[bytes, bytes]],
    *,
    chunk: int = 0,
    pause_s: float = 0.0,
) -> int:
    """Produce ``(key, value)`` records to the labels topic in order, acknowledged; with
    ``chunk``, ``pause_s`` between chunks (a stream that flows while faults happen)."""
    await ensure_topics(settings)
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        for i, (key, value) in enumerate(records, 1):
            await producer.send(settings.labels_topic, value, key=key)
            if chunk and i % chunk == 0:
                await producer.flush()
                await asyncio.sleep(pause_s)
        await producer.flush()
    finally:
        await producer.stop()
    return len(records)


async def until(condition: Callable[[], bool], timeout_s: float = 180.0) -> bool:
    """Wait for a state (never a duration): poll ``condition()`` until true or timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await asyncio.to_thread(condition):
            return True
        await asyncio.sleep(0.2)
    return False
