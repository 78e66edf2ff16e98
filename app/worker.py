"""The worker process: one consumer-group member driving a :class:`PartitionTask` per partition.

The loop is deliberately plain: fetch a batch (read_committed, no auto-commit) → run the pure
pipeline per partition → checkpoint every partition that is due, concurrently. Partition
ownership follows the consumer group: assigned partitions are fenced, restored and sought
before any of their records is processed; revoked partitions are checkpointed and closed.
See docs/adr/0001-data-path-without-faust-streams.md for why this is not a Faust agent.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError

from app.failpoint import Failpoints
from app.partition import FencedError, PartitionTask, TaskBrokenError
from app.settings import FraudscoreSettings
from models.default import train_default_model
from models.pipeline import Pipeline
from models.policy import Policy
from sinks.errors import StateError
from sinks.kafka import client_options, ensure_topics

log = logging.getLogger(__name__)

_RECOVERABLE = (KafkaError, OSError, StateError)
_START_PATIENCE_S = 120.0  # how long a partition may wait for the broker before the worker exits


class Worker(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, settings: FraudscoreSettings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.tasks: dict[TopicPartition, PartitionTask] = {}
        self.failpoints = Failpoints(settings.failpoints)
        self.consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=settings.group_id,
            group_instance_id=settings.instance_id,
            session_timeout_ms=settings.session_timeout_ms,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=2 * 1024 * 1024,
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set, then checkpoint everything and leave the group."""
        await ensure_topics(self.settings)
        self.consumer.subscribe([self.settings.input_topic], listener=self)
        await self.consumer.start()
        log.info("worker joined group %r on %s", self.settings.group_id, self.settings.input_topic)
        try:
            while not stop.is_set():
                await self._step()
        finally:
            await self.release(list(self.tasks))
            await self.consumer.stop()

    async def _step(self) -> None:
        batches = await self.consumer.getmany(
            timeout_ms=self.settings.checkpoint_interval_ms,
            max_records=self.settings.fetch_max_records,
        )
        for tp, records in batches.items():
            task = self.tasks.get(tp)
            if task is None:  # not ours (yet): leave the records to the partition's owner
                self.consumer.seek(tp, records[0].offset)
                continue
            task.process(records)
        now = time.monotonic()
        due = [task for task in self.tasks.values() if task.due(now)]
        await asyncio.gather(*(self._checkpoint(task) for task in due))

    async def _checkpoint(self, task: PartitionTask) -> None:
        try:
            await task.checkpoint()
        except FencedError:
            log.warning("%s was fenced by a newer owner; dropping it", task.tp)
            await self._drop(task)
            self.consumer.pause(task.tp)
        except (TaskBrokenError, *_RECOVERABLE):
            log.exception("%s failed; rejoining the group to get it assigned afresh", task.tp)
            await self._drop(task)
            self.consumer.pause(task.tp)
            self._request_rejoin()

    def _request_rejoin(self) -> None:
        """Ask the group for a new assignment: revoke runs, then assign restarts the partitions
        this worker still owns. Restarting a task only from an assignment is what keeps a
        zombie from re-initialising a transactional id that is no longer its own.
        (aiokafka has no public call for this; ``request_rejoin`` is what it uses itself.)
        """
        self.consumer._coordinator.request_rejoin()

    async def _drop(self, task: PartitionTask) -> None:
        self.tasks.pop(task.tp, None)
        try:
            await task.close()
        except Exception:  # a broken task's producer may fail in any way; the worker goes on
            log.exception("closing %s failed", task.tp)

    async def _start(self, tp: TopicPartition) -> PartitionTask:
        """Start a task for ``tp``, retrying while the broker is unreachable."""
        deadline, delay = time.monotonic() + _START_PATIENCE_S, 0.25
        while True:
            task = PartitionTask(self.settings, tp, self.pipeline, self.consumer, self.failpoints)
            try:
                await task.start()
            except _RECOVERABLE:
                await task.close()
                if time.monotonic() > deadline:
                    raise
                log.warning("starting %s failed; retrying in %.2fs", tp, delay, exc_info=True)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                return task

    async def assign(self, assigned: set[TopicPartition]) -> None:
        """Fence, restore and seek newly assigned partitions, concurrently."""
        new = sorted(tp for tp in assigned if tp not in self.tasks)
        for task in await asyncio.gather(*(self._start(tp) for tp in new)):
            self.tasks[task.tp] = task
        self.consumer.resume(*assigned)

    async def release(self, revoked: list[TopicPartition]) -> None:
        """Checkpoint and close the tasks of revoked partitions (or all, on shutdown)."""
        for task in [self.tasks[tp] for tp in revoked if tp in self.tasks]:
            try:
                await task.checkpoint()
            except (FencedError, TaskBrokenError, *_RECOVERABLE):
                log.warning("final checkpoint of %s failed; its records will be redone", task.tp)
            await self._drop(task)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        log.info("partitions revoked: %s", sorted(revoked))
        await self.release(list(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info("partitions assigned: %s", sorted(assigned))
        await self.assign(assigned)


def build_pipeline(settings: FraudscoreSettings) -> Pipeline:
    """The scoring pipeline the worker runs: the default model until the registry lands."""
    scorer = train_default_model()
    policy = Policy(
        review_threshold=settings.review_threshold,
        decline_threshold=settings.decline_threshold,
    )
    return Pipeline(
        scorer=scorer,
        policy=policy,
        max_record_bytes=settings.max_record_bytes,
        params=settings.stream_params,
    )


async def serve(settings: FraudscoreSettings) -> None:
    """Run a worker until SIGTERM or SIGINT, then shut down cleanly (final checkpoint)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pipeline = build_pipeline(settings)
    log.info("model %s, policy %s loaded", pipeline.scorer.version, pipeline.policy.version)
    await Worker(settings, pipeline).run(stop)
