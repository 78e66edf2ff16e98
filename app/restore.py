"""Bring a partition's local RocksDB up to the committed changelog before it processes input.

Local state is a cache of the changelog. It is used as a starting point when its meta record's
changelog offset lies within the changelog (between the log start and the last stable offset);
otherwise (no meta, changelog recreated or truncated) it is wiped and rebuilt from the start.
The changelog is read with ``read_committed`` until the reader's *position* reaches the last
stable offset — commit markers occupy offsets, so "the last record seen" is not the end.
:func:`open_changelog` and :func:`changelog_batches` are that read, shared with savepoints
(``app/savepoint.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, NamedTuple

from aiokafka import AIOKafkaConsumer, TopicPartition

from app.failpoint import NONE as NO_FAILPOINTS
from app.failpoint import Failpoints
from app.settings import FraudscoreSettings
from sinks.errors import StateError
from sinks.kafka import committed_reader
from sinks.rocksdb import CheckpointMeta, PartitionStore

log = logging.getLogger(__name__)

_FLUSH_EVERY = 50_000  # restored keys held in memory before a RocksDB write
_STALL_S = 60.0
# Short polls: after the last record only a commit marker may be left before the end, and
# a long poll would wait its whole timeout for nothing (0.5 s per partition, measured).
_POLL_MS = 20


class ChangelogRange(NamedTuple):
    """A started ``read_committed`` reader assigned to one changelog partition, and its range."""

    reader: AIOKafkaConsumer
    tp: TopicPartition
    begin: int  # the log start offset
    end: int  # the last stable offset when the reader was opened


@asynccontextmanager
async def open_changelog(
    settings: FraudscoreSettings, partition: int
) -> AsyncIterator[ChangelogRange]:
    """A reader of changelog partition ``partition`` with its current range, stopped on exit."""
    reader = committed_reader(settings)
    await reader.start()
    try:
        tp = TopicPartition(settings.changelog_topic, partition)
        reader.assign([tp])
        begin = (await reader.beginning_offsets([tp]))[tp]
        end: int = (await reader.end_offsets([tp]))[tp]
        yield ChangelogRange(reader, tp, begin, end)
    finally:
        await reader.stop()


async def changelog_batches(
    changelog: ChangelogRange, start: int, failpoints: Failpoints = NO_FAILPOINTS
) -> AsyncIterator[list[Any]]:
    """The committed records from ``start`` up to the range's end, a fetched batch at a time.

    Records are aiokafka ``ConsumerRecord`` objects (a ``None`` value is a tombstone).
    """
    reader, tp = changelog.reader, changelog.tp
    reader.seek(tp, start)
    last_progress = time.monotonic()
    while await reader.position(tp) < changelog.end:
        batch = (await reader.getmany(tp, timeout_ms=_POLL_MS, max_records=10_000)).get(tp, [])
        if batch:
            last_progress = time.monotonic()
            failpoints.hit("restore.read")
            yield batch
        elif time.monotonic() - last_progress > _STALL_S:
            raise StateError(
                f"reading {tp} made no progress for {_STALL_S:.0f}s; is the broker up?"
            )


async def restore_partition(
    settings: FraudscoreSettings,
    store: PartitionStore,
    partition: int,
    input_offset: int,
    failpoints: Failpoints = NO_FAILPOINTS,
) -> int:
    """Restore ``store`` from changelog partition ``partition``; return the changelog end."""
    async with open_changelog(settings, partition) as changelog:
        start = _resume_offset(store, changelog.begin, changelog.end)
        started = time.monotonic()
        restored = await _read_into(changelog, start, store, failpoints)
        store.write(
            [], CheckpointMeta(changelog_next_offset=changelog.end, input_next_offset=input_offset)
        )
        log.info(
            "restored %s: %d changelog records from offset %d to %d in %.2fs",
            changelog.tp,
            restored,
            start,
            changelog.end,
            time.monotonic() - started,
        )
        return changelog.end


def _resume_offset(store: PartitionStore, begin: int, end: int) -> int:
    meta = store.meta
    if meta is not None and begin <= meta.changelog_next_offset <= end:
        return meta.changelog_next_offset
    if meta is not None:
        log.warning(
            "local state of %s is at changelog offset %d outside [%d, %d]; rebuilding",
            store.path,
            meta.changelog_next_offset,
            begin,
            end,
        )
        store.wipe()
    return begin


async def _read_into(
    changelog: ChangelogRange, start: int, store: PartitionStore, failpoints: Failpoints
) -> int:
    changes: dict[bytes, bytes | None] = {}
    restored = 0
    async for batch in changelog_batches(changelog, start, failpoints):
        for record in batch:
            assert record.key is not None
            changes[record.key] = record.value
        restored += len(batch)
        if len(changes) >= _FLUSH_EVERY:
            store.write(changes.items(), None)
            changes.clear()
    store.write(changes.items(), None)
    return restored
