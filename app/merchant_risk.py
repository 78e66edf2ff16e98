"""The merchant-risk aggregator (``fraudscore merchant-risk``): labels in, daily snapshots out.

One process reads every partition of the labels topic (``read_committed``), validates each
record (:func:`models.label.decode_label`) and, once per checkpoint
(``merchant_risk_checkpoint_interval_ms``, and on SIGTERM):

1. sends the checkpoint's rejected records to the labels dead-letter topic (original bytes
   with card numbers masked, reason, detail and source in headers), in one Kafka
   transaction of the producer ``<service>.<labels topic>.merchant-risk``;
2. in one database transaction (:func:`app.db.merchant_risk.record_checkpoint`): stores the
   valid labels (each once), the next offset of every labels partition, and every daily
   snapshot that became due (:mod:`features.merchant`), each written once.

Exactly once under SIGKILL: the database transaction is the commit point for labels,
positions and snapshots; a restart resumes from the stored positions, so records after them
are read again, and their labels are either not stored yet or skipped by the unique
constraint. The dead letters are committed before the database: records of a checkpoint
whose dead letters committed but whose database transaction did not are read again, and
their dead letters are not sent twice because a restart first reads the dead-letter topic
(``read_committed``, after ``init_transactions`` aborted whatever the previous process left
open) and skips every source offset at or below the highest one already dead-lettered per
labels partition. That needs a single writer per labels topic: one aggregator, whose
transactional id fences a second one started by mistake.

Snapshot d is due once a label reported ``merchant_risk_label_lateness_ms`` after its
cut-off (the start of day d - 1) has been stored, so it is published about a day before
the transactions of day d need it. A label that arrives after the snapshots covering its
report time were published is stored and counts from the next snapshot on; published
snapshots never change (docs/adr/0005-merchant-risk-snapshots.md).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from datetime import UTC, datetime

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from sqlalchemy import Engine

from app.db import merchant_risk as store
from app.db.engine import create_db_engine
from app.db.migration import require_current
from app.failpoint import Failpoints
from app.settings import FraudscoreSettings
from features.validation import Rejection
from models.label import LabelRecord, decode_label
from models.pipeline import DeadLetter, SourceRecord
from sinks.kafka import (
    aggregator_consumer,
    aggregator_producer,
    dead_letter_headers,
    dead_letter_value,
    dead_lettered_offsets,
    ensure_topics,
)

log = logging.getLogger(__name__)

_POLL_S = 0.2
_TIMEOUT_S = 30.0


class MerchantRiskAggregator:
    def __init__(self, settings: FraudscoreSettings, engine: Engine) -> None:
        self.settings = settings
        self.engine = engine
        self.topic = settings.labels_topic
        self.failpoints = Failpoints(settings.failpoints)
        self.consumer: Consumer = aggregator_consumer(settings)
        self.producer: Producer = aggregator_producer(settings)
        self.positions: dict[int, int] = {}
        self.dead_lettered: dict[int, int] = {}  # labels partition -> highest offset in the DLQ
        self.labels: list[LabelRecord] = []
        self.dead_letters: list[DeadLetter] = []
        self._read = False  # records read since the last checkpoint

    def run(self, stop: threading.Event) -> None:
        """Aggregate until ``stop`` is set, then checkpoint what is pending."""
        asyncio.run(ensure_topics(self.settings))
        require_current(self.engine)
        self.producer.init_transactions(_TIMEOUT_S)  # aborts a predecessor's open transaction
        self.dead_lettered = dead_lettered_offsets(self.settings, self.topic)
        self.positions = store.positions(self.engine, self.topic)
        self._assign()
        log.info("merchant-risk aggregator ready at %s", dict(sorted(self.positions.items())))
        interval_s = self.settings.merchant_risk_checkpoint_interval_ms / 1000
        due = time.monotonic() + interval_s
        try:
            while not stop.is_set():
                for message in self.consumer.consume(1000, _POLL_S):
                    self._take(message)
                if time.monotonic() >= due:
                    self._checkpoint()
                    due = time.monotonic() + interval_s
            self._checkpoint()
        finally:
            self.consumer.close()
            self.producer.flush(_TIMEOUT_S)

    def _assign(self) -> None:
        metadata = self.consumer.list_topics(self.topic, timeout=_TIMEOUT_S)
        partitions = sorted(metadata.topics[self.topic].partitions)
        self.consumer.assign(
            [
                TopicPartition(self.topic, p, self.positions.get(p, 0))  # 0: from the start
                for p in partitions
            ]
        )

    def _take(self, message: Message) -> None:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            log.warning("labels consumer: %s", error)
            return
        partition, offset = message.partition() or 0, message.offset() or 0
        record = SourceRecord(self.topic, partition, offset, message.key(), message.value() or b"")
        decoded = decode_label(record.value, record.key, max_bytes=self.settings.max_record_bytes)
        if isinstance(decoded, Rejection):
            if offset > self.dead_lettered.get(partition, -1):
                self.dead_letters.append(DeadLetter(record, decoded))
        else:
            self.labels.append(decoded)
        self.positions[partition] = offset + 1
        self._read = True

    def _checkpoint(self) -> None:
        if not self._read:
            return
        if self.dead_letters:
            self._send_dead_letters()
        self.failpoints.hit("merchant_risk.before_db")
        checkpoint = store.Checkpoint(self.labels, dict(self.positions), datetime.now(UTC))
        stored = store.record_checkpoint(
            self.engine,
            self.topic,
            checkpoint,
            self.settings.merchant_params,
            self.settings.merchant_risk_label_lateness_ms,
            retention_days=self.settings.merchant_risk_snapshot_retention_days,
        )
        if self.labels or stored.published:
            log.info(
                "stored %d labels; published snapshots %s; deleted %d out of retention",
                len(self.labels),
                stored.published or "none",
                stored.pruned,
            )
        self.labels, self._read = [], False

    def _send_dead_letters(self) -> None:
        producer = self.producer
        producer.begin_transaction()
        for letter in self.dead_letters:
            key, value = dead_letter_value(letter)
            producer.produce(
                self.settings.labels_dlq_topic, value, key, headers=dead_letter_headers(letter)
            )
        producer.commit_transaction(_TIMEOUT_S)
        for letter in self.dead_letters:
            record = letter.record
            self.dead_lettered[record.partition] = record.offset
        log.info("dead-lettered %d labels", len(self.dead_letters))
        self.dead_letters = []
        self.failpoints.hit("merchant_risk.after_dead_letters")


def serve(settings: FraudscoreSettings) -> None:
    """Run the aggregator until SIGTERM or SIGINT, then checkpoint and exit."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    engine = create_db_engine(settings)
    try:
        MerchantRiskAggregator(settings, engine).run(stop)
    except KafkaException as exc:
        error: KafkaError = exc.args[0]
        raise SystemExit(f"merchant-risk aggregator: Kafka failed: {error}") from exc
    finally:
        engine.dispose()
