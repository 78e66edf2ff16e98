"""A group-less ``read_committed`` consumer of the decisions topic that stamps arrivals:
what an authorization service (``app/authorizer.py``) and the latency benchmarks see."""

from __future__ import annotations

import time
from typing import NamedTuple

import msgspec
from aiokafka import AIOKafkaConsumer

from app.settings import FraudscoreSettings
from sinks.kafka import client_options, topic_partitions


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
    """Reads every partition of the decisions topic with ``read_committed``, no group."""

    def __init__(self, settings: FraudscoreSettings, fetch_max_wait_ms: int) -> None:
        self.settings = settings
        self.consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=None,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            fetch_max_wait_ms=fetch_max_wait_ms,
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )

    async def start(self, *, from_end: bool) -> None:
        await self.consumer.start()
        tps = await topic_partitions(self.settings, self.settings.decisions_topic)
        self.consumer.assign(tps)
        if from_end:
            for tp, end in (await self.consumer.end_offsets(tps)).items():
                self.consumer.seek(tp, end)
        else:
            await self.consumer.seek_to_beginning(*tps)

    async def poll(self, timeout_ms: int = 100) -> tuple[float, list[str]]:
        """(arrival time, transaction ids) of the records fetched now."""
        at, seen = await self.poll_stamped(timeout_ms)
        return at, [decision.transaction_id for decision in seen]

    async def poll_stamped(self, timeout_ms: int = 100) -> tuple[float, list[Seen]]:
        """(arrival time as ``time.perf_counter()``, the decisions fetched now)."""
        batches = await self.consumer.getmany(timeout_ms=timeout_ms)
        at = time.perf_counter()
        seen = []
        for records in batches.values():
            for record in records:
                decided = _decode(record.value)
                seen.append(Seen(decided.transaction_id, decided.decision, record.timestamp))
        return at, seen

    async def stop(self) -> None:
        await self.consumer.stop()
