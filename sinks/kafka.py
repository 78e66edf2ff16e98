"""Kafka adapters: topics the service owns, client factories and the dead-letter record shape.

Topics: the input and the decisions topic get ``settings.partitions`` partitions; the card-state
changelog must have exactly as many partitions as the input (partition p of the changelog holds
the state of input partition p) and is compacted; the dead-letter topic keeps the original
bytes (card numbers masked) with the reason and source in headers; the late topic gets copies
of late transactions (original key and bytes, source in headers), keyed by card like the input
and with as many partitions, so that a consumer can re-read one card's late ones in order.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from features.pan import mask_pans
from sinks.errors import TopicError

if TYPE_CHECKING:
    from app.settings import FraudscoreSettings
    from models.pipeline import DeadLetter, SourceRecord

CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(60 * 60 * 1000),
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": str(24 * 60 * 60 * 1000),
}

Headers = list[tuple[str, bytes]]
_DESCRIBE_ATTEMPTS = 50


def client_options(settings: FraudscoreSettings) -> dict[str, Any]:
    """Connection options shared by every client (TLS/SASL come with the security issue)."""
    return {"bootstrap_servers": settings.kafka_bootstrap}


def _wanted_topics(settings: FraudscoreSettings) -> list[NewTopic]:
    n = settings.partitions
    return [
        NewTopic(settings.input_topic, n, 1),
        NewTopic(settings.decisions_topic, n, 1),
        NewTopic(settings.dlq_topic, 1, 1),
        NewTopic(settings.late_topic, n, 1),
        NewTopic(settings.changelog_topic, n, 1, topic_configs=CHANGELOG_CONFIG),
    ]


async def ensure_topics(settings: FraudscoreSettings) -> None:
    """Create the service's topics if missing; check that the changelog matches the input."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in _wanted_topics(settings) if t.name not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker was faster
                await admin.create_topics(missing)
        counts = await _created_partition_counts(
            admin, [settings.input_topic, settings.changelog_topic]
        )
    finally:
        await admin.close()
    if counts[settings.input_topic] != counts[settings.changelog_topic]:
        raise TopicError(
            f"changelog {settings.changelog_topic!r} has {counts[settings.changelog_topic]} "
            f"partitions but input {settings.input_topic!r} has {counts[settings.input_topic]}; "
            "they must match: recreate the changelog with the input's partition count"
        )


async def _created_partition_counts(
    admin: AIOKafkaAdminClient, topics: Sequence[str]
) -> dict[str, int]:
    """Partition counts of topics just created: the broker describes a new topic as having no
    partitions until its metadata has propagated, so ask again for a few seconds."""
    for _ in range(_DESCRIBE_ATTEMPTS - 1):
        counts = await _partition_counts(admin, topics)
        if all(counts.values()):
            return counts
        await asyncio.sleep(0.1)
    return await _partition_counts(admin, topics)


async def _partition_counts(admin: AIOKafkaAdminClient, topics: Sequence[str]) -> dict[str, int]:
    described = await admin.describe_topics(list(topics))
    return {entry["topic"]: len(entry["partitions"]) for entry in described}


async def topic_partitions(settings: FraudscoreSettings, *topics: str) -> list[TopicPartition]:
    """Every partition of ``topics``, from the broker (a fresh consumer knows none yet)."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        counts = await _partition_counts(admin, topics)
    finally:
        await admin.close()
    return [TopicPartition(topic, p) for topic in topics for p in range(counts[topic])]


def source_headers(record: SourceRecord) -> Headers:
    """Where an input record came from: the headers of its copies (dead letters, late)."""
    return [
        ("fraudscore.source.topic", record.topic.encode()),
        ("fraudscore.source.partition", str(record.partition).encode()),
        ("fraudscore.source.offset", str(record.offset).encode()),
    ]


def dead_letter_headers(letter: DeadLetter) -> Headers:
    """Why and where from, as headers: the value stays the original bytes (PANs masked)."""
    rejection = letter.rejection
    return [
        ("fraudscore.reason", rejection.reason.encode()),
        ("fraudscore.detail", mask_pans(rejection.detail.encode())),
        *source_headers(letter.record),
    ]


def dead_letter_value(letter: DeadLetter) -> tuple[bytes | None, bytes]:
    """Key and value of the dead-letter record: the original bytes with card numbers masked."""
    key = letter.record.key
    return (None if key is None else mask_pans(key)), mask_pans(letter.record.value)


def checkpoint_producer(settings: FraudscoreSettings, partition: int) -> AIOKafkaProducer:
    """The producer of one input partition's checkpoints.

    Exactly-once: transactional, with the static id that fences a previous owner.
    At-least-once: idempotent only.
    """
    transactional = {
        "transactional_id": settings.transactional_id(partition),
        "transaction_timeout_ms": settings.transaction_timeout_ms,
    }
    return AIOKafkaProducer(
        **client_options(settings),
        **(transactional if settings.exactly_once else {}),
        enable_idempotence=True,
        acks="all",
        linger_ms=0,
        max_batch_size=256 * 1024,
        # A new transaction's first send can race the previous commit's completion; Kafka
        # 3.9's transaction verification answers with a retriable NOT_ENOUGH_REPLICAS, and
        # aiokafka's default 100 ms backoff then stalls the whole checkpoint loop.
        retry_backoff_ms=10,
    )


def committed_reader(settings: FraudscoreSettings) -> AIOKafkaConsumer:
    """A group-less ``read_committed`` consumer, for restoring the changelog."""
    return AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
