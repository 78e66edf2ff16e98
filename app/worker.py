"""The worker process: one consumer-group member driving a :class:`PartitionTask` per partition.

The loop is deliberately plain: fetch a batch (read_committed, no auto-commit) → run the pure
pipeline per partition → checkpoint every partition that is due, concurrently. Partition
ownership follows the consumer group: assigned partitions are fenced, restored and sought
before any of their records is processed; revoked partitions are checkpointed and closed.
See docs/adr/0001-data-path-without-faust-streams.md for why this is not a Faust agent.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition

from app.partition import FencedError, PartitionTask
from app.settings import FraudscoreSettings
from models.default import train_default_model
from models.pipeline import Pipeline
from models.policy import Policy
from sinks.kafka import client_options, ensure_topics

log = logging.getLogger(__name__)


class Worker(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, settings: FraudscoreSettings, pipeline: Pipeline) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.tasks: dict[TopicPartition, PartitionTask] = {}
        self.consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=settings.group_id,
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
            self.tasks.pop(task.tp, None)
            self.consumer.pause(task.tp)
            await task.close()

    async def assign(self, assigned: set[TopicPartition]) -> None:
        """Fence, restore and seek newly assigned partitions, concurrently."""
        new = [
            PartitionTask(self.settings, tp, self.pipeline, self.consumer)
            for tp in sorted(assigned)
            if tp not in self.tasks
        ]
        await asyncio.gather(*(task.start() for task in new))
        for task in new:
            self.tasks[task.tp] = task
        self.consumer.resume(*assigned)

    async def release(self, revoked: list[TopicPartition]) -> None:
        """Checkpoint and close the tasks of revoked partitions (or all, on shutdown)."""
        tasks = [self.tasks.pop(tp) for tp in revoked if tp in self.tasks]
        for task in tasks:
            with contextlib.suppress(FencedError):
                await task.checkpoint()
            await task.close()

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
    return Pipeline(scorer=scorer, policy=policy, max_record_bytes=settings.max_record_bytes)


async def serve(settings: FraudscoreSettings) -> None:
    """Run a worker until SIGTERM or SIGINT, then shut down cleanly (final checkpoint)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    pipeline = build_pipeline(settings)
    log.info("model %s, policy %s loaded", pipeline.scorer.version, pipeline.policy.version)
    await Worker(settings, pipeline).run(stop)
