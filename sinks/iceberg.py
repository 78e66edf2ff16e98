"""The audit trail on Apache Iceberg: the table ``fraud.decisions``, its rows, exactly-once
appends, lookups and snapshot expiry (pyiceberg 0.12, any SQL catalog).

One row per committed decision: the decision record as the worker wrote it (token only,
amount as a decimal, event time as UTC microseconds, the feature vector as a struct of named
optional doubles, score, decision, reasons, model/policy/feature-schema versions, input
source), where it sat in the decisions topic, when the worker decided it, and which audit
checkpoint ingested it when. Partitioned by ``day(event_time)``; every batch is sorted by card
and event time before it is written (pyiceberg stores a sort order but does not sort).

Exactly once (docs/AUDIT.md has the argument): every append carries, in its snapshot summary,
the audit checkpoint id and the next offset of every decisions partition ever written. An
append keeps only the decisions at or after the offsets of the snapshot it is based on, and
the catalog accepts it only while that snapshot is still the table's head: pyiceberg's own
retry, which re-bases a losing append onto the winner and so duplicates rows, is switched off
(``commit.retry.num-retries=0``); a loser refreshes, filters again and retries.

Nothing here reads settings or the clock: the catalog, table properties and ingest time come
from the caller (``app/audit.py``).
"""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Callable, Container, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.compute as pc
from pyarrow import fs as pafs
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import CommitFailedException, NoSuchTableError
from pyiceberg.expressions import (
    AlwaysTrue,
    And,
    BooleanExpression,
    EqualTo,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
    LiteralPredicate,
    Reference,
)
from pyiceberg.expressions.literals import literal
from pyiceberg.io.pyarrow import ArrowScan, _dataframe_to_data_files
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import DataScan, Table, TableProperties, Transaction
from pyiceberg.table.refs import SnapshotRefType
from pyiceberg.table.snapshots import Operation, Snapshot, ancestors_of
from pyiceberg.table.sorting import SortField, SortOrder
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.types import (
    BooleanType,
    DecimalType,
    DoubleType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    StringType,
    StructType,
    TimestamptzType,
)
from pyiceberg.utils.datetime import datetime_to_millis
from sqlalchemy.exc import IntegrityError

from features.currency import MINOR_UNIT_EXPONENTS
from features.schema import FEATURE_NAMES
from models.pipeline import DecisionRecord, Source, format_event_time
from sinks._iceberg_lookup import scan_equal
from sinks.errors import AuditError, AuditQueryError, AuditSnapshotError

log = logging.getLogger(__name__)

CHECKPOINT_PROPERTY: Final = "fraudscore.audit.checkpoint-id"
OFFSETS_PROPERTY: Final = "fraudscore.audit.offsets"  # JSON {topic: {partition: next offset}}
COMPACTED_PROPERTY: Final = "fraudscore.audit.compacted-day"  # on a compaction's two snapshots
# + the day: a table property, how many files the day's last compaction wrote (a big day makes
# several: pyiceberg splits by write.target-file-size-bytes), so it is not compacted again
COMPACTED_FILES_PREFIX: Final = "fraudscore.audit.compacted-files."
REQUIRED_PROPERTIES: Final = {"commit.retry.num-retries": "0"}
AMOUNT_TYPE: Final = DecimalType(18, 4)  # ISO 4217 exponents go up to 4; amounts <= 10**12 minor
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_METADATA_ATTEMPTS: Final = 5  # a metadata change or compaction that keeps losing races gives up
ROW_ORDER: Final = [("card_id", "ascending"), ("event_time", "ascending")]
_MERCHANT_RISK_DOC: Final = "the merchant snapshot the merchant features came from (null: none)"
_WORKER_CHECKPOINT_DOC: Final = (
    "the worker's checkpoint (Kafka transaction) that committed the decision: "
    "<transactional id>@<its processed_at ms> (null: not recorded)"
)
# optional columns added after tables were made, added to older tables when opened
_LATER_COLUMNS: Final = (
    ("merchant_risk_version", _MERCHANT_RISK_DOC),
    ("worker_checkpoint_id", _WORKER_CHECKPOINT_DOC),
)
DAY_TAG_PREFIX: Final = "day-"  # + the UTC date: the table as it was at the end of that day
_STATS_COLUMNS: Final = ("decision", "model_version", "reasons")


# --- The table --------------------------------------------------------------------------


