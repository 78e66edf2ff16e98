"""The checkpoint coordinator of one input partition.

One :class:`PartitionTask` per assigned input partition p owns:

- a transactional producer with the static id ``<service>.<input topic>.<p>``: starting it
  (InitProducerId) fences any earlier owner of p and aborts its open transaction;
- the partition's state store (RocksDB behind an overlay of uncommitted writes);
- the outputs produced since the last checkpoint.

Assignment: start the producer → read the committed input offset → restore state from the
changelog → seek the input. Processing writes only to the overlay and the output buffer.
A checkpoint (every ``checkpoint_interval_ms`` or ``checkpoint_max_records``, and on revoke)
is one Kafka transaction: changelog records (latest value per touched card, and the
partition's own state), decisions, dead letters, copies of late transactions, and the input
offset; only after it commits does the overlay reach RocksDB.
An aborted checkpoint drops the overlay and the buffer and rewinds the input to the last
committed offset; a fenced one drops the task without touching RocksDB.
See docs/EXACTLY_ONCE.md.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, ProducerFenced
from aiokafka.structs import RecordMetadata

from app.failpoint import NONE as NO_FAILPOINTS
from app.failpoint import Failpoints
from app.restore import restore_partition
from app.settings import FraudscoreSettings
from models.pipeline import BatchResult, Pipeline, SourceRecord, encode_decision
from sinks.kafka import (
    checkpoint_producer,
    dead_letter_headers,
    dead_letter_value,
    source_headers,
)
from sinks.rocksdb import CheckpointMeta, PartitionStore

log = logging.getLogger(__name__)


def _consume_exception(future: asyncio.Future[RecordMetadata]) -> None:
    if not future.cancelled():
        future.exception()


class FencedError(Exception):
    """Another owner of this partition's transactional id has taken over."""


class TaskBrokenError(Exception):
    """The task cannot go on; the partition must be assigned afresh before it is retried."""


@dataclass(slots=True)
class _Pending:
    """What the open checkpoint holds besides the state overlay."""

    result: BatchResult
    records: int = 0
    opened_at: float = 0.0


