"""Kafka adapters: topics the service owns, client factories and the dead-letter record shape.

Topics: the input, decisions and labels topics get ``settings.partitions`` partitions; the
card-state changelog must have exactly as many partitions as the input (partition p of the
changelog holds the state of input partition p) and is compacted; the dead-letter topic keeps
the original bytes (card numbers masked) with the reason and source in headers; the late topic
gets copies of late transactions (original key and bytes, source in headers), keyed by card
like the input and with as many partitions, so that a consumer can re-read one card's late
ones in order.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, cast

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, KafkaError, Message, Producer
from confluent_kafka import TopicPartition as ConfluentPartition
from confluent_kafka.admin import AdminClient

from features.pan import mask_pans
from sinks.errors import TopicError
from sinks.kafka_security import aiokafka_security, confluent_security

if TYPE_CHECKING:
    from app.settings import FraudscoreSettings
    from models.pipeline import DeadLetter, SourceRecord

CHANGELOG_CONFIG = {
    "cleanup.policy": "compact",
    "segment.ms": str(60 * 60 * 1000),
    "min.compaction.lag.ms": "0",
    "delete.retention.ms": str(24 * 60 * 60 * 1000),
}

Headers = list[tuple[str, str | bytes | None]]
PROCESSED_AT_HEADER = "fraudscore.processed_at_ms"  # on decisions: when the worker decided
CHECKPOINT_HEADER = "fraudscore.checkpoint"  # on decisions: "<transactional id>@<that ms>"
SOURCE_TOPIC_HEADER = "fraudscore.source.topic"
SOURCE_PARTITION_HEADER = "fraudscore.source.partition"
SOURCE_OFFSET_HEADER = "fraudscore.source.offset"
_DESCRIBE_ATTEMPTS = 50
_METADATA_TIMEOUT_S = 30.0


def client_options(settings: FraudscoreSettings) -> dict[str, Any]:
    """aiokafka connection options shared by every client: address, TLS and SASL."""
    return {"bootstrap_servers": settings.kafka_bootstrap, **aiokafka_security(settings)}


def _wanted_topics(settings: FraudscoreSettings) -> list[NewTopic]:
    n = settings.partitions
    return [
        NewTopic(settings.input_topic, n, 1),
        NewTopic(settings.decisions_topic, n, 1),
        NewTopic(settings.dlq_topic, 1, 1),
        NewTopic(settings.labels_topic, n, 1),
        NewTopic(settings.labels_dlq_topic, 1, 1),  # one partition: see app/merchant_risk.py
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
        (SOURCE_TOPIC_HEADER, record.topic.encode()),
        (SOURCE_PARTITION_HEADER, str(record.partition).encode()),
        (SOURCE_OFFSET_HEADER, str(record.offset).encode()),
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


def bulk_producer(settings: FraudscoreSettings) -> AIOKafkaProducer:
    """An idempotent producer for generated records (load generator, datasets) and the API's
    labels. A record waits up to two minutes for its partition's leader (aiokafka's default
    is 40 s), so that a load run rides out a broker restart: on a loaded machine the broker's
    stop and start took longer than 40 s and the records waiting meanwhile failed with
    ``LeaderNotAvailableError`` (the broker-restart fault test's feed, 2026-11-22)."""
    return AIOKafkaProducer(
        **client_options(settings),
        acks="all",
        linger_ms=5,
        enable_idempotence=True,
        request_timeout_ms=120_000,
    )


def confluent_options(settings: FraudscoreSettings) -> dict[str, Any]:
    """librdkafka options shared by the data path's clients: address, TLS and SASL (its log
    goes to Python logging)."""
    return {
        "bootstrap.servers": settings.kafka_bootstrap,
        "logger": _librdkafka_log,
        **confluent_security(settings),
    }


_librdkafka_log = logging.getLogger("librdkafka")


def key_partition(key: bytes, partitions: int) -> int:
    """The partition of a keyed record among ``partitions``, as the Java client, aiokafka's
    default and librdkafka's ``murmur2_random`` choose it: murmur2, positive, modulo."""
    return (cast(int, murmur2(key)) & 0x7FFFFFFF) % partitions


DeliveryCallback = Callable[[KafkaError | None, Message], None]


def produce_waiting(
    producer: Producer,
    topic: str,
    key: bytes | None,
    value: bytes | None,
    headers: Headers | None = None,
    *,
    partition: int = -1,  # -1: by key (the producer's partitioner)
    on_delivery: DeliveryCallback | None = None,
) -> None:
    """``producer.produce``, but when librdkafka's local queue is full (``BufferError``) it
    serves delivery reports until there is room, instead of failing."""
    while True:
        try:
            producer.produce(
                topic, value, key, partition=partition, headers=headers, on_delivery=on_delivery
            )
            return
        except BufferError:
            producer.poll(0.01)


def group_admin(settings: FraudscoreSettings) -> AdminClient:
    """An admin client with the service's connection options (topics, the consumer group's
    assignment)."""
    return AdminClient(confluent_options(settings))


def worker_consumer(settings: FraudscoreSettings, client_id: str | None = None) -> Consumer:
    """The worker's group member: read_committed, offsets committed only by checkpoints.
    ``client_id`` is what the group's description shows of it (a worker advertises its HTTP
    address there: :mod:`app.card_owner`)."""
    config: dict[str, Any] = {
        **confluent_options(settings),
        **({} if client_id is None else {"client.id": client_id}),
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "isolation.level": "read_committed",
        "auto.offset.reset": "earliest",
        "session.timeout.ms": settings.session_timeout_ms,
        "partition.assignment.strategy": "range",
        "max.partition.fetch.bytes": 2 * 1024 * 1024,
        # the broker answers when fetch_wait_ms is up (1 MiB comes first only at saturation)
        "fetch.wait.max.ms": settings.fetch_wait_ms,
        "fetch.min.bytes": 1024 * 1024,
    }
    if settings.instance_id is not None:
        config["group.instance.id"] = settings.instance_id
    return Consumer(config)


def checkpoint_producer(settings: FraudscoreSettings, transactional_id: str) -> Producer:
    """The producer of a worker's checkpoints.

    Exactly-once: transactional under ``transactional_id`` (call ``init_transactions``).
    At-least-once: idempotent only. Records wait for the checkpoint's flush, not for a linger.
    """
    transactional = {
        "transactional.id": transactional_id,
        "transaction.timeout.ms": settings.transaction_timeout_ms,
    }
    return Producer(
        {
            **confluent_options(settings),
            **(transactional if settings.exactly_once else {}),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "partitioner": "murmur2_random",  # keyed records land where Java clients put them
            "queue.buffering.max.messages": 1_000_000,
        }
    )


def aggregator_consumer(settings: FraudscoreSettings) -> Consumer:
    """The merchant-risk aggregator's reader of the labels topic: ``read_committed``, assigned
    partitions, positioned by the registry database (its group is never committed to)."""
    return Consumer(
        {
            **confluent_options(settings),
            "group.id": f"{settings.service_name}.merchant-risk",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )


def aggregator_producer(settings: FraudscoreSettings) -> Producer:
    """The merchant-risk aggregator's transactional producer of dead letters (one aggregator
    per labels topic: a second one's ``init_transactions`` fences the first)."""
    return Producer(
        {
            **confluent_options(settings),
            "transactional.id": f"{settings.service_name}.{settings.labels_topic}.merchant-risk",
            "transaction.timeout.ms": settings.transaction_timeout_ms,
            "enable.idempotence": True,
            "acks": "all",
        }
    )


def dead_lettered_offsets(settings: FraudscoreSettings, source_topic: str) -> dict[int, int]:
    """The highest source offset of ``source_topic`` per partition among the committed
    records of the labels dead-letter topic (``read_committed``: up to its last stable
    offset)."""
    topic = settings.labels_dlq_topic
    reader = committed_reader(settings)
    highest: dict[int, int] = {}
    try:
        metadata = reader.list_topics(topic, timeout=_METADATA_TIMEOUT_S)
        for p in metadata.topics[topic].partitions:
            tp = ConfluentPartition(topic, p)
            low, end = reader.get_watermark_offsets(tp, timeout=_METADATA_TIMEOUT_S)
            if end <= low:
                continue
            reader.assign([ConfluentPartition(topic, p, low)])
            deadline = time.monotonic() + _METADATA_TIMEOUT_S
            while reader.position([tp])[0].offset < end:
                if time.monotonic() > deadline:
                    raise TopicError(f"{topic} could not be read to its end {end} in time")
                for message in reader.consume(1000, 0.2):
                    deadline = time.monotonic() + _METADATA_TIMEOUT_S
                    headers = dict(message.headers() or [])
                    if headers.get(SOURCE_TOPIC_HEADER) != source_topic.encode():
                        continue
                    source = int(headers[SOURCE_PARTITION_HEADER] or b"-1")
                    offset = int(headers[SOURCE_OFFSET_HEADER] or b"-1")
                    highest[source] = max(highest.get(source, -1), offset)
    finally:
        reader.close()
    return highest


def committed_reader(settings: FraudscoreSettings) -> Consumer:
    """A ``read_committed`` consumer for assigned partitions (restoring the changelog).

    Its ``get_watermark_offsets`` high mark is the last stable offset, and its position moves
    past commit markers up to it (both measured with librdkafka 2.16). It never commits.
    """
    return Consumer(
        {
            **confluent_options(settings),
            "group.id": f"{settings.group_id}.reader",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
            "max.partition.fetch.bytes": 4 * 1024 * 1024,
        }
    )


def savepoint_producer(settings: FraudscoreSettings, partition: int) -> AIOKafkaProducer:
    """A transactional producer for publishing one partition of a savepoint (no worker runs)."""
    return AIOKafkaProducer(
        **client_options(settings),
        transactional_id=f"{settings.service_name}.{settings.input_topic}.savepoint.{partition}",
        transaction_timeout_ms=settings.transaction_timeout_ms,
        enable_idempotence=True,
        acks="all",
    )


def audit_reader(settings: FraudscoreSettings) -> AIOKafkaConsumer:
    """The audit sink's consumer of the decisions topic: ``read_committed``, positioned by the
    audit table (an offset the log no longer has is an error, never a silent skip); its group
    only receives the table's offsets, for monitoring."""
    return AIOKafkaConsumer(
        **client_options(settings),
        group_id=settings.audit_group_id,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="none",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


def request_producer(settings: FraudscoreSettings) -> Producer:
    """An idempotent librdkafka producer that sends each record within 2 ms (the records of
    those 2 ms share a request: one request per record cost the broker most of a core at
    5,000/s, docs/BENCHMARKS.md), keyed as Java clients key: for clients that wait for an
    answer to each record, such as the authorizer and the latency benchmark
    (:func:`app.pacer.send_one_by_one`)."""
    return Producer(
        {
            **confluent_options(settings),
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,
            "partitioner": "murmur2_random",
        }
    )