def audit_schema(feature_names: Sequence[str] = FEATURE_NAMES) -> Schema:
    """The table's schema for a first feature set; later features become optional columns."""
    ids = itertools.count(1)

    def col(name: str, kind: IcebergType, doc: str, *, required: bool = True) -> NestedField:
        return NestedField(next(ids), name, kind, required=required, doc=doc)

    features = StructType(
        *(NestedField(next(ids), name, DoubleType(), required=False) for name in feature_names)
    )
    return Schema(
        col("transaction_id", StringType(), "the input transaction's id"),
        col("card_id", StringType(), "card token (never a card number)"),
        col("amount", AMOUNT_TYPE, "amount in the currency's major unit"),
        col("currency", StringType(), "ISO 4217 code"),
        col("merchant_id", StringType(), "merchant"),
        col("event_time", TimestamptzType(), "when the transaction happened (UTC)"),
        col("score", DoubleType(), "the score the decision was taken on"),
        col("shadow_score", DoubleType(), "score of a shadow model, if one ran", required=False),
        col("shadow_model_version", StringType(), "the shadow model", required=False),
        col("decision", StringType(), "APPROVE, REVIEW or DECLINE"),
        col("reasons", ListType(next(ids), StringType(), element_required=True), "reason codes"),
        col("model_version", StringType(), "model that scored"),
        col("policy_version", StringType(), "decision policy"),
        col("feature_schema_version", IntegerType(), "version of the feature definitions"),
        col("features", features, "the feature vector, by name (null: not computed)"),
        col("merchant_risk_version", StringType(), _MERCHANT_RISK_DOC, required=False),
        col("late", BooleanType(), "older than its partition's watermark minus allowed lateness"),
        col("source_topic", StringType(), "input topic of the transaction"),
        col("source_partition", IntegerType(), "input partition"),
        col("source_offset", LongType(), "input offset"),
        col("decision_topic", StringType(), "topic the decision was read from"),
        col("decision_partition", IntegerType(), "its partition"),
        col("decision_offset", LongType(), "its offset"),
        col("decided_at", TimestamptzType(), "when the worker decided", required=False),
        col("checkpoint_id", LongType(), "audit checkpoint (Iceberg commit) that added the row"),
        col("ingested_at", TimestamptzType(), "when that audit checkpoint was written"),
        col("worker_checkpoint_id", StringType(), _WORKER_CHECKPOINT_DOC, required=False),
    )


def _layout(schema: Schema) -> tuple[PartitionSpec, SortOrder]:
    event_time = schema.find_field("event_time").field_id
    card = schema.find_field("card_id").field_id
    spec = PartitionSpec(PartitionField(event_time, 1000, DayTransform(), "event_day"))
    order = SortOrder(
        SortField(card, IdentityTransform()), SortField(event_time, IdentityTransform())
    )
    return spec, order


def table_properties(configured: Mapping[str, str]) -> dict[str, str]:
    """The configured table properties plus the ones exactly-once depends on."""
    for key, value in REQUIRED_PROPERTIES.items():
        if configured.get(key, value) != value:
            raise AuditError(
                f"table property {key}={configured[key]!r} would let pyiceberg re-base a "
                f"losing append and duplicate rows; remove it (the audit sink sets {value!r})"
            )
    return {**configured, **REQUIRED_PROPERTIES}


def open_table(catalog: Catalog, identifier: str, properties: Mapping[str, str]) -> AuditTable:
    """Load the audit table, creating it (and its namespace) if missing, and make sure its
    properties are the given ones."""
    wanted = table_properties(properties)
    namespace, _, _ = identifier.rpartition(".")
    if not namespace:
        raise AuditError(f"audit table {identifier!r} needs a namespace, e.g. fraud.decisions")
    try:
        catalog.create_namespace_if_not_exists(namespace)
    except IntegrityError:  # another process created it between pyiceberg's check and insert
        catalog.create_namespace_if_not_exists(namespace)
    schema = audit_schema()
    spec, order = _layout(schema)
    table = catalog.create_table_if_not_exists(
        identifier, schema, partition_spec=spec, sort_order=order, properties=wanted
    )
    audit = AuditTable(table)
    audit.ensure_properties(wanted)
    audit.ensure_later_columns()
    return audit


def load_table(catalog: Catalog, identifier: str) -> AuditTable:
    """The audit table, which must exist already (for readers)."""
    try:
        return AuditTable(catalog.load_table(identifier))
    except NoSuchTableError as exc:
        raise AuditError(
            f"there is no audit table {identifier!r} in this catalog yet: "
            "`fraudscore audit-sink` creates it"
        ) from exc


# --- Rows -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CommittedDecision:
    """A decision as a ``read_committed`` consumer read it from the decisions topic."""

    decision: DecisionRecord
    topic: str
    partition: int
    offset: int
    decided_at: datetime | None  # the worker's ``fraudscore.processed_at_ms`` header
    worker_checkpoint: str | None = None  # its ``fraudscore.checkpoint`` header


@dataclass(frozen=True, slots=True)
class AuditRow:
    """One row of the audit table."""

    committed: CommittedDecision
    checkpoint_id: int
    ingested_at: datetime


def from_epoch_ms(ms: int) -> datetime:
    """UTC datetime of epoch milliseconds, exactly (no float on the way)."""
    return _EPOCH + timedelta(milliseconds=ms)


