"""A group-less ``read_committed`` consumer of the decisions topic that stamps arrivals:
what an authorization service (``app/authorizer.py``) and the latency benchmarks see."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import NamedTuple

import msgspec
from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from app.settings import FraudscoreSettings
from sinks.kafka import confluent_options, topic_partitions

log = logging.getLogger(__name__)

_BATCH = 10_000  # records drained at once after the first one arrived
_WATERMARK_TIMEOUT_S = 30.0
# not flagged retriable by librdkafka 2.16 when its watermark query meets them
_NO_LEADER_YET = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
    }
)


class _Decided(msgspec.Struct):
    transaction_id: str
    decision: str


_decode = msgspec.json.Decoder(_Decided).decode


class Seen(NamedTuple):
    """One decision as the follower saw it."""

    transaction_id: str
    decision: str
    timestamp_ms: int  # the record's CreateTime: when the worker's checkpoint sent it


class DecisionFollower:
    """Reads every partition of the decisions topic with ``read_committed``; it joins no group
    and commits nothing.

    librdkafka (not aiokafka): fetching and decoding the protocol happen on librdkafka's own
    threads, so following 5,000 decisions a second costs this process little CPU, and an
    arrival is stamped as soon as a poll returns it.
    """

    def __init__(self, settings: FraudscoreSettings, fetch_max_wait_ms: int) -> None:
        self.settings = settings
        self.consumer = Consumer(
            {
                **confluent_options(settings),
                "group.id": f"{settings.service_name}.decision-follower",  # never used: assigned
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "isolation.level": "read_committed",
                "auto.offset.reset": "earliest",
                "fetch.wait.max.ms": fetch_max_wait_ms,
                "max.partition.fetch.bytes": 4 * 1024 * 1024,
            }
        )

    async def start(self, *, from_end: bool) -> None:
        """Assign every partition, at its beginning or at its current end: the end is read
        before this returns, so a decision committed afterwards is never missed."""
        topic = self.settings.decisions_topic
        partitions = [tp.partition for tp in await topic_partitions(self.settings, topic)]
        if from_end:
            ends = await asyncio.to_thread(self._last_stable_offsets, topic, partitions)
            self.consumer.assign([TopicPartition(topic, p, ends[p]) for p in partitions])
        else:
            self.consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])

    def _last_stable_offsets(self, topic: str, partitions: list[int]) -> dict[int, int]:
        """The high watermark a ``read_committed`` consumer gets is the last stable offset."""
        return {p: self._last_stable_offset(TopicPartition(topic, p)) for p in partitions}

    def _last_stable_offset(self, tp: TopicPartition) -> int:
        """Asked again while the broker answers with a retriable error (a topic created a
        moment ago has no leader yet)."""
        deadline = time.monotonic() + _WATERMARK_TIMEOUT_S
        while True:
            try:
                return int(self.consumer.get_watermark_offsets(tp, timeout=_WATERMARK_TIMEOUT_S)[1])
            except KafkaException as exc:
                error: KafkaError = exc.args[0]
                retriable = error.retriable() or error.code() in _NO_LEADER_YET
                if not retriable or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    async def poll(self, timeout_ms: int = 100) -> tuple[float, list[str]]:
        """(arrival time, transaction ids) of the records fetched now."""
        at, seen = await self.poll_stamped(timeout_ms)
        return at, [decision.transaction_id for decision in seen]

    async def poll_stamped(self, timeout_ms: int = 100) -> tuple[float, list[Seen]]:
        """(arrival time as ``time.perf_counter()``, the decisions fetched now): waits up to
        ``timeout_ms`` for a first record, then takes what else is there without waiting
        (librdkafka's ``consume`` would wait its whole timeout for a full batch)."""
        at, messages = await asyncio.to_thread(self._fetch, timeout_ms / 1000)
        seen = []
        for message in messages:
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise KafkaException(error)
                log.warning("following decisions: %s", error)  # librdkafka retries it
                continue
            decided = _decode(message.value() or b"")
            seen.append(Seen(decided.transaction_id, decided.decision, message.timestamp()[1]))
        return at, seen

    def _fetch(self, timeout_s: float) -> tuple[float, list[Message]]:
        first = self.consumer.poll(timeout_s)
        if first is None:
            return time.perf_counter(), []
        rest = self.consumer.consume(_BATCH, 0)
        return time.perf_counter(), [first, *rest]

    async def stop(self) -> None:
        await asyncio.to_thread(self.consumer.close)
