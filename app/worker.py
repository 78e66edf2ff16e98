"""The worker process: one consumer-group member driving a :class:`PartitionTask` per partition.

The loop is deliberately plain and synchronous (confluent-kafka; why in
docs/adr/0003-confluent-kafka-data-path.md): fetch a batch (read_committed, no auto-commit) →
run the pure pipeline per partition → when the oldest open record is ``checkpoint_interval_ms``
old or ``checkpoint_max_records`` are open, checkpoint every partition in one transaction
(:mod:`app.checkpoint`). Partition ownership follows the consumer group: assigned partitions
are restored before any of their records is processed; revoked ones are checkpointed and
closed; lost ones (this worker was thrown out of the group) are closed without a checkpoint.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from app.card_features import LocalCards
from app.card_owner import advertised_client_id
from app.checkpoint import Checkpointer, CheckpointError, ClientsBrokenError
from app.db.engine import create_db_engine
from app.failpoint import Failpoints
from app.live_pipeline import LivePipeline, configured_policy, configured_scorer, describe
from app.logs import add_log_context
from app.merchant_snapshots import DatabaseSnapshots
from app.partition import PartitionTask
from app.settings import FraudscoreSettings
from app.worker_http import start_worker_http
from app.worker_metrics import WorkerMetrics
from app.worker_status import WorkerStatus
from features.merchant import SnapshotBook
from models.pipeline import NO_SNAPSHOTS, Pipeline
from sinks.errors import StateError
from sinks.kafka import ensure_topics, worker_consumer
from sinks.rocksdb import total_memory
from sinks.rocksdb_memory import shared_memory

log = logging.getLogger(__name__)

T = TypeVar("T")

_RECOVERABLE = (KafkaException, OSError, StateError)
_START_PATIENCE_S = 120.0  # how long a partition may wait for the broker before the worker exits
_OFFSETS_TIMEOUT_S = 30.0
_IDLE_POLL_S = 0.1
_MAX_RESTARTS = 5
_RESTART_WINDOW_S = 120.0
_OBSERVE_EVERY_S = 1.0


def worker_id(settings: FraudscoreSettings) -> str:
    """This worker's stable identity: the static group member id, or an id kept in its state
    directory. A restart under the same identity re-uses the transactional id, and its
    ``init_transactions`` aborts the predecessor's open transaction at once."""
    if settings.instance_id is not None:
        return settings.instance_id
    path: Path = settings.state_dir / "worker-id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(uuid.uuid4().hex)
    return path.read_text().strip()