def _columns(
    decisions: Sequence[CommittedDecision], checkpoint_id: int, ingested_at: datetime
) -> dict[str, list[Any]]:
    n = len(decisions)
    records = [c.decision for c in decisions]
    return {
        "transaction_id": [r.transaction_id for r in records],
        "card_id": [r.card_id for r in records],
        "amount": [Decimal(r.amount) for r in records],
        "currency": [r.currency for r in records],
        "merchant_id": [r.merchant_id for r in records],
        "event_time": [datetime.fromisoformat(r.event_time) for r in records],
        "score": [r.score for r in records],
        "shadow_score": [r.shadow_score for r in records],
        "shadow_model_version": [r.shadow_model_version for r in records],
        "decision": [r.decision for r in records],
        "reasons": [list(r.reasons) for r in records],
        "model_version": [r.model_version for r in records],
        "policy_version": [r.policy_version for r in records],
        "feature_schema_version": [r.feature_schema_version for r in records],
        "features": [r.features for r in records],
        "merchant_risk_version": [r.merchant_risk_version for r in records],
        "late": [r.late for r in records],
        "source_topic": [r.source.topic for r in records],
        "source_partition": [r.source.partition for r in records],
        "source_offset": [r.source.offset for r in records],
        "decision_topic": [c.topic for c in decisions],
        "decision_partition": [c.partition for c in decisions],
        "decision_offset": [c.offset for c in decisions],
        "decided_at": [c.decided_at for c in decisions],
        "checkpoint_id": [checkpoint_id] * n,
        "ingested_at": [ingested_at] * n,
        "worker_checkpoint_id": [c.worker_checkpoint for c in decisions],
    }


def arrow_batch(
    schema: Schema,
    decisions: Sequence[CommittedDecision],
    checkpoint_id: int,
    ingested_at: datetime,
) -> pa.Table:
    """The rows of one audit checkpoint as Arrow, in the table's schema (so required columns
    are non-nullable), sorted by card and event time."""
    batch = pa.Table.from_pydict(
        _columns(decisions, checkpoint_id, ingested_at), schema=schema.as_arrow()
    )
    return batch.sort_by(ROW_ORDER)


def _amount_text(amount: Decimal, currency: str) -> str:
    """The amount as the decision record wrote it: the currency's own number of decimals."""
    return str(amount.quantize(Decimal(1).scaleb(-MINOR_UNIT_EXPONENTS[currency])))


def _to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def row_of(values: Mapping[str, Any]) -> AuditRow:
    """An audit row from one row of a scan (``pa.Table.to_pylist()``); the decision record
    in it is the one the worker wrote, field for field."""
    decision = DecisionRecord(
        transaction_id=values["transaction_id"],
        card_id=values["card_id"],
        amount=_amount_text(values["amount"], values["currency"]),
        currency=values["currency"],
        merchant_id=values["merchant_id"],
        event_time=format_event_time(_to_ms(values["event_time"])),
        score=values["score"],
        decision=values["decision"],
        reasons=tuple(values["reasons"]),
        model_version=values["model_version"],
        policy_version=values["policy_version"],
        feature_schema_version=values["feature_schema_version"],
        features={k: v for k, v in values["features"].items() if v is not None},
        merchant_risk_version=values.get("merchant_risk_version"),
        late=values["late"],
        source=Source(values["source_topic"], values["source_partition"], values["source_offset"]),
        shadow_score=values["shadow_score"],
        shadow_model_version=values["shadow_model_version"],
    )
    committed = CommittedDecision(
        decision,
        values["decision_topic"],
        values["decision_partition"],
        values["decision_offset"],
        values["decided_at"],
        values.get("worker_checkpoint_id"),
    )
    return AuditRow(committed, values["checkpoint_id"], values["ingested_at"])


def rows_of(arrow: pa.Table) -> list[AuditRow]:
    return [row_of(values) for values in arrow.to_pylist()]


# --- Where the table is -----------------------------------------------------------------

Offsets = dict[str, dict[int, int]]  # topic → partition → next offset


@dataclass(frozen=True, slots=True)
class AuditPosition:
    """What the table holds: decisions below these offsets, up to this checkpoint."""

    checkpoint_id: int = 0  # 0: nothing committed by a sink yet
    offsets: Offsets = field(default_factory=dict)
    snapshot_id: int | None = None  # the snapshot that says so

    def next_offset(self, topic: str, partition: int) -> int:
        return self.offsets.get(topic, {}).get(partition, 0)

    def after(self, decisions: Iterable[CommittedDecision]) -> Offsets:
        """These offsets advanced past ``decisions`` (all of them at or after ours)."""
        offsets = {topic: dict(parts) for topic, parts in self.offsets.items()}
        for c in decisions:
            parts = offsets.setdefault(c.topic, {})
            parts[c.partition] = max(parts.get(c.partition, 0), c.offset + 1)
        return offsets

    def summary(self) -> dict[str, str]:
        """The snapshot summary properties that record this position."""
        encoded = {t: {str(p): o for p, o in sorted(ps.items())} for t, ps in self.offsets.items()}
        return {
            CHECKPOINT_PROPERTY: str(self.checkpoint_id),
            OFFSETS_PROPERTY: json.dumps(encoded, sort_keys=True, separators=(",", ":")),
        }