class PartitionTask:
    def __init__(
        self,
        settings: FraudscoreSettings,
        tp: TopicPartition,
        pipeline: Pipeline,
        consumer: AIOKafkaConsumer,
        failpoints: Failpoints = NO_FAILPOINTS,
    ) -> None:
        self.settings = settings
        self.tp = tp
        self.pipeline = pipeline
        self.consumer = consumer
        self.failpoints = failpoints
        self.store = PartitionStore(settings.state_dir / f"{tp.topic}-{tp.partition}")
        self.producer = checkpoint_producer(settings, tp.partition)
        self.lock = asyncio.Lock()
        self._closed = False
        self.committed_offset = 0
        self.next_offset = 0
        self._changelog_next = 0
        self._pending = _Pending(BatchResult())
        self._sent: list[asyncio.Future[RecordMetadata]] = []  # this checkpoint's sends

    async def start(self) -> None:
        """Fence the previous owner, restore state, and seek the input to the committed offset."""
        await self.producer.start()
        committed = await self.consumer.committed(self.tp)
        if committed is None:
            committed = (await self.consumer.beginning_offsets([self.tp]))[self.tp]
        self._changelog_next = await restore_partition(
            self.settings, self.store, self.tp.partition, committed, self.failpoints
        )
        self.committed_offset = self.next_offset = committed
        self.consumer.seek(self.tp, committed)
        log.info("partition %s ready at offset %d", self.tp, committed)

    def process(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Run the pipeline over fetched records; outputs wait for the next checkpoint."""
        batch = [
            SourceRecord(r.topic, r.partition, r.offset, r.key, r.value or b"") for r in records
        ]
        result = self.pipeline.run(batch, self.store)
        pending = self._pending
        if pending.records == 0:
            pending.opened_at = time.monotonic()
        pending.records += len(records)
        pending.result.decisions.extend(result.decisions)
        pending.result.dead_letters.extend(result.dead_letters)
        pending.result.late.extend(result.late)
        self.next_offset = records[-1].offset + 1

    def due(self, now: float) -> bool:
        pending = self._pending
        if pending.records == 0:
            return False
        age_ms = (now - pending.opened_at) * 1000
        return (
            pending.records >= self.settings.checkpoint_max_records
            or age_ms >= self.settings.checkpoint_interval_ms
        )

    async def checkpoint(self) -> None:
        """Commit the open checkpoint (one transaction in exactly-once), then write RocksDB."""
        async with self.lock:
            if self._pending.records == 0:
                return
            changes = list(self.store.dirty())
            try:
                if self.settings.exactly_once:
                    changelog_next = await self._commit_transaction(changes)
                else:
                    changelog_next = await self._commit_at_least_once(changes)
            except ProducerFenced as exc:
                self._forget_sent()
                self._reset()
                raise FencedError(f"{self.tp} was taken over by another worker") from exc
            except KafkaError:
                log.exception("checkpoint of %s failed; aborting and rewinding", self.tp)
                self._forget_sent()
                await self._abort_and_rewind()
                return
            self._sent.clear()
            self.failpoints.hit("checkpoint.after_commit")
            self._changelog_next = changelog_next
            self.committed_offset = self.next_offset
            meta = CheckpointMeta(
                changelog_next_offset=changelog_next, input_next_offset=self.next_offset
            )
            self.store.write(changes, meta)
            self._pending = _Pending(BatchResult())

    async def _commit_transaction(self, changes: list[tuple[bytes, bytes | None]]) -> int:
        producer = self.producer
        await producer.begin_transaction()
        last_changelog = await self._send_outputs(changes)
        await producer.send_offsets_to_transaction(
            {self.tp: self.next_offset}, self.settings.group_id
        )
        self.failpoints.hit("checkpoint.after_offsets")
        await producer.commit_transaction()
        return await self._changelog_end(last_changelog)

    async def _commit_at_least_once(self, changes: list[tuple[bytes, bytes | None]]) -> int:
        last_changelog = await self._send_outputs(changes)
        await self.producer.flush()
        await self.consumer.commit({self.tp: self.next_offset})
        return await self._changelog_end(last_changelog)

    async def _send_outputs(
        self, changes: list[tuple[bytes, bytes | None]]
    ) -> asyncio.Future[RecordMetadata] | None:
        """Send changelog records, decisions and dead letters; the last changelog future."""
        settings, producer, partition = self.settings, self.producer, self.tp.partition
        sent = self._sent
        last_changelog = None
        for key, value in changes:
            last_changelog = await producer.send(
                settings.changelog_topic, value=value, key=key, partition=partition
            )
            sent.append(last_changelog)
        self.failpoints.hit("checkpoint.after_changelog")
        headers = [("fraudscore.processed_at_ms", str(int(time.time() * 1000)).encode())]
        for key, decision in self._pending.result.decisions:
            sent.append(
                await producer.send(
                    settings.decisions_topic,
                    value=encode_decision(decision),
                    key=key,
                    headers=headers,
                )
            )
        for letter in self._pending.result.dead_letters:
            dlq_key, dlq_value = dead_letter_value(letter)
            await producer.send(
                settings.dlq_topic,
                value=dlq_value,
                key=dlq_key,
                headers=dead_letter_headers(letter),
            )
        for record in self._pending.result.late:
            await producer.send(
                settings.late_topic,
                value=record.value,
                key=record.key,
                headers=source_headers(record),
            )
        self.failpoints.hit("checkpoint.after_outputs")
        return last_changelog

    async def _changelog_end(self, last: asyncio.Future[RecordMetadata] | None) -> int:
        return self._changelog_next if last is None else int((await last).offset) + 1

    def _forget_sent(self) -> None:
        """The transaction failed: its sends fail too; collect their errors, nobody waits."""
        for future in self._sent:
            future.add_done_callback(_consume_exception)
        self._sent.clear()

    def _reset(self) -> None:
        """Forget everything since the last committed checkpoint."""
        self.store.discard()
        self._pending = _Pending(BatchResult())
        self.next_offset = self.committed_offset

    async def _abort_and_rewind(self) -> None:
        """Abort the open transaction and redo its records from the last committed offset.

        If the abort fails too, the task is broken. It must NOT start a new producer for its
        transactional id here: that would fence whoever owns the partition now, and if this
        worker is a zombie it would then commit over the owner's work. Only a fresh group
        assignment may initialise the id again (see ``Worker``).
        """
        try:
            await self.producer.abort_transaction()
        except ProducerFenced as exc:
            self._reset()
            raise FencedError(f"{self.tp} was taken over by another worker") from exc
        except (KafkaError, AssertionError) as exc:
            # aiokafka puts a producer whose sender routine failed into FATAL_ERROR, and then
            # abort_transaction() fails an internal assert instead of raising a KafkaError.
            raise TaskBrokenError(f"{self.tp}: the failed checkpoint could not be aborted") from exc
        self._reset()
        self.consumer.seek(self.tp, self.committed_offset)

    async def close(self) -> None:
        """Release the producer and the store (uncommitted work is dropped). Idempotent: a
        revoke and a failed checkpoint of the same task may both get here."""
        if self._closed:
            return
        self._closed = True
        self._reset()
        await self.producer.stop()
        self.store.close()
