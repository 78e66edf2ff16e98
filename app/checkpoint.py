"""The checkpoint coordinator: one Kafka transaction per checkpoint, for all of a worker's
partitions.

A worker has one transactional producer, ``<service>.<input topic>.<worker id>``. A checkpoint
of the partitions with open work is, in exactly-once mode:

1. ``begin_transaction``;
2. per partition p: the latest value of every card touched since the last checkpoint to
   changelog partition p (tombstones for deleted cards);
3. the decisions, dead letters and copies of late transactions, then a flush;
4. ``send_offsets_to_transaction`` with every partition's next input offset *and the
   consumer's group metadata* (KIP-447): the group coordinator refuses it if this worker's
   generation is stale, i.e. if its partitions may already belong to another worker. That is
   what fences a zombie, whatever its transactional id;
5. ``commit_transaction``; only then each partition's RocksDB is written
   (:meth:`PartitionTask.committed`).

How long each step takes is summed up in the log (:mod:`app.checkpoint_stats`).

The transaction is open only while a checkpoint runs (outputs wait in the partitions until
then; sending them as they are decided was tried and measured, docs/BENCHMARKS.md): a worker
that dies between checkpoints leaves no open transaction to stall ``read_committed`` readers.

A checkpoint that fails is aborted and :class:`CheckpointError` tells the worker to rewind the
partitions with open work to their last committed offsets. When the producer cannot even
abort (fenced, fatally broken, or hung in librdkafka), :class:`ClientsBrokenError` makes the
worker start its Kafka clients afresh. At-least-once mode sends the same records without a
transaction, flushes, then commits the offsets (the benchmark baseline).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from queue import SimpleQueue
from typing import TypeVar, cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from app.checkpoint_stats import CheckpointStats
from app.failpoint import Failpoints
from app.partition import PartitionTask
from app.settings import FraudscoreSettings
from app.worker_metrics import WorkerMetrics
from models.pipeline import encode_decision
from sinks.kafka import (
    CHECKPOINT_HEADER,
    PROCESSED_AT_HEADER,
    DeliveryCallback,
    Headers,
    checkpoint_producer,
    dead_letter_headers,
    dead_letter_value,
    produce_waiting,
    source_headers,
)

log = logging.getLogger(__name__)

T = TypeVar("T")

# the group (or a newer producer with the same id) no longer lets this worker commit
_FENCING_ERRORS = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.ILLEGAL_GENERATION,
        KafkaError.UNKNOWN_MEMBER_ID,
        KafkaError.FENCED_INSTANCE_ID,
        KafkaError.REBALANCE_IN_PROGRESS,
    }
)
_START_PATIENCE_S = 120.0  # for init_transactions while the broker is away
_ABORT_PATIENCE_S = 30.0
_HANG_MARGIN_S = 5.0


class CheckpointError(Exception):
    """The checkpoint did not commit: its partitions must go back to their committed offsets.
    ``fenced``: because a newer owner of the partitions (or of the transactional id) fenced
    this worker."""

    def __init__(self, message: str, *, fenced: bool = False) -> None:
        super().__init__(message)
        self.fenced = fenced


class ClientsBrokenError(Exception):
    """The Kafka clients cannot go on; the worker must start them afresh."""


class Checkpointer:
    def __init__(
        self,
        settings: FraudscoreSettings,
        consumer: Consumer,
        transactional_id: str,
        failpoints: Failpoints,
        metrics: WorkerMetrics,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.consumer = consumer
        self.transactional_id = transactional_id
        self.failpoints = failpoints
        self._call_timeout_s = settings.transaction_timeout_ms / 1000
        self.stats = CheckpointStats()
        self._durations: dict[str, float] = {}  # of the checkpoint under way, per step
        self._decided_ms = 0  # its decisions' processed_at header (and latency metric)
        self._calls = CallThread()
        self.producer = self._open_producer()

    def _open_producer(self) -> Producer:
        """A new producer; in exactly-once mode ``init_transactions`` aborts whatever an earlier
        producer with this id left open (a crashed predecessor: no waiting for its timeout).
        A timed-out ``init_transactions`` is resumed by calling it again on the same producer
        (a new producer per attempt would compete with the previous attempts' PID requests)."""
        producer = checkpoint_producer(self.settings, self.transactional_id)
        if self.settings.exactly_once:
            self._retrying(
                lambda: producer.init_transactions(self._call_timeout_s), _START_PATIENCE_S
            )
        return producer

    def commit(self, tasks: Sequence[PartitionTask]) -> None:
        """Commit the open work of ``tasks`` and write their RocksDB; raises CheckpointError."""
        started = time.monotonic()
        self._durations = {"wait": started - min(task.pending.opened_at for task in tasks)}
        records = sum(task.pending.records for task in tasks)
        changes = [task.changes() for task in tasks]
        # strictly increasing, so that it names this checkpoint (CHECKPOINT_HEADER)
        self._decided_ms = max(int(time.time() * 1000), self._decided_ms + 1)
        with self._failing_as_checkpoint():
            if self.settings.exactly_once:
                ends = self._commit_transaction(tasks, changes)
            else:
                ends = self._commit_at_least_once(tasks, changes)
        self.failpoints.hit("checkpoint.after_commit")
        pendings = [task.pending for task in tasks]  # task.committed starts new ones
        stored = time.monotonic()
        for task, task_changes in zip(tasks, changes, strict=True):
            task.committed(task_changes, ends.get(task.partition, task.changelog_next))
        self._took("store", stored)
        self._took("total", started)
        self.stats.add(self._durations, records)
        self.metrics.checkpoint_committed(
            pendings, sum(map(len, changes)), self._durations, self._decided_ms
        )

    @contextmanager
    def _failing_as_checkpoint(self) -> Iterator[None]:
        """A Kafka error inside aborts the open transaction and becomes a CheckpointError."""
        try:
            yield
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            fenced = error.code() in _FENCING_ERRORS
            self._recover(error, fenced=fenced)
            raise CheckpointError(str(error), fenced=fenced) from exc

    def _took(self, step: str, since: float) -> None:
        self._durations[step] = time.monotonic() - since

    def _commit_transaction(
        self, tasks: Sequence[PartitionTask], changes: list[list[tuple[bytes, bytes | None]]]
    ) -> dict[int, int]:
        producer = self.producer
        producer.begin_transaction()
        ends = self._send_outputs(tasks, changes)
        offsets = [TopicPartition(task.topic, task.partition, task.next_offset) for task in tasks]
        sending = time.monotonic()
        self._retrying(
            lambda: producer.send_offsets_to_transaction(
                offsets, self.consumer.consumer_group_metadata(), self._call_timeout_s
            )
        )
        self._took("offsets", sending)
        self.failpoints.hit("checkpoint.after_offsets")
        committing = time.monotonic()
        self._retrying(lambda: producer.commit_transaction(self._call_timeout_s))
        self._took("commit", committing)
        return ends

    def _commit_at_least_once(
        self, tasks: Sequence[PartitionTask], changes: list[list[tuple[bytes, bytes | None]]]
    ) -> dict[int, int]:
        ends = self._send_outputs(tasks, changes)
        offsets = [TopicPartition(task.topic, task.partition, task.next_offset) for task in tasks]
        sending = time.monotonic()
        self.consumer.commit(offsets=offsets, asynchronous=False)
        self._took("offsets", sending)
        return ends

    def _send_outputs(
        self, tasks: Sequence[PartitionTask], changes: list[list[tuple[bytes, bytes | None]]]
    ) -> dict[int, int]:
        """Send changelog records, decisions, dead letters and late copies, and flush them;
        returns the next changelog offset of every partition that had changes."""
        settings = self.settings
        producing = time.monotonic()
        ends: dict[int, int] = {}
        for task, task_changes in zip(tasks, changes, strict=True):
            for i, (key, value) in enumerate(task_changes, 1):
                on_delivery = (
                    _changelog_end(ends, task.partition) if i == len(task_changes) else None
                )
                produce_waiting(
                    self.producer,
                    settings.changelog_topic,
                    value=value,
                    key=key,
                    partition=task.partition,
                    on_delivery=on_delivery,
                )
        self.failpoints.hit("checkpoint.after_changelog")
        headers: Headers = [
            (PROCESSED_AT_HEADER, str(self._decided_ms).encode()),
            (CHECKPOINT_HEADER, f"{self.transactional_id}@{self._decided_ms}".encode()),
        ]
        for task in tasks:
            outputs = task.pending.result
            for key, decision in outputs.decisions:
                produce_waiting(
                    self.producer, settings.decisions_topic, key, encode_decision(decision), headers
                )
            for letter in outputs.dead_letters:
                dlq_key, dlq_value = dead_letter_value(letter)
                produce_waiting(
                    self.producer,
                    settings.dlq_topic,
                    dlq_key,
                    dlq_value,
                    dead_letter_headers(letter),
                )
            for record in outputs.late:
                produce_waiting(
                    self.producer,
                    settings.late_topic,
                    record.key,
                    record.value,
                    source_headers(record),
                )
        left = self.producer.flush(self._call_timeout_s)
        if left:
            raise KafkaException(
                KafkaError(KafkaError._TIMED_OUT, f"{left} records not delivered in time")
            )
        self._took("outputs", producing)
        self.failpoints.hit("checkpoint.after_outputs")  # all written, inside the transaction
        return ends

    def _retrying(self, call: Callable[[], T], patience_s: float | None = None) -> T:
        """Run a transactional call, repeating it on retriable errors (librdkafka's rule: a
        timed-out call resumes when called again) for up to ``patience_s`` (one call timeout)."""
        deadline = time.monotonic() + (patience_s or self._call_timeout_s)
        delay = 0.1
        while True:
            try:
                return self._bounded(call)
            except KafkaException as exc:
                if not exc.args[0].retriable() or time.monotonic() > deadline:
                    raise
                log.warning("transactional call failed (%s); retrying", exc)
                time.sleep(delay)
                delay = min(delay * 2, 2.0)

    def _bounded(self, call: Callable[[], T]) -> T:
        """``call()``, given up on if it outlives its own timeout by far.

        librdkafka 2.16's ``send_offsets_to_transaction`` can block forever, past its timeout,
        when its cached group coordinator went away (librdkafka issues 5456 and 5511; seen here
        after a broker restart). The call runs on the checkpointer's call thread; if it hangs,
        the producer is treated as broken (a fatal error), the worker starts fresh clients
        (and a new checkpointer with a new call thread), whose ``init_transactions`` fences it,
        and the hung thread is left to finish whenever librdkafka lets it.
        """
        try:
            return self._calls.run(call, self._call_timeout_s + _HANG_MARGIN_S)
        except FutureTimeout:
            raise KafkaException(
                KafkaError(
                    KafkaError._FATAL,
                    "a transactional call hung",
                    fatal=True,
                )
            ) from None

    def _recover(self, error: KafkaError, *, fenced: bool) -> None:
        """Leave the failed checkpoint's transaction behind by aborting it. A producer that
        cannot abort (fenced, fatally broken, hung) makes the worker start its Kafka clients
        afresh (:class:`ClientsBrokenError`), the same way a restarted process would."""
        if fenced:
            log.warning("checkpoint was fenced by a newer owner (%s); its work is dropped", error)
        else:
            log.warning("checkpoint failed (%s); aborting and rewinding", error)
        if not self.settings.exactly_once:
            return
        if error.fatal():
            raise ClientsBrokenError(f"the transactional producer failed fatally: {error}")
        self._abort()

    def _abort(self) -> None:
        try:
            self._retrying(
                lambda: self.producer.abort_transaction(self._call_timeout_s), _ABORT_PATIENCE_S
            )
        except KafkaException as exc:
            raise ClientsBrokenError(f"the open transaction could not be aborted: {exc}") from exc

    def close(self) -> None:
        """Close the producer in the background: a broken one may take its time (its open
        transaction, if any, is aborted by its successor's ``init_transactions`` anyway)."""
        self.stats.flush()
        self._calls.stop()
        threading.Thread(target=self.producer.close, name="producer-close", daemon=True).start()


class CallThread:
    """One daemon thread that runs the transactional calls, one at a time, for a caller that
    waits for each with a time limit. One thread for the checkpointer's life rather than one
    per call: a checkpoint makes two such calls, and starting a thread for each cost a
    ``clone`` and two context switches every time (about 45 threads a second per worker at
    300 TPS). A daemon, so that a call hung for good does not keep the process from exiting;
    after a hang the caller abandons it with its checkpointer (the next one has its own)."""

    def __init__(self) -> None:
        self._calls: SimpleQueue[tuple[Callable[[], object], Future[object]] | None] = SimpleQueue()
        threading.Thread(target=self._serve, name="txn-call", daemon=True).start()

    def run(self, call: Callable[[], T], timeout_s: float) -> T:
        """``call()`` on the thread; raises ``concurrent.futures.TimeoutError`` when it takes
        longer than ``timeout_s`` (the call goes on)."""
        future: Future[T] = Future()
        self._calls.put((call, cast(Future[object], future)))
        return future.result(timeout=timeout_s)

    def stop(self) -> None:
        """Let the thread end after the call it runs, if any."""
        self._calls.put(None)

    def _serve(self) -> None:
        while (item := self._calls.get()) is not None:
            call, future = item
            try:
                future.set_result(call())
            except BaseException as exc:  # handed to the waiting thread
                future.set_exception(exc)


def _changelog_end(ends: dict[int, int], partition: int) -> DeliveryCallback:
    def delivered(error: KafkaError | None, message: Message) -> None:
        offset = message.offset()
        if error is None and offset is not None:
            ends[partition] = offset + 1

    return delivered
