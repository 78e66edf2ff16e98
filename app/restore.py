"""Bring a partition's local RocksDB up to the committed changelog before it processes input.

Local state is a cache of the changelog. It is used as a starting point when its meta record's
changelog offset lies within the changelog (between the log start and the last stable offset);
otherwise (no meta, changelog recreated or truncated) it is wiped and rebuilt from the start.
The changelog is read with ``read_committed`` until the reader's *position* reaches the last
stable offset — commit markers occupy offsets, so "the last record seen" is not the end.
:func:`open_changelog` and :func:`changelog_batches` are that read, shared with savepoints
(``app/savepoint.py``); :func:`open_committed` and :func:`committed_batches` are the same read
of any topic's partition, for ``fraudscore replay`` (``app/replay.py``) reading the input.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

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


class CommittedRange(NamedTuple):
    """A ``read_committed`` reader for one partition of a topic, and the partition's range."""

    reader: Consumer
    topic: str
    partition: int
    begin: int  # the log start offset
    end: int  # the last stable offset when the reader was opened

    def position(self) -> int:
        """The reader's next offset (commit markers included); -1001 before the first fetch."""
        [tp] = self.reader.position([TopicPartition(self.topic, self.partition)])
        return int(tp.offset)


ChangelogRange = CommittedRange  # a changelog partition's range


@contextmanager
def open_committed(
    settings: FraudscoreSettings, topic: str, partition: int
) -> Iterator[CommittedRange]:
    """A reader of ``topic``'s partition ``partition`` with its current range, closed on exit.
    It is assigned, never a group member, and never commits."""
    reader = committed_reader(settings)
    try:
        tp = TopicPartition(topic, partition)
        try:
            begin, end = reader.get_watermark_offsets(tp, timeout=_OFFSETS_TIMEOUT_S, cached=False)
        except KafkaException as exc:
            raise StateError(f"cannot read the offsets of {topic}[{partition}]: {exc}") from exc
        yield CommittedRange(reader, topic, partition, begin, end)
    finally:
        reader.close()


def open_changelog(
    settings: FraudscoreSettings, partition: int
) -> AbstractContextManager[ChangelogRange]:
    """A reader of changelog partition ``partition`` with its current range, closed on exit."""
    return open_committed(settings, settings.changelog_topic, partition)


def committed_batches(
    committed: CommittedRange, start: int, failpoints: Failpoints = NO_FAILPOINTS
) -> Iterator[list[Message]]:
    """The committed messages from ``start`` up to the range's end, a fetched batch at a
    time, in offset order."""
    reader = committed.reader
    reader.assign([TopicPartition(committed.topic, committed.partition, start)])
    last_progress = time.monotonic()
    while start < committed.end and committed.position() < committed.end:
        batch: list[Message] = []
        for message in reader.consume(10_000, timeout=_POLL_S):
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise StateError(f"reading {committed.topic}: {error}")
                log.warning("reading %s: %s", committed.topic, error)
                continue
            batch.append(message)
        if batch:
            last_progress = time.monotonic()
            failpoints.hit("restore.read")
            yield batch
        elif time.monotonic() - last_progress > _STALL_S:
            raise StateError(
                f"reading {committed.topic}[{committed.partition}] made no progress for "
                f"{_STALL_S:.0f}s; is the broker up?"
            )


def changelog_batches(
    changelog: ChangelogRange, start: int, failpoints: Failpoints = NO_FAILPOINTS
) -> Iterator[list[Change]]:
    """The committed records from ``start`` up to the range's end, a fetched batch at a time."""
    for messages in committed_batches(changelog, start, failpoints):
        yield [(_key(message), message.value()) for message in messages]


def _key(message: Message) -> bytes:
    key = message.key()
    assert key is not None
    return key


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
