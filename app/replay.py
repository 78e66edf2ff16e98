"""``fraudscore replay``: re-run the pipeline over the input log for an event-time range and
compare every decision with the audit table (docs/AUDIT.md, "Replay").

A card's features depend on its whole history (windows of up to 30 days, state kept until 45
days of inactivity) and on its partition's stream time, so no offset inside the log is a
safe place to start with empty state. Each input partition is therefore read from its log
start, in offset order, with ``read_committed`` by an assigned consumer that never commits
(:func:`app.restore.open_committed`), through the worker's own feature step
(:func:`models.pipeline.featurize`) on an in-memory :class:`~features.stream.MemoryCardStore`,
until its stream time passes ``end`` + ``max_out_of_orderness`` + ``allowed_lateness`` and
the highest source offset of the range's audit rows is behind (or the log's end, the last
stable offset when the read began, is reached).

Each replayed transaction whose event time is in [``start``, ``end``) is decided as its audit
row says it was: with the model, policy and shadow versions it records (resolved as
``audit reproduce`` resolves them, :mod:`app.reproduction`) and with the merchant snapshot it
records (``merchant_risk_version``, loaded from the registry database). A transaction the
table lacks is decided by the registry's active model and policy and its day's snapshot, as a
worker would. Replayed decisions go to ``decisions.jsonl`` in the output directory (never to
Kafka), then are compared with the rows (:func:`models.comparison.compare`).

A partition whose log no longer starts at offset 0 lacks history: differences there are
reported as ``history truncated``, not as mismatches; so are those of a transaction whose
recorded snapshot the database no longer has (``merchant snapshot ... unavailable``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from confluent_kafka import Message
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app.audit import load_audit_table
from app.db.engine import create_db_engine
from app.db.merchant_risk import load_snapshot
from app.live_pipeline import LivePipeline
from app.merchant_snapshots import DatabaseSnapshots
from app.reproduction import recorded_model, recorded_policy
from app.restore import committed_batches, open_committed
from app.settings import FraudscoreSettings
from features.merchant import PinnedSnapshot, SnapshotBook, parse_version
from features.stream import CardStore, MemoryCardStore
from models.comparison import HISTORY_TRUNCATED, Comparison, compare
from models.pipeline import (
    NO_SNAPSHOTS,
    DecisionRecord,
    Featurized,
    Pipeline,
    SourceRecord,
    encode_decision,
    featurize,
)
from sinks.errors import TopicError
from sinks.iceberg import event_time_between, rows_of
from sinks.kafka import committed_reader

log = logging.getLogger(__name__)

DECISIONS_FILE: Final = "decisions.jsonl"
Progress = Callable[[int, int, int], None]  # (partition, offsets read, offsets to read at most)
_METADATA_TIMEOUT_S: Final = 30.0
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
Versions = tuple[str, str, str | None]  # model, policy, shadow model


def _no_progress(partition: int, completed: int, total: int) -> None:
    pass


@dataclass(frozen=True, slots=True)
class PartitionRead:
    """How much of one input partition the replay read."""

    partition: int
    log_start: int
    next_offset: int  # the replay stopped before this offset
    log_end: int  # the last stable offset when the read began

    @property
    def truncated(self) -> bool:
        """Retention has deleted the log's beginning: cards may lack older history."""
        return self.log_start > 0


@dataclass(frozen=True, slots=True)
class ReplayReport:
    partitions: tuple[PartitionRead, ...]
    comparison: Comparison
    decisions_path: Path  # the replayed decisions, one JSON record per line
    snapshots_unavailable: tuple[str, ...]  # recorded merchant snapshots the database lacks


def replay(
    settings: FraudscoreSettings,
    start: datetime,
    end: datetime,
    out_dir: Path,
    *,
    progress: Progress = _no_progress,
) -> ReplayReport:
    """Replay the input log for event times in [``start``, ``end``) and compare with the
    audit table. Blocking I/O: reads every input partition from its log start."""
    recorded = recorded_decisions(settings, start, end)
    engine = create_db_engine(settings)
    try:
        merchants = _Merchants(settings, engine)
        judges = _Judges(settings, engine, merchants.current)
        replayer = _Replayer(settings, (start, end), recorded, merchants, judges)
        reads: list[PartitionRead] = []
        replayed: list[DecisionRecord] = []
        for partition in input_partitions(settings):
            read, decisions = replayer.partition(partition, progress)
            reads.append(read)
            replayed.extend(decisions)
    finally:
        engine.dispose()
    path = write_decisions(out_dir, replayed)
    return ReplayReport(
        tuple(reads),
        compare(recorded, replayed, caveats(reads, [*recorded, *replayed], merchants.unavailable)),
        path,
        tuple(sorted(merchants.unavailable)),
    )