class Worker:
    def __init__(
        self,
        settings: FraudscoreSettings,
        live: LivePipeline,
        failpoints: Failpoints,
        metrics: WorkerMetrics,
        status: WorkerStatus,
        *,
        cards: LocalCards,
        http_url: str | None = None,
    ) -> None:
        self.settings = settings
        self.cards = cards
        self.live = live
        self.pipeline = live.current
        self.tasks: dict[int, PartitionTask] = {}
        self.failpoints = failpoints
        self.metrics = metrics
        self.status = status
        self._broken = False
        url = settings.worker_http_advertised_url or http_url
        client_id = None if url is None else advertised_client_id(url)
        self.consumer: Consumer = worker_consumer(settings, client_id)
        self.checkpointer = Checkpointer(
            settings,
            self.consumer,
            settings.transactional_id(worker_id(settings)),
            self.failpoints,
            metrics,
        )
        self._interval_s = settings.checkpoint_interval_ms / 1000
        self._observe_at = 0.0  # time.monotonic() of the next refresh of the partition gauges

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set, then checkpoint everything and leave the group."""
        self.status.rebalancing()  # not joined yet (again, after fresh clients)
        self.consumer.subscribe(
            [self.settings.input_topic],
            on_assign=self._on_assign,
            on_revoke=self._on_revoke,
            on_lost=self._on_lost,
        )
        log.info("worker joined group %r on %s", self.settings.group_id, self.settings.input_topic)
        try:
            while not stop.is_set():
                self._step()
            self._checkpoint()
        except ClientsBrokenError:
            self._broken = True  # no checkpoint on the way out: the partitions are redone
            raise
        finally:
            try:
                self.consumer.close()  # revokes (and so checkpoints and closes) what is left
            except KafkaException as exc:
                log.warning("closing the consumer: %s", exc)
            self._close(list(self.tasks.values()))
            self.checkpointer.close()

    def _step(self) -> None:
        self._swap_pipeline()
        messages = self._fetch()
        by_partition: dict[int, list[Message]] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                self._consumer_error(error)
                continue
            by_partition.setdefault(message.partition() or 0, []).append(message)
        for partition, batch in by_partition.items():
            task = self.tasks.get(partition)
            if task is not None:  # records fetched before a revoke are someone else's now
                task.process(batch)
        if self._due():
            self._checkpoint()
        self._observe_partitions()

    def _swap_pipeline(self) -> None:
        """Between two batches: run the pipeline the registry watcher has ready, if any (a
        newly promoted model or policy), from the next batch on, in every partition."""
        pipeline = self.live.take()
        if pipeline is None:
            return
        self.pipeline = pipeline
        for task in self.tasks.values():
            task.pipeline = pipeline
        self.metrics.pipeline_in_use(pipeline)
        self.status.pipeline_loaded(describe(pipeline))

    def _fetch(self) -> list[Message]:
        """The next records. With work open, wait for more until its checkpoint is due (the
        batching window); idle, return on the first record (librdkafka's ``consume`` would
        wait its whole timeout for a full batch, delaying a lone record by that much)."""
        limit = self.settings.fetch_max_records
        opened = [task.pending.opened_at for task in self.tasks.values() if task.pending.records]
        if opened:
            due_in = min(opened) + self._interval_s - time.monotonic()
            return self.consumer.consume(limit, max(0.0, due_in))
        first = self.consumer.poll(_IDLE_POLL_S)
        if first is None:
            return []
        return [first, *(self.consumer.consume(limit - 1, 0) if limit > 1 else [])]

    def _due(self) -> bool:
        pending = [task.pending for task in self.tasks.values() if task.pending.records]
        if not pending:
            return False
        oldest = min(p.opened_at for p in pending)
        return (
            sum(p.records for p in pending) >= self.settings.checkpoint_max_records
            or time.monotonic() - oldest >= self._interval_s
        )

    def _checkpoint(self) -> None:
        open_tasks = self._open_tasks()
        if open_tasks:
            self._checkpointing(self.checkpointer.commit, open_tasks)

    def _open_tasks(self) -> list[PartitionTask]:
        return [task for task in self.tasks.values() if task.pending.records]

    def _checkpointing(
        self, step: Callable[[list[PartitionTask]], None], tasks: list[PartitionTask]
    ) -> None:
        """Run a step of the open checkpoint; if it failed (its transaction was aborted), every
        partition with open work goes back to its committed offset."""
        try:
            step(tasks)
        except CheckpointError as exc:
            records = sum(task.pending.records for task in self._open_tasks())
            self.metrics.checkpoint_failed(records, fenced=exc.fenced)
            self._rewind_open()

    def _rewind_open(self) -> None:
        for task in self._open_tasks():
            task.rewind()
            self._seek(task)

    def _observe_partitions(self) -> None:
        """About once a second: each partition's consumer lag and state size, for the
        metrics (librdkafka's cached high watermark and RocksDB's estimates: no I/O)."""
        now = time.monotonic()
        if now < self._observe_at:
            return
        self._observe_at = now + _OBSERVE_EVERY_S
        for task in self.tasks.values():
            tp = TopicPartition(task.topic, task.partition)
            _, high = self.consumer.get_watermark_offsets(tp, cached=True)
            lag = max(0, high - task.committed_offset) if high >= 0 else None
            keys, size = task.store.stats()
            self.metrics.partition_observed(task.partition, lag, keys, size)
        stores = total_memory(task.store.memory() for task in self.tasks.values())
        self.metrics.state_memory_observed(shared_memory(self.settings.state_memory_mb), stores)

    def _seek(self, task: PartitionTask) -> None:
        try:
            self.consumer.seek(TopicPartition(task.topic, task.partition, task.committed_offset))
        except KafkaException as exc:  # not assigned any more: its next owner starts over
            log.info("not rewinding %r: %s", task, exc)

    def _consumer_error(self, error: KafkaError) -> None:
        # e.g. FENCED_INSTANCE_ID: after a broker restart librdkafka can fence its own rejoin
        if error.fatal() or error.code() == KafkaError._FATAL:
            raise ClientsBrokenError(f"the consumer failed fatally: {error}")
        log.warning("consumer: %s", error)

    # --- partition ownership ----------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        """Restore the newly assigned partitions (concurrently), then start fetching them."""
        log.info("partitions assigned: %s", sorted(tp.partition for tp in assigned))
        committed = self._committed(consumer, assigned)
        new = [p for p in sorted(committed) if p not in self.tasks]
        self.status.restoring(new)
        with ThreadPoolExecutor(max_workers=max(1, len(new))) as pool:
            started = list(pool.map(lambda p: self._start(p, committed[p]), new))
        for task in started:
            self.tasks[task.partition] = task
            self.cards.add(task.partition, task.store)
        consumer.assign(
            [
                TopicPartition(tp.topic, tp.partition, self.tasks[tp.partition].committed_offset)
                for tp in assigned
            ]
        )

    def _committed(self, consumer: Consumer, assigned: list[TopicPartition]) -> dict[int, int]:
        """The group's committed offsets (read_committed waits out pending transactional
        commits: KIP-447's stable offsets), or the log start where there is none."""

        def read() -> dict[int, int]:
            result: dict[int, int] = {}
            for tp in consumer.committed(assigned, timeout=_OFFSETS_TIMEOUT_S):
                if tp.offset >= 0:
                    result[tp.partition] = tp.offset
                else:  # a new topic (the leader may still be on its way: retried)
                    low, _ = consumer.get_watermark_offsets(tp, timeout=_OFFSETS_TIMEOUT_S)
                    result[tp.partition] = low
            return result

        return _retry(read)

    def _start(self, partition: int, committed: int) -> PartitionTask:
        def attempt() -> PartitionTask:
            task = PartitionTask(self.settings, partition, self.pipeline, self.failpoints)
            try:
                task.start(committed, partial(self.metrics.restore_progress, partition))
            except BaseException:
                task.close()
                raise
            return task

        task = _retry(attempt)
        self.status.restored(partition)
        return task

    def _on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        """Checkpoint everything open (the group still accepts this generation's offsets),
        then close the revoked partitions."""
        log.info("partitions revoked: %s", sorted(tp.partition for tp in revoked))
        self.status.rebalancing()
        if not self._broken:
            self._checkpoint()
        self._close([self.tasks[tp.partition] for tp in revoked if tp.partition in self.tasks])

    def _on_lost(self, consumer: Consumer, lost: list[TopicPartition]) -> None:
        """Thrown out of the group: the partitions may have a new owner already; drop them."""
        log.warning(
            "partitions lost: %s; dropping their open work", sorted(tp.partition for tp in lost)
        )
        self.status.rebalancing()
        self._close([self.tasks[tp.partition] for tp in lost if tp.partition in self.tasks])

    def _close(self, tasks: list[PartitionTask]) -> None:
        for task in tasks:
            self.tasks.pop(task.partition, None)
            self.cards.remove(task.partition)
            task.close()
            self.metrics.partition_closed(task.partition)
        self.status.released(task.partition for task in tasks)