def _position_of(snapshot: Snapshot) -> AuditPosition | None:
    summary = snapshot.summary
    if summary is None:
        return None
    offsets, checkpoint = summary.get(OFFSETS_PROPERTY), summary.get(CHECKPOINT_PROPERTY)
    if offsets is None or checkpoint is None:
        return None
    return AuditPosition(
        checkpoint_id=int(checkpoint),
        offsets={
            topic: {int(p): int(o) for p, o in parts.items()}
            for topic, parts in json.loads(offsets).items()
        },
        snapshot_id=snapshot.snapshot_id,
    )


def committed_position(table: Table) -> AuditPosition:
    """The position recorded by the newest snapshot on the table's main line that has one.

    An empty table is at the start. A table with snapshots none of which records a position is
    refused: its newest sink snapshot was expired (pyiceberg then forgets the parent link
    too) or something else wrote it, and starting from the beginning would append every
    decision again.
    """
    head = table.current_snapshot()
    if head is None:
        return AuditPosition()
    for snapshot in ancestors_of(head, table.metadata):
        position = _position_of(snapshot)
        if position is not None:
            return position
    raise AuditError(
        f"no snapshot from {head.snapshot_id} back carries {OFFSETS_PROPERTY!r}, so where the "
        "audit sink stopped is unknown: the newest sink snapshot was expired, or something else "
        "wrote the table. Roll the table back to a metadata file that still has a sink snapshot "
        "(the catalog keeps the previous locations), and never expire the newest one"
    )


# --- Reading ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AsOf:
    """Which state of the table a query reads: at most one of these; none, the current one.

    ``snapshot_id``: Iceberg time travel to that snapshot (gone once it is expired).
    ``tag``: the snapshot a tag names, e.g. the day tag ``day-2026-11-21`` (the table at the
    end of that UTC day; tagged snapshots are never expired). ``ingested_by``: only the rows
    ingested at or before that moment: on this append-only table (compaction keeps each row's
    ``ingested_at``) that is the table as it was then, whatever was expired since.
    """

    snapshot_id: int | None = None
    tag: str | None = None
    ingested_by: datetime | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.snapshot_id, self.tag, self.ingested_by) if v is not None]
        if len(given) > 1:
            raise AuditQueryError("ask as of one thing only: a snapshot, a tag or a time")


CURRENT: Final = AsOf()
EVERYTHING: Final[BooleanExpression] = AlwaysTrue()


def day_tag(day: date) -> str:
    return f"{DAY_TAG_PREFIX}{day.isoformat()}"


def stats_of(rows: pa.Table) -> pa.Table:
    """Counts of ``rows`` (with columns decision, model_version, reasons) as a table of
    ``group`` (``all``, ``decision``, ``model_version``, ``reason``), ``value`` and
    ``count``; within a group the biggest count first."""
    total = pa.table({"value": ["decisions"], "count": pa.array([rows.num_rows], pa.int64())})
    parts = [
        ("all", total),
        ("decision", _counts(rows["decision"])),
        ("model_version", _counts(rows["model_version"])),
        ("reason", _counts(pc.list_flatten(rows["reasons"]))),
    ]
    groups = [t.add_column(0, "group", pa.array([g] * t.num_rows, pa.string())) for g, t in parts]
    return pa.concat_tables(groups)


def _counts(values: pa.ChunkedArray | pa.Array) -> pa.Table:
    counted = pa.table({"value": values}).group_by("value").aggregate([("value", "count")])
    counted = counted.rename_columns(["value", "count"]).cast(
        pa.schema([("value", pa.string()), ("count", pa.int64())])
    )
    return counted.sort_by([("count", "descending"), ("value", "ascending")])


def event_time_between(start: datetime | None, end: datetime | None) -> BooleanExpression:
    """Rows with event times in [``start``, ``end``) (None: unbounded); naive times are UTC.
    Scans with it read only the days in the range."""
    condition = EVERYTHING
    if start is not None:
        condition = And(condition, _compare(GreaterThanOrEqual, "event_time", _iso(start)))
    if end is not None:
        condition = And(condition, _compare(LessThan, "event_time", _iso(end)))
    return condition