def recorded_decisions(
    settings: FraudscoreSettings, start: datetime, end: datetime
) -> list[DecisionRecord]:
    """The audit table's decisions of input records with event times in [start, end)."""
    rows = rows_of(load_audit_table(settings).read(event_time_between(start, end)))
    decisions = [row.committed.decision for row in rows]
    return [d for d in decisions if d.source.topic == settings.input_topic]


def input_partitions(settings: FraudscoreSettings) -> list[int]:
    reader = committed_reader(settings)
    try:
        metadata = reader.list_topics(settings.input_topic, _METADATA_TIMEOUT_S)
    finally:
        reader.close()
    topic = metadata.topics.get(settings.input_topic)
    if topic is None or topic.error is not None or not topic.partitions:
        raise TopicError(
            f"input topic {settings.input_topic!r} is not on {settings.kafka_bootstrap}: "
            "replay needs the input log the audited decisions were made from "
            "(check FRAUDSCORE_INPUT_TOPIC and FRAUDSCORE_KAFKA_BOOTSTRAP)"
        )
    return sorted(topic.partitions)


def caveats(
    reads: Iterable[PartitionRead],
    decisions: Iterable[DecisionRecord],
    unavailable: Container[str],
) -> dict[str, str]:
    """Why a difference of a transaction (recorded or replayed) cannot be called a mismatch,
    by transaction id: its partition's log lost its start (card history, maybe its own input
    record, are gone), or the merchant snapshot its row records is not in the database."""
    truncated = {read.partition for read in reads if read.truncated}
    found: dict[str, str] = {}
    for decision in decisions:
        version = decision.merchant_risk_version
        if decision.source.partition in truncated:
            found[decision.transaction_id] = HISTORY_TRUNCATED
        elif version is not None and version in unavailable:
            found[decision.transaction_id] = f"merchant snapshot {version} unavailable"
    return found


def write_decisions(out_dir: Path, decisions: Iterable[DecisionRecord]) -> Path:
    """The replayed decisions as JSON lines (the decisions topic's values), in source order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / DECISIONS_FILE
    ordered = sorted(decisions, key=lambda d: (d.source.partition, d.source.offset))
    with path.open("wb") as out:
        for decision in ordered:
            out.write(encode_decision(decision) + b"\n")
    return path


class _Merchants:
    """Merchant snapshots: a recorded decision's own version, else what a worker would use."""

    def __init__(self, settings: FraudscoreSettings, engine: Engine) -> None:
        self._engine = engine
        self.current = DatabaseSnapshots(
            engine, settings.merchant_params, settings.registry_poll_ms
        )
        self._pinned: dict[str, PinnedSnapshot | None] = {}
        self.unavailable: set[str] = set()

    def book_for(self, recorded: DecisionRecord | None) -> SnapshotBook:
        """The snapshots to featurize a record with: those of a worker for a record without
        audit row, none for a decision that used none, else the one it recorded (if the
        database has it; else a worker's, and the version is noted as unavailable)."""
        if recorded is None:
            return self.current
        version = recorded.merchant_risk_version
        if version is None:
            return NO_SNAPSHOTS
        if version not in self._pinned:
            self._pinned[version] = self._load(version)
        return self._pinned[version] or self.current

    def _load(self, version: str) -> PinnedSnapshot | None:
        parsed = parse_version(version)
        try:
            snapshot = None if parsed is None else load_snapshot(self._engine, *parsed)
        except SQLAlchemyError as exc:
            log.warning("cannot load merchant snapshot %s: %s", version, exc)
            snapshot = None
        if snapshot is None:
            self.unavailable.add(version)
            return None
        return PinnedSnapshot(snapshot)


class _Judges:
    """The pipelines that decide replayed records: one per recorded (model, policy, shadow)
    versions, loaded as ``audit reproduce`` loads them; for a record without audit row, the
    one a worker would start with now (the registry's active model and policy, else the
    configured ones), built when first needed."""

    def __init__(
        self, settings: FraudscoreSettings, engine: Engine, merchants: SnapshotBook
    ) -> None:
        self._settings = settings
        self._engine = engine
        self._merchants = merchants
        self._active: Pipeline | None = None
        self._pipelines: dict[Versions, Pipeline] = {}

    def pipeline(self, versions: Versions | None) -> Pipeline:
        if versions is None:
            if self._active is None:
                self._active = LivePipeline(self._settings, self._engine, self._merchants).current
            return self._active
        if versions not in self._pipelines:
            self._pipelines[versions] = self._load(versions)
        return self._pipelines[versions]

    def _load(self, versions: Versions) -> Pipeline:
        model, policy, shadow = versions
        settings = self._settings
        return Pipeline(
            scorer=recorded_model(settings, model)[0],
            policy=recorded_policy(settings, policy)[0],
            max_record_bytes=settings.max_record_bytes,
            shadow=None if shadow is None else recorded_model(settings, shadow)[0],
        )


