"""The state and open work of one input partition.

One :class:`PartitionTask` per assigned input partition p holds:

- the partition's state store (RocksDB behind an overlay of uncommitted writes);
- the outputs (decisions, dead letters) produced since the last checkpoint;
- the input offsets: committed (where a rewind goes back to) and next (what the open
  checkpoint will commit).

Start: restore state from changelog partition p up to its last stable offset, from the local
copy when it is consistent. Processing writes only to the overlay and the output buffer. When
the worker's checkpoint (:mod:`app.checkpoint`) commits, :meth:`committed` writes the overlay
to RocksDB; when it fails, :meth:`rewind` drops the overlay and the buffer. Nothing here talks
to Kafka except the restore. See docs/EXACTLY_ONCE.md.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import Message

from app.failpoint import NONE as NO_FAILPOINTS
from app.failpoint import Failpoints
from app.restore import RestoreProgress, restore_partition
from app.settings import FraudscoreSettings
from models.pipeline import BatchResult, Pipeline, SourceRecord
from sinks.rocksdb import CheckpointMeta, PartitionStore
from sinks.rocksdb_memory import shared_memory

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Pending:
    """What the open checkpoint holds for a partition besides the state overlay."""

    result: BatchResult = field(default_factory=BatchResult)
    records: int = 0
    opened_at: float = 0.0  # time.monotonic() of its first record
    ingest_ms: list[int] = field(default_factory=list)  # the records' Kafka timestamps
    event_ms: list[int] = field(default_factory=list)  # the decisions' event times


class PartitionTask:
    def __init__(
        self,
        settings: FraudscoreSettings,
        partition: int,
        pipeline: Pipeline,
        failpoints: Failpoints = NO_FAILPOINTS,
    ) -> None:
        self.settings = settings
        self.topic = settings.input_topic
        self.partition = partition
        self.pipeline = pipeline
        self.failpoints = failpoints
        self.store = PartitionStore(
            settings.state_dir / f"{self.topic}-{partition}",
            shared_memory(settings.state_memory_mb),
        )
        self.committed_offset = 0
        self.next_offset = 0
        self.changelog_next = 0
        self.pending = Pending()
        self._closed = False

    def __repr__(self) -> str:
        return f"{self.topic}[{self.partition}]"

    def start(self, committed: int, progress: RestoreProgress | None = None) -> None:
        """Restore state (telling ``progress``), then expect input from ``committed`` (the
        group's offset)."""
        self.changelog_next = restore_partition(
            self.settings, self.store, self.partition, committed, self.failpoints, progress=progress
        )
        self.committed_offset = self.next_offset = committed
        log.info(
            "partition %r ready at offset %d", self, committed, extra={"partition": self.partition}
        )

    def process(self, messages: list[Message]) -> None:
        """Run the pipeline over fetched records; outputs wait for the next checkpoint."""
        topic, partition = self.topic, self.partition
        batch = [
            SourceRecord(topic, partition, m.offset() or 0, m.key(), m.value() or b"")
            for m in messages
        ]
        result = self.pipeline.run(batch, self.store)
        pending = self.pending
        if pending.records == 0:
            pending.opened_at = time.monotonic()
        pending.records += len(batch)
        pending.ingest_ms.extend([m.timestamp()[1] for m in messages])
        pending.event_ms.extend(result.event_times_ms)
        pending.result.decisions.extend(result.decisions)
        pending.result.dead_letters.extend(result.dead_letters)
        pending.result.late.extend(result.late)
        self.next_offset = batch[-1].offset + 1

    def changes(self) -> list[tuple[bytes, bytes | None]]:
        """The open checkpoint's state changes, as changelog records."""
        return list(self.store.dirty())

    def committed(self, changes: list[tuple[bytes, bytes | None]], changelog_next: int) -> None:
        """The checkpoint carrying ``changes`` committed: write them to RocksDB."""
        self.changelog_next = changelog_next
        self.committed_offset = self.next_offset
        self.store.write(
            changes,
            CheckpointMeta(
                changelog_next_offset=changelog_next, input_next_offset=self.next_offset
            ),
        )
        self.pending = Pending()

    def rewind(self) -> None:
        """Forget everything since the last committed checkpoint (the caller seeks the input
        back to :attr:`committed_offset`)."""
        self.store.discard()
        self.pending = Pending()
        self.next_offset = self.committed_offset

    def close(self) -> None:
        """Drop uncommitted work and close the store. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self.rewind()
        self.store.close()
