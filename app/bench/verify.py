"""Is a contender's output complete and unique? ``fraudscore bench`` reads each contender's
whole output topic with ``read_committed`` after the contender stopped, and counts the
transaction ids against the ids it produced: numbers of a contender whose output is not
exactly one record per input transaction are reported, and flagged, never hidden.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec
from aiokafka import AIOKafkaConsumer

from app.settings import FraudscoreSettings
from sinks.kafka import client_options, topic_partitions


class _Identified(msgspec.Struct):
    transaction_id: str


_decode = msgspec.json.Decoder(_Identified).decode


@dataclass(frozen=True, slots=True)
class Verdict:
    """How the ids seen relate to the ids expected."""

    expected: int
    total: int  # records seen
    distinct: int  # distinct expected ids seen
    missing: int  # expected ids never seen
    duplicated_ids: int  # expected ids seen more than once
    extra_copies: int  # records beyond the first of each id
    unexpected: int  # records whose id was not expected (or that had none)

    @property
    def complete(self) -> bool:
        return self.missing == 0

    @property
    def unique(self) -> bool:
        return self.extra_copies == 0 and self.unexpected == 0

    @property
    def exact(self) -> bool:
        return self.complete and self.unique

    def __str__(self) -> str:
        if self.exact:
            return f"complete, unique ({self.total:,})"
        problems = []
        if self.missing:
            problems.append(f"{self.missing:,} missing")
        if self.duplicated_ids:
            problems.append(f"{self.duplicated_ids:,} dup ids (+{self.extra_copies:,} copies)")
        if self.unexpected:
            problems.append(f"{self.unexpected:,} unexpected")
        head = "incomplete" if not self.complete else "duplicated"
        if not self.complete and not self.unique:
            head = "incomplete+duplicated"
        return f"{head}: {', '.join(problems)}"


def verdict(expected: Iterable[str], seen: Iterable[str | None]) -> Verdict:
    """Compare the ids seen (``None``: a record without an id) with the ids expected."""
    wanted = set(expected)
    counts = Counter(seen)
    total = sum(counts.values())
    found = {tid: n for tid, n in counts.items() if tid in wanted}
    return Verdict(
        expected=len(wanted),
        total=total,
        distinct=len(found),
        missing=len(wanted) - len(found),
        duplicated_ids=sum(1 for n in found.values() if n > 1),
        extra_copies=sum(n - 1 for n in found.values()),
        unexpected=total - sum(found.values()),
    )


def transaction_id(value: bytes | None) -> str | None:
    """The ``transaction_id`` of a JSON record (a decision, or a copied transaction)."""
    if value is None:
        return None
    try:
        return _decode(value).transaction_id
    except msgspec.DecodeError:
        return None


async def committed_ids(
    settings: FraudscoreSettings, topic: str, timeout_s: float = 120.0
) -> list[str | None]:
    """Every record's transaction id in ``topic`` as a ``read_committed`` consumer sees it,
    up to the last stable offset of each partition."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    try:
        tps = await topic_partitions(settings, topic)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        ids: list[str | None] = []
        deadline = time.monotonic() + timeout_s
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: last stable offsets {ends} not reached")
            batches = await consumer.getmany(timeout_ms=200, max_records=50_000)
            ids.extend(transaction_id(r.value) for rs in batches.values() for r in rs)
        return ids
    finally:
        await consumer.stop()