def _retry(call: Callable[[], T]) -> T:
    """``call()``, retried with backoff while the broker is unreachable."""
    deadline, delay = time.monotonic() + _START_PATIENCE_S, 0.25
    while True:
        try:
            return call()
        except _RECOVERABLE:
            if time.monotonic() > deadline:
                raise
            log.warning("retrying in %.2fs", delay, exc_info=True)
            time.sleep(delay)
            delay = min(delay * 2, 5.0)


def build_pipeline(
    settings: FraudscoreSettings, merchants: SnapshotBook = NO_SNAPSHOTS
) -> Pipeline:
    """The scoring pipeline the worker runs when the registry selects nothing: the artefact at
    ``model_path`` if set (refused if made for other features), else the default model,
    trained in memory at start; the thresholds of the settings; ``merchants``' snapshots."""
    return Pipeline(
        scorer=configured_scorer(settings),
        policy=configured_policy(settings),
        max_record_bytes=settings.max_record_bytes,
        params=settings.stream_params,
        merchants=merchants,
    )


# Objects allocated between two young collections, and how many collections of a generation
# make one of the next (CPython's defaults: 700, 10, 10).
_GC_THRESHOLDS = (20_000, 20, 50)


def _settle_garbage_collector() -> None:
    """Take what is loaded by now (modules, the model, the HTTP app: hundreds of thousands of
    objects that live as long as the process) out of the cyclic collector's scans, and collect
    less often. Per event the loop allocates many short-lived containers; with CPython's
    defaults the collector took about 11 % of the worker's samples, most of it rescanning
    those permanent objects. Measured: 85 against 97-105 µs of worker CPU per event
    (docs/BENCHMARKS.md). A model loaded later (a promotion) is collected as usual."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


def serve(settings: FraudscoreSettings) -> None:
    """Run a worker until SIGTERM or SIGINT, then shut down cleanly (final checkpoint).

    The model and policy are the registry's active ones, else the configured ones; a newly
    promoted model or policy is picked up while running (:mod:`app.live_pipeline`); merchant
    snapshots are read from the registry database as they are published
    (:mod:`app.merchant_snapshots`).

    Kafka clients that break beyond repair are started afresh, as a process restart would,
    but without reloading the model; more than ``_MAX_RESTARTS`` such restarts within
    ``_RESTART_WINDOW_S`` (e.g. two processes fencing each other under one identity) end it.
    """
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    add_log_context(worker_id=worker_id(settings))
    status, metrics = WorkerStatus(), WorkerMetrics(settings)
    metrics.registry.register(status)
    cards = LocalCards(status, settings.stream_params)
    http = start_worker_http(settings, status, metrics.registry, cards)  # answers while loading
    try:
        _serve(settings, stop, metrics, status, cards=cards, http_url=http.url)
    finally:
        http.stop()


def _serve(
    settings: FraudscoreSettings,
    stop: threading.Event,
    metrics: WorkerMetrics,
    status: WorkerStatus,
    *,
    cards: LocalCards,
    http_url: str,
) -> None:
    engine = create_db_engine(settings)
    merchants = DatabaseSnapshots(engine, settings.merchant_params, settings.registry_poll_ms)
    merchants.start()
    live = LivePipeline(settings, engine, merchants)
    log.info("loaded %s", describe(live.current))
    metrics.pipeline_in_use(live.current)
    status.pipeline_loaded(describe(live.current))
    live.start()
    failpoints = Failpoints(settings.failpoints)
    restarts: deque[float] = deque(maxlen=_MAX_RESTARTS)
    try:
        # Before the transactional producer: its init_transactions only times out (and is
        # retried) where aiokafka logs why, e.g. a SASL authentication failure, and fails.
        asyncio.run(ensure_topics(settings))
        _settle_garbage_collector()
        while True:
            try:
                worker = Worker(
                    settings, live, failpoints, metrics, status, cards=cards, http_url=http_url
                )
                worker.run(stop)
                return
            except ClientsBrokenError as exc:
                now = time.monotonic()
                if len(restarts) == _MAX_RESTARTS and now - restarts[0] < _RESTART_WINDOW_S:
                    raise
                restarts.append(now)
                metrics.client_restarts.inc()
                log.error("%s; starting the Kafka clients afresh", exc)
                time.sleep(1.0)
    finally:
        merchants.close()
        live.close()
