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
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaException, TopicPartition

from app.failpoint import NONE as NO_FAILPOINTS
from app.failpoint import Failpoints
from app.settings import FraudscoreSettings
from sinks.errors import StateError
from sinks.kafka import committed_reader
from sinks.rocksdb import CheckpointMeta, PartitionStore

log = logging.getLogger(__name__)

_FLUSH_EVERY = 50_000  # restored keys held in memory before a RocksDB write
_STALL_S = 60.0
_OFFSETS_TIMEOUT_S = 30.0
# Short polls: after the last record only a commit marker may be left before the end, and
# a long poll would wait its whole timeout for nothing.
_POLL_S = 0.02

Change = tuple[bytes, bytes | None]  # (key, value); a None value is a tombstone
# told after each changelog batch: (records just read, offsets left to read)
RestoreProgress = Callable[[int, int], None]


class ChangelogRange(NamedTuple):
    """A ``read_committed`` reader for one changelog partition, and the partition's range."""

    reader: Consumer
    topic: str
    partition: int
    begin: int  # the log start offset
    end: int  # the last stable offset when the reader was opened

    def position(self) -> int:
        """The reader's next offset (commit markers included); -1001 before the first fetch."""
        [tp] = self.reader.position([TopicPartition(self.topic, self.partition)])
        return int(tp.offset)


@contextmanager
def open_changelog(settings: FraudscoreSettings, partition: int) -> Iterator[ChangelogRange]:
    """A reader of changelog partition ``partition`` with its current range, closed on exit."""
    reader = committed_reader(settings)
    try:
        tp = TopicPartition(settings.changelog_topic, partition)
        try:
            begin, end = reader.get_watermark_offsets(tp, timeout=_OFFSETS_TIMEOUT_S, cached=False)
        except KafkaException as exc:
            raise StateError(f"cannot read the offsets of {tp.topic}[{partition}]: {exc}") from exc
        yield ChangelogRange(reader, tp.topic, partition, begin, end)
    finally:
        reader.close()


def changelog_batches(
    changelog: ChangelogRange, start: int, failpoints: Failpoints = NO_FAILPOINTS
) -> Iterator[list[Change]]:
    """The committed records from ``start`` up to the range's end, a fetched batch at a time."""
    reader = changelog.reader
    reader.assign([TopicPartition(changelog.topic, changelog.partition, start)])
    last_progress = time.monotonic()
    while start < changelog.end and changelog.position() < changelog.end:
        batch: list[Change] = []
        for message in reader.consume(10_000, timeout=_POLL_S):
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise StateError(f"reading {changelog.topic}: {error}")
                log.warning("reading %s: %s", changelog.topic, error)
                continue
            key = message.key()
            assert key is not None
            batch.append((key, message.value()))
        if batch:
            last_progress = time.monotonic()
            failpoints.hit("restore.read")
            yield batch
        elif time.monotonic() - last_progress > _STALL_S:
            raise StateError(
                f"reading {changelog.topic}[{changelog.partition}] made no progress for "
                f"{_STALL_S:.0f}s; is the broker up?"
            )


def restore_partition(
    settings: FraudscoreSettings,
    store: PartitionStore,
    partition: int,
    input_offset: int,
    failpoints: Failpoints = NO_FAILPOINTS,
    *,
    progress: RestoreProgress | None = None,
) -> int:
    """Restore ``store`` from changelog partition ``partition``; return the changelog end."""
    with open_changelog(settings, partition) as changelog:
        start = _resume_offset(store, changelog.begin, changelog.end)
        started = time.monotonic()
        batches = changelog_batches(changelog, start, failpoints)
        if progress is not None:
            progress(0, changelog.end - start)
            batches = _reporting(batches, changelog, progress)
        restored = _read_into(batches, store)
        store.write(
            [], CheckpointMeta(changelog_next_offset=changelog.end, input_next_offset=input_offset)
        )
        log.info(
            "restored %s[%d]: %d changelog records from offset %d to %d in %.2fs",
            changelog.topic,
            partition,
            restored,
            start,
            changelog.end,
            time.monotonic() - started,
            extra={"partition": partition},
        )
        return changelog.end


def _reporting(
    batches: Iterable[list[Change]], changelog: ChangelogRange, progress: RestoreProgress
) -> Iterator[list[Change]]:
    for batch in batches:
        yield batch
        progress(len(batch), max(0, changelog.end - changelog.position()))
    progress(0, 0)


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


def _read_into(batches: Iterable[list[Change]], store: PartitionStore) -> int:
    changes: dict[bytes, bytes | None] = {}
    restored = 0
    for batch in batches:
        changes.update(batch)
        restored += len(batch)
        if len(changes) >= _FLUSH_EVERY:
            store.write(changes.items(), None)
            changes.clear()
    store.write(changes.items(), None)
    return restored