def _iso(moment: datetime) -> str:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _snapshot_to_read(table: Table, as_of: AsOf) -> int | None:
    """The snapshot ``as_of`` names (None: the current one), refused if it cannot answer."""
    if as_of.tag is not None:
        ref = table.refs().get(as_of.tag)
        if ref is None or ref.snapshot_ref_type != SnapshotRefType.TAG:
            newest = ", ".join(list(_day_tags(table))[-3:]) or "none yet"
            raise AuditSnapshotError(
                f"{table.name()} has no tag {as_of.tag!r} (newest day tags: {newest}). "
                "`fraudscore audit maintain` tags the last snapshot of each closed UTC day "
                f"as {DAY_TAG_PREFIX}YYYY-MM-DD; or ask as of a time"
            )
        return ref.snapshot_id
    if as_of.snapshot_id is not None:
        _check_readable(table, as_of.snapshot_id)
    return as_of.snapshot_id


def _day_tags(table: Table) -> dict[str, int]:
    tags = {
        name: ref.snapshot_id
        for name, ref in table.refs().items()
        if ref.snapshot_ref_type == SnapshotRefType.TAG and name.startswith(DAY_TAG_PREFIX)
    }
    return dict(sorted(tags.items()))


def _is_compaction_delete(snapshot: Snapshot) -> bool:
    summary = snapshot.summary
    return (
        summary is not None
        and summary.operation == Operation.DELETE
        and summary.get(COMPACTED_PROPERTY) is not None
    )


def day_ends(line: Iterable[Snapshot], before: date, tagged: Container[str]) -> dict[date, int]:
    """Per UTC day before ``before`` whose tag is not in ``tagged``, the newest snapshot of
    ``line`` (a main line, newest first) committed that day. A compaction's DELETE half lacks
    the compacted day's rows: its APPEND half (committed in the same catalog swap, so always
    just after it on the line, with the very rows of the DELETE's parent) is taken instead."""
    ends: dict[date, int] = {}
    newer: Snapshot | None = None
    for snapshot in line:
        day = from_epoch_ms(snapshot.timestamp_ms).date()
        if day < before and day not in ends and day_tag(day) not in tagged:
            chosen = newer if newer is not None and _is_compaction_delete(snapshot) else snapshot
            ends[day] = chosen.snapshot_id
        newer = snapshot
    return ends


# --- Appending --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StagedAppend:
    """An append with its data files written, not yet committed to the catalog."""

    transaction: Transaction
    checkpoint_id: int
    rows: int