def versions_of(recorded: DecisionRecord | None) -> Versions | None:
    if recorded is None:
        return None
    return recorded.model_version, recorded.policy_version, recorded.shadow_model_version


class _Replayer:
    """Replays input partitions for an event-time range [start, end)."""

    def __init__(
        self,
        settings: FraudscoreSettings,
        span: tuple[datetime, datetime],
        recorded: Sequence[DecisionRecord],
        merchants: _Merchants,
        judges: _Judges,
    ) -> None:
        start, end = span
        self._settings = settings
        self._start_ms, self._end_ms = _ms(start), _ms(end)
        params = settings.stream_params
        self._stop_ms = self._end_ms + params.features.max_out_of_orderness_ms
        self._stop_ms += params.allowed_lateness_ms
        self._recorded = {(d.source.partition, d.source.offset): d for d in recorded}
        self._last_recorded: dict[int, int] = {}
        for partition, offset in self._recorded:
            self._last_recorded[partition] = max(offset, self._last_recorded.get(partition, -1))
        self._merchants = merchants
        self._judges = judges

    def partition(
        self, partition: int, progress: Progress
    ) -> tuple[PartitionRead, list[DecisionRecord]]:
        """Replay one partition from its log start until :meth:`_done`; its decisions in the
        range."""
        store = MemoryCardStore()
        decisions: list[DecisionRecord] = []
        topic = self._settings.input_topic
        with open_committed(self._settings, topic, partition) as log_range:
            begin, end = log_range.begin, log_range.end
            next_offset, done = begin, False
            for messages in committed_batches(log_range, begin):
                kept, next_offset, done = self._read(messages, store)
                decisions.extend(self._decide(kept))
                progress(partition, next_offset - begin, end - begin)
                if done:
                    break
            if not done:
                next_offset = max(next_offset, end)
        progress(partition, next_offset - begin, next_offset - begin)
        return PartitionRead(partition, begin, next_offset, end), decisions

    def _read(
        self, messages: Sequence[Message], store: CardStore
    ) -> tuple[list[Featurized], int, bool]:
        """Featurize the records in offset order, up to the first after which the partition
        is :meth:`_done`; return those in the range, the next offset, and whether done."""
        kept: list[Featurized] = []
        next_offset = 0
        for message in messages:
            record = SourceRecord(
                message.topic() or "",
                message.partition() or 0,
                message.offset() or 0,
                message.key(),
                message.value() or b"",
            )
            kept.extend(self._featurize(record, store))
            next_offset = record.offset + 1
            if self._done(store, record.partition, next_offset):
                return kept, next_offset, True
        return kept, next_offset, False

    def _featurize(self, record: SourceRecord, store: CardStore) -> list[Featurized]:
        """The worker's feature step for one record, with the merchant snapshot its audit row
        records; empty unless it is accepted and its event time is in the range."""
        recorded = self._recorded.get((record.partition, record.offset))
        accepted, _ = featurize(
            [record],
            store,
            max_record_bytes=self._settings.max_record_bytes,
            params=self._settings.stream_params,
            merchants=self._merchants.book_for(recorded),
        )
        return [f for f in accepted if self._start_ms <= f.txn.event_time_ms < self._end_ms]

    def _decide(self, accepted: Sequence[Featurized]) -> list[DecisionRecord]:
        """Decide each record with its recorded versions (one model call per versions)."""
        groups: dict[Versions | None, list[Featurized]] = {}
        for featurized in accepted:
            record = featurized.record
            versions = versions_of(self._recorded.get((record.partition, record.offset)))
            groups.setdefault(versions, []).append(featurized)
        decisions = [
            decision
            for versions, group in groups.items()
            for _, decision in self._judges.pipeline(versions).decide(group)
        ]
        return sorted(decisions, key=lambda d: d.source.offset)

    def _done(self, store: CardStore, partition: int, next_offset: int) -> bool:
        """Whether the partition's stream time has passed the range's end by the allowed
        out-of-orderness and lateness, and every audited decision of the range is read."""
        state = store.partition_state()
        stream_time = None if state is None else state.stream_time_ms
        passed = stream_time is not None and stream_time >= self._stop_ms
        return passed and next_offset > self._last_recorded.get(partition, -1)


def _ms(moment: datetime) -> int:
    """Epoch milliseconds of an aware datetime, exactly (no float on the way)."""
    return (moment - _EPOCH) // timedelta(milliseconds=1)
