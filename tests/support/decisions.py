"""Decision records for the audit tests, made by the real pipeline, and a transactional
publisher of them that also leaves aborted transactions in the log.

The pipeline runs over generated traffic with a small default model (trained once per test
process), so records have real feature vectors, scores, reasons, currencies and timestamps.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Awaitable, Callable, Sequence
from functools import lru_cache

import msgspec
from aiokafka import AIOKafkaProducer

from app.settings import FraudscoreSettings
from features.stream import MemoryCardStore
from models.default import train_default_model
from models.pipeline import DecisionRecord, Pipeline, SourceRecord, encode_decision
from models.policy import Policy
from models.synthetic import encode_record, generate
from sinks.kafka import PROCESSED_AT_HEADER, client_options, ensure_topics


@lru_cache
def _pipeline() -> Pipeline:
    return Pipeline(scorer=train_default_model(count=3000), policy=Policy(), max_record_bytes=8192)


def decisions_of(
    count: int, *, seed: int, cards: int = 300, partitions: int = 4
) -> list[DecisionRecord]:
    """``count`` decisions over generated traffic, partitioned by card as the worker would
    see it, each input partition scored in order with its own state."""
    logs: dict[int, list[tuple[bytes, bytes]]] = {p: [] for p in range(partitions)}
    for item in generate(count, cards=cards, seed=seed):
        logs[zlib.crc32(item.key) % partitions].append((item.key, encode_record(item.record)))
    out: list[DecisionRecord] = []
    for partition, log in logs.items():
        records = [SourceRecord("tx", partition, o, k, v) for o, (k, v) in enumerate(log)]
        result = _pipeline().run(records, MemoryCardStore())
        out.extend(decision for _, decision in result.decisions)
    return out


def with_feature(decision: DecisionRecord, name: str, value: float) -> DecisionRecord:
    """The decision as a later feature schema would make it: one feature more."""
    return msgspec.structs.replace(decision, features={**decision.features, name: value})


async def publish(
    settings: FraudscoreSettings,
    decisions: Sequence[DecisionRecord],
    *,
    per_transaction: int = 100,
    abort_every: int = 4,
    processed_at_ms: int = 1_767_225_600_000,
    pause_s: float = 0.0,
    before_transaction: Callable[[int], Awaitable[None]] | None = None,
) -> int:
    """Produce ``decisions`` to the decisions topic in transactions of ``per_transaction``.

    Every ``abort_every``-th transaction is first written and aborted, then written again and
    committed: a ``read_committed`` reader sees each decision once, a ``read_uncommitted`` one
    sees the aborted copies too. ``pause_s`` between transactions paces the stream;
    ``before_transaction`` is awaited with the number of decisions sent so far before each
    (e.g. :meth:`tests.support.steps.Steps.held`). Returns the number of aborted records.
    """
    await ensure_topics(settings)
    producer = AIOKafkaProducer(
        **client_options(settings),
        transactional_id=f"audit-test-publisher.{settings.decisions_topic}",
        enable_idempotence=True,
        acks="all",
    )
    await producer.start()
    aborted = 0
    headers = [(PROCESSED_AT_HEADER, str(processed_at_ms).encode())]
    try:
        for number, start in enumerate(range(0, len(decisions), per_transaction), 1):
            if before_transaction is not None:
                await before_transaction(start)
            chunk = decisions[start : start + per_transaction]
            if number % abort_every == 0:
                await producer.begin_transaction()
                await _send(producer, settings.decisions_topic, chunk, headers)
                await producer.abort_transaction()
                aborted += len(chunk)
            await producer.begin_transaction()
            await _send(producer, settings.decisions_topic, chunk, headers)
            await producer.commit_transaction()
            await asyncio.sleep(pause_s)
    finally:
        await producer.stop()
    return aborted


async def _send(
    producer: AIOKafkaProducer,
    topic: str,
    chunk: Sequence[DecisionRecord],
    headers: list[tuple[str, bytes]],
) -> None:
    for decision in chunk:
        await producer.send(
            topic, encode_decision(decision), key=decision.card_id.encode(), headers=headers
        )