class AuditTable:
    """A process's handle on the audit table."""

    def __init__(self, table: Table) -> None:
        self.table = table

    def position(self) -> AuditPosition:
        return committed_position(self.table)

    def ensure_properties(self, wanted: Mapping[str, str]) -> None:
        """Set the table properties that differ from ``wanted``."""

        def change(table: Table) -> None:
            changed = {k: v for k, v in wanted.items() if table.properties.get(k) != v}
            if changed:
                log.info("setting %s properties %s", table.name(), changed)
                table.transaction().set_properties(changed).commit_transaction()

        self._change_metadata(change)

    def stage(
        self, decisions: Sequence[CommittedDecision], ingested_at: datetime
    ) -> StagedAppend | None:
        """Write the data files of the next checkpoint: the decisions not yet in the table as
        of the snapshot this handle sees. None if there are none."""
        self._add_features(decisions)  # first: a lost schema race refreshes the handle
        base = self.position()
        new = [c for c in decisions if c.offset >= base.next_offset(c.topic, c.partition)]
        if not new:
            return None
        position = AuditPosition(base.checkpoint_id + 1, base.after(new))
        batch = arrow_batch(self.table.schema(), new, position.checkpoint_id, ingested_at)
        return self.stage_batch(batch, position)

    def stage_batch(self, batch: pa.Table, position: AuditPosition) -> StagedAppend:
        """Write the data files of the append that takes the table to ``position``: ``batch``,
        rows in the table's schema sorted by card and time, none of them in the table yet."""
        transaction = self.table.transaction()
        transaction.append(batch, snapshot_properties=position.summary())
        return StagedAppend(transaction, position.checkpoint_id, batch.num_rows)

    def commit(self, staged: StagedAppend) -> AuditPosition | None:
        """Commit a staged append; the table's new position. None if another writer moved the
        table first: the append is dropped (its files deleted) and this handle refreshed, so
        stage again."""
        try:
            staged.transaction.commit_transaction()
        except CommitFailedException:
            self.table.refresh()
            return None
        return self.position()

    def snapshot_count(self) -> int:
        """Snapshots in the table's metadata as this handle last saw it."""
        return len(self.table.metadata.snapshots)

    def read(
        self,
        condition: BooleanExpression = EVERYTHING,
        as_of: AsOf = CURRENT,
        columns: Sequence[str] = ("*",),
    ) -> pa.Table:
        """The rows that match ``condition`` in the table as ``as_of`` says, as Arrow (in the
        schema of the snapshot read)."""
        return self._scan(condition, as_of, columns).to_arrow()

    def _scan(
        self, condition: BooleanExpression, as_of: AsOf, columns: Sequence[str] = ("*",)
    ) -> DataScan:
        snapshot_id = _snapshot_to_read(self.table, as_of)
        if as_of.ingested_by is not None:
            by = _compare(LessThanOrEqual, "ingested_at", as_of.ingested_by.isoformat())
            condition = And(condition, by)
        return self.table.scan(
            row_filter=condition, snapshot_id=snapshot_id, selected_fields=tuple(columns)
        )

    def transaction(
        self, transaction_id: str, as_of: AsOf = CURRENT, day: date | None = None
    ) -> pa.Table:
        """The rows of one transaction (one, unless something is wrong); ``day``: its event
        date (UTC), so that only that day's files are read. Of each file only the id column,
        then the Parquet row groups holding the id (:func:`sinks._iceberg_lookup.scan_equal`:
        the same rows as a plain scan, without decoding a whole day)."""
        condition = _compare(EqualTo, "transaction_id", transaction_id)
        if day is not None:
            condition = And(condition, day_condition(day))
        return scan_equal(self._scan(condition, as_of), "transaction_id", transaction_id)

    def find(
        self, transaction_id: str, as_of: AsOf = CURRENT, day: date | None = None
    ) -> list[AuditRow]:
        """:meth:`transaction` as audit rows."""
        return rows_of(self.transaction(transaction_id, as_of, day))

    def card(
        self,
        card_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        as_of: AsOf = CURRENT,
    ) -> pa.Table:
        """A card's rows with event times in [``start``, ``end``), oldest first."""
        condition = And(_compare(EqualTo, "card_id", card_id), event_time_between(start, end))
        rows = self.read(condition, as_of)
        return rows.sort_by([("event_time", "ascending"), ("transaction_id", "ascending")])

    def day_stats(self, day: date, as_of: AsOf = CURRENT) -> pa.Table:
        """Counts of one event day's decisions (UTC) by decision, model version and reason
        code: columns ``group``, ``value``, ``count`` (see :func:`stats_of`)."""
        return stats_of(self.read(day_condition(day), as_of, _STATS_COLUMNS))

    def tag_closed_days(self, before: date) -> dict[date, int]:
        """Tag the last main-line snapshot committed on each UTC day before ``before`` that
        has none yet (``day-YYYY-MM-DD``), never a compaction's DELETE half; the snapshots
        tagged, by day. Tagged snapshots are never expired (:meth:`expire_snapshots`)."""
        tagged: dict[date, int] = {}

        def change(table: Table) -> None:
            tagged.clear()
            line = ancestors_of(table.current_snapshot(), table.metadata)
            tagged.update(day_ends(line, before, table.refs()))
            if tagged:
                update = table.manage_snapshots()
                for day, snapshot_id in sorted(tagged.items()):
                    update = update.create_tag(snapshot_id, day_tag(day))
                update.commit()

        self.table.refresh()
        self._change_metadata(change)
        return tagged

    def day_tags(self) -> dict[str, int]:
        """The day tags and the snapshots they name, oldest day first."""
        return _day_tags(self.table)

    def expire_snapshots(self, older_than: datetime, keep: int) -> list[int]:
        """Expire the snapshots taken before ``older_than``, except the newest ``keep`` of the
        main line, all of it down to the newest snapshot that records the sink's position
        (where the sink resumes), and branch and tag heads. Data files stay: every one is
        still in the current snapshot of this append-only table. Returns the ids expired."""
        expired: list[int] = []

        def change(table: Table) -> None:
            expired[:] = _expirable(table, older_than, keep)
            if not expired:
                return
            try:
                table.maintenance.expire_snapshots().by_ids(expired).commit()
            except ValueError as exc:
                # pyiceberg applies the removal to the catalog's fresh metadata without any
                # requirement: another expiry (the sink's own, `audit maintain`) that removed
                # one of them first surfaces so. A lost race: refresh and compute again.
                if "does not exist" not in str(exc):
                    raise
                raise CommitFailedException(f"expired meanwhile: {exc}") from exc

        self.table.refresh()
        self._change_metadata(change)
        return expired

    def days_to_compact(self, before: date) -> list[date]:
        """The days before ``before`` whose rows are spread over more data files than their
        last compaction wrote (one, if never compacted)."""
        if self.table.current_snapshot() is None:  # pyiceberg cannot inspect an empty table
            return []
        partitions = self.table.inspect.partitions().select(["partition", "file_count"])
        return sorted(
            day
            for p in partitions.to_pylist()
            if (day := p["partition"]["event_day"]) < before
            and p["file_count"] > _compacted_files(self.table, day)
        )

    def compact_day(self, day: date) -> int:
        """Rewrite one day's rows into fewer, bigger files, each sorted by card and time, in
        one commit (a DELETE and an APPEND snapshot, both carrying the sink's position
        unchanged). Like the sink's appends it must find the head it read still in place, so
        a commit in between makes it read and write again. Returns the number of files
        replaced (0: the day has at most as many as its last compaction wrote).

        Memory stays bounded whatever the day's size: the day is read as a stream and cut
        into groups of about ``write.target-file-size-bytes`` of Arrow data (the size
        pyiceberg's writer targets per file), each sorted and written before the next is read
        (about twice that size at the peak: a group and its sorted copy). A whole day at once
        would not fit: ~640 bytes of Arrow per decision, 55 GB for a day at 1,000 TPS
        (docs/SCALING.md). So, as in Iceberg's own rewrite by file groups, each file is
        sorted but files of one day may overlap in cards; a card's lookup still skips the
        row groups of other cards inside each file."""
        replaced = 0

        def change(table: Table) -> None:
            nonlocal replaced
            condition = day_condition(day)
            replaced = len(list(table.scan(row_filter=condition).plan_files()))
            if replaced <= _compacted_files(table, day):
                replaced = 0
                return
            properties = {**committed_position(table).summary(), COMPACTED_PROPERTY: str(day)}
            batches = _file_by_file(table.scan(row_filter=condition))
            transaction = table.transaction()
            transaction.delete(condition, snapshot_properties=properties)
            update = transaction.update_snapshot(snapshot_properties=properties)
            files = itertools.count()  # one numbering for the commit's files: names must differ
            with update.fast_append() as append:
                for rows in _sorted_groups(batches, _target_file_bytes(table)):
                    # pyiceberg's own streaming write (a RecordBatchReader) is for
                    # unpartitioned tables only (apache/iceberg-python#2152): its
                    # per-table writer, as Transaction.append calls it, one group at a time
                    for data_file in _dataframe_to_data_files(
                        table_metadata=transaction.table_metadata,
                        df=rows,
                        io=table.io,
                        write_uuid=append.commit_uuid,
                        counter=files,
                    ):
                        append.append_data_file(data_file)
            written = _summary(transaction.table_metadata.current_snapshot(), "added-data-files")
            transaction.set_properties({f"{COMPACTED_FILES_PREFIX}{day}": written or "1"})
            transaction.commit_transaction()

        self.table.refresh()
        self._change_metadata(change)
        if replaced:
            log.info(
                "compacted %s of %s: %d files into one commit", day, self.table.name(), replaced
            )
        return replaced

    def remove_orphan_files(self, older_than: datetime) -> list[str]:
        """Delete the files under the table's location that its metadata does not reach and
        that were last written before ``older_than``: data files of checkpoints killed before
        their swap or replaced by compaction, manifests and manifest lists of expired
        snapshots, metadata files older than the metadata log. Returns their paths.

        Give a safety age of hours at least: a writer's files exist before its commit makes
        them reachable, and deleting them then would break the commit's snapshot.
        """
        self.table.refresh()
        filesystem, root = pafs.FileSystem.from_uri(self.table.location())
        reachable = _reachable(self.table)
        cutoff = older_than.timestamp()
        orphans = [
            info.path
            for info in filesystem.get_file_info(pafs.FileSelector(root, recursive=True))
            if info.type == pafs.FileType.File
            and info.path not in reachable
            and info.mtime.timestamp() < cutoff
        ]
        for path in orphans:
            filesystem.delete_file(path)
        if orphans:
            log.info("removed %d orphan files of %s", len(orphans), self.table.name())
        return orphans

    def ensure_later_columns(self) -> None:
        """Schema evolution: a table made before a column was added to the schema (the
        merchant snapshot, the worker's checkpoint) gets it as an optional column; its older
        rows read null, its older snapshots keep their own schema."""

        def change(table: Table) -> None:
            known = {f.name for f in table.schema().fields}
            missing = [(name, doc) for name, doc in _LATER_COLUMNS if name not in known]
            if missing:
                log.info("adding columns %s to %s", [n for n, _ in missing], table.name())
                with table.update_schema() as update:
                    for name, doc in missing:
                        update.add_column(name, StringType(), doc)

        self._change_metadata(change)

    def _add_features(self, decisions: Sequence[CommittedDecision]) -> None:
        """Schema evolution: a feature the table does not know becomes an optional column."""
        every = itertools.chain.from_iterable(c.decision.features for c in decisions)
        names = list(dict.fromkeys(every))  # in order of first appearance

        def change(table: Table) -> None:
            known = {f.name for f in _features_type(table.schema()).fields}
            missing = [name for name in names if name not in known]
            if missing:
                log.info("adding feature columns %s to %s", missing, table.name())
                with table.update_schema() as update:
                    for name in missing:
                        update.add_column(("features", name), DoubleType())

        self._change_metadata(change)

    def _change_metadata(self, change: Callable[[Table], None]) -> None:
        """Apply a metadata change, re-reading the table if another writer got there first."""
        for attempt in itertools.count(1):
            try:
                change(self.table)
            except CommitFailedException:
                if attempt == _METADATA_ATTEMPTS:
                    raise
                self.table.refresh()
            else:
                return


def _expirable(table: Table, older_than: datetime, keep: int) -> list[int]:
    """Snapshots before ``older_than`` that are not among the newest ``keep`` of the main line,
    not between the head and the newest snapshot that records the sink's position (expiring
    one there cuts the line the sink resumes along: pyiceberg drops the child's parent link),
    and no branch or tag head."""
    kept = {ref.snapshot_id for ref in table.refs().values()}
    for depth, snapshot in enumerate(ancestors_of(table.current_snapshot(), table.metadata), 1):
        kept.add(snapshot.snapshot_id)
        if depth >= keep and _position_of(snapshot) is not None:
            break
    cutoff = datetime_to_millis(older_than)
    return [
        s.snapshot_id
        for s in table.snapshots()
        if s.timestamp_ms < cutoff and s.snapshot_id not in kept
    ]


def _target_file_bytes(table: Table) -> int:
    return int(
        table.properties.get(
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES,
            TableProperties.WRITE_TARGET_FILE_SIZE_BYTES_DEFAULT,
        )
    )


def _file_by_file(scan: DataScan) -> Iterator[pa.RecordBatch]:
    """The scan's rows, one data file read at a time. (pyiceberg's ``to_arrow_batch_reader``
    submits every file to its thread pool at once and holds what they read: as much memory
    as ``to_arrow``, measured.)"""
    reader = ArrowScan(scan.table_metadata, scan.io, scan.projection(), scan.row_filter)
    for task in scan.plan_files():
        yield from reader.to_record_batches([task])


def _sorted_groups(batches: Iterable[pa.RecordBatch], target_bytes: int) -> Iterator[pa.Table]:
    """The batches' rows in consecutive groups of at least ``target_bytes`` (the last may be
    smaller), each sorted by card and time; the unsorted rows of a group are let go before it
    is handed over, so one group is held at a time."""
    group: list[pa.RecordBatch] = []
    size = 0
    for batch in batches:
        group.append(batch)
        size += batch.nbytes
        if size >= target_bytes:
            rows = pa.Table.from_batches(group).sort_by(ROW_ORDER)
            group, size = [], 0
            yield rows
    if group:
        yield pa.Table.from_batches(group).sort_by(ROW_ORDER)


def _compacted_files(table: Table, day: date) -> int:
    """How many files ``day``'s last compaction wrote; 1 if it never was compacted."""
    return int(table.properties.get(f"{COMPACTED_FILES_PREFIX}{day}", "1"))


def _summary(snapshot: Snapshot | None, key: str) -> str | None:
    return None if snapshot is None or snapshot.summary is None else snapshot.summary.get(key)


def _reachable(table: Table) -> set[str]:
    """Every file the table's metadata references, as filesystem paths (no scheme)."""
    metadata = table.metadata
    uris = {table.metadata_location, *(entry.metadata_file for entry in metadata.metadata_log)}
    uris |= {snapshot.manifest_list for snapshot in metadata.snapshots}
    if metadata.snapshots:  # pyiceberg cannot inspect a table without snapshots
        uris |= set(table.inspect.all_manifests()["path"].to_pylist())
        uris |= set(table.inspect.all_files()["file_path"].to_pylist())
    return {_path_of(uri) for uri in uris}


def _path_of(uri: str) -> str:
    """A URI as pyarrow's filesystems name the file: the path for file://, bucket/key else."""
    parsed = urlparse(uri)
    return parsed.path if parsed.scheme in ("", "file") else parsed.netloc + parsed.path


def day_condition(day: date) -> BooleanExpression:
    """Rows whose event time falls on ``day`` (UTC): exactly one partition of the table."""
    start = datetime.combine(day, time(), UTC)
    end = start + timedelta(days=1)
    return And(
        _compare(GreaterThanOrEqual, "event_time", start.isoformat()),
        _compare(LessThan, "event_time", end.isoformat()),
    )


def _check_readable(table: Table, snapshot_id: int) -> None:
    """Refuse a snapshot that is gone, or that is the half of a compaction without its rows."""
    snapshot = table.snapshot_by_id(snapshot_id)
    if snapshot is None:
        raise AuditSnapshotError(
            f"snapshot {snapshot_id} is not in {table.name()} (expired, or never existed): "
            "ask as of a time or a day tag instead, which do not need old snapshots"
        )
    if _is_compaction_delete(snapshot):
        compacted = snapshot.summary.get(COMPACTED_PROPERTY) if snapshot.summary else None
        raise AuditQueryError(
            f"snapshot {snapshot_id} is the first half of the compaction of "
            f"{compacted}: it lacks that day's rows. Read its parent or its "
            "child, or ask as of a time"
        )


def _compare(predicate: type[LiteralPredicate], column: str, value: str) -> BooleanExpression:
    """``column <op> value`` (pyiceberg's pydantic predicates confuse mypy when positional)."""
    return predicate(term=Reference(column), value=literal(value))


def _features_type(schema: Schema) -> StructType:
    struct = schema.find_type("features")
    assert isinstance(struct, StructType)
    return struct
