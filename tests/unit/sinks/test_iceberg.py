"""The audit table on a real SQLite catalog in tmp_path: rows, positions, races, evolution."""

from __future__ import annotations

import dataclasses
import itertools
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import urlparse

import msgspec
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import And
from pyiceberg.expressions.parser import parse
from pyiceberg.table.snapshots import Operation, Snapshot, Summary
from pyiceberg.types import DecimalType, DoubleType, TimestamptzType
from pyiceberg.utils.datetime import datetime_to_millis

from models.pipeline import DecisionRecord, encode_decision
from sinks._iceberg_lookup import scan_equal
from sinks.errors import AuditError
from sinks.iceberg import (
    COMPACTED_PROPERTY,
    OFFSETS_PROPERTY,
    AsOf,
    AuditTable,
    CommittedDecision,
    arrow_batch,
    audit_schema,
    committed_position,
    day_ends,
    day_tag,
    from_epoch_ms,
    open_table,
    rows_of,
    table_properties,
)
from tests.support.decisions import decisions_of, with_feature

TABLE = "fraud.decisions"
INGESTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def records() -> list[DecisionRecord]:
    return decisions_of(600, seed=5)


@pytest.fixture(scope="module")
def read(records: list[DecisionRecord]) -> list[CommittedDecision]:
    return _as_read(records)


@pytest.fixture
def table(tmp_path: Path) -> AuditTable:
    return _table(tmp_path)


def _catalog(tmp_path: Path) -> SqlCatalog:
    return SqlCatalog(
        "test",
        uri=f"sqlite:///{tmp_path / 'catalog.db'}",
        warehouse=(tmp_path / "warehouse").as_uri(),
    )


def _table(tmp_path: Path) -> AuditTable:
    """A handle of its own (its own catalog connection), as another process would have."""
    return open_table(_catalog(tmp_path), TABLE, {"commit.manifest-merge.enabled": "true"})


def _as_read(records: list[DecisionRecord], topic: str = "decisions") -> list[CommittedDecision]:
    """The records as if read from one partition per input partition, in order."""
    offsets: Counter[int] = Counter()
    out = []
    for record in records:
        partition = record.source.partition
        out.append(
            CommittedDecision(record, topic, partition, offsets[partition], from_epoch_ms(1000))
        )
        offsets[partition] += 2  # commit markers take offsets too: leave gaps
    return out


def _append(table: AuditTable, decisions: list[CommittedDecision]) -> int:
    staged = table.stage(decisions, INGESTED)
    assert staged is not None
    assert table.commit(staged) is not None
    return staged.rows


def _keyed(decisions: Iterable[CommittedDecision]) -> dict[tuple[int, int], CommittedDecision]:
    """By (partition, offset); a duplicate fails the comparison by shortening the dict."""
    items = list(decisions)
    keyed = {(c.partition, c.offset): c for c in items}
    assert len(keyed) == len(items), "duplicate rows"
    return keyed


def _all_rows(table: AuditTable) -> list[CommittedDecision]:
    table.table.refresh()
    return [row.committed for row in rows_of(table.table.scan().to_arrow())]


def test_shadow_scores_and_late_flags_are_kept(
    table: AuditTable, records: list[DecisionRecord]
) -> None:
    marked = [
        msgspec.structs.replace(
            r, late=i % 5 == 0, shadow_score=i / 1000, shadow_model_version="challenger-2"
        )
        if i % 3 == 0
        else r
        for i, r in enumerate(records[:60])
    ]
    _append(table, _as_read(marked))
    rows = rows_of(table.table.scan().to_arrow())
    assert sorted(encode_decision(r.committed.decision) for r in rows) == sorted(
        encode_decision(r) for r in marked
    )
    assert sum(r.committed.decision.late for r in rows) == 4
    assert sum(r.committed.decision.shadow_score is not None for r in rows) == 20


def test_rows_give_back_the_decision_records_byte_for_byte(
    table: AuditTable, read: list[CommittedDecision]
) -> None:
    assert _append(table, read) == len(read)
    rows = rows_of(table.table.scan().to_arrow())
    assert sorted(encode_decision(r.committed.decision) for r in rows) == sorted(
        encode_decision(c.decision) for c in read
    )
    assert _keyed(r.committed for r in rows) == _keyed(read)
    assert {(r.checkpoint_id, r.ingested_at) for r in rows} == {(1, INGESTED)}
    currencies = {c.decision.currency for c in read}
    assert len(currencies) > 3, currencies  # amounts of several exponents round-trip


def test_columns_are_typed_for_an_audit(table: AuditTable) -> None:
    schema = table.table.schema()
    assert schema.find_type("amount") == DecimalType(18, 4)
    assert schema.find_type("event_time") == TimestamptzType()
    assert not schema.find_field("shadow_score").required
    assert not schema.find_field("decided_at").required
    assert all(not f.required for f in schema.find_field("features").field_type.fields)  # type: ignore[attr-defined]
    assert [str(f.transform) for f in table.table.spec().fields] == ["day"]


def test_a_batch_is_sorted_by_card_then_event_time(read: list[CommittedDecision]) -> None:
    batch = arrow_batch(audit_schema(), read, 1, INGESTED)
    keys = list(zip(batch["card_id"].to_pylist(), batch["event_time"].to_pylist(), strict=True))
    assert keys == sorted(keys)
    assert len({card for card, _ in keys}) > 50


def test_the_position_records_the_next_offset_of_every_partition_ever_written(
    table: AuditTable, read: list[CommittedDecision]
) -> None:
    assert committed_position(table.table).checkpoint_id == 0
    _append(table, [c for c in read if c.partition == 0])
    _append(table, [c for c in read if c.partition == 1])
    position = table.position()
    assert position.checkpoint_id == 2
    assert position.offsets == {
        "decisions": {p: max(c.offset for c in read if c.partition == p) + 1 for p in (0, 1)}
    }
    assert position.snapshot_id == table.table.current_snapshot().snapshot_id  # type: ignore[union-attr]


def test_staging_drops_what_the_table_holds_already(
    table: AuditTable, read: list[CommittedDecision]
) -> None:
    _append(table, read[:200])
    assert table.stage(read[:200], INGESTED) is None
    assert _append(table, read) == len(read) - 200
    assert _keyed(_all_rows(table)) == _keyed(read)


def test_a_stale_writer_loses_the_race_and_then_appends_only_what_is_new(
    tmp_path: Path, read: list[CommittedDecision]
) -> None:
    winner, loser = _table(tmp_path), _table(tmp_path)
    staged = loser.stage(read[:400], INGESTED)  # files written against the empty table
    _append(winner, read[:300])
    assert staged is not None
    assert loser.commit(staged) is None
    assert _append(loser, read[:400]) == 100
    assert _keyed(_all_rows(winner)) == _keyed(read[:400])
    assert winner.position().checkpoint_id == 2


def test_an_existing_table_gets_the_retry_setting_exactly_once_depends_on(
    tmp_path: Path, table: AuditTable
) -> None:
    table.table.transaction().set_properties({"commit.retry.num-retries": "4"}).commit_transaction()
    assert _table(tmp_path).table.properties["commit.retry.num-retries"] == "0"
    with pytest.raises(AuditError, match="duplicate rows"):
        table_properties({"commit.retry.num-retries": "3"})


def test_a_new_feature_becomes_an_optional_column_and_old_snapshots_stay_readable(
    table: AuditTable, read: list[CommittedDecision]
) -> None:
    _append(table, read[:300])
    old_snapshot = table.position().snapshot_id
    newer = _with_merchant_risk(read[300:])
    _append(table, newer)
    features = table.table.schema().find_field("features").field_type
    merchant_risk = features.field_by_name("merchant_risk")  # type: ignore[attr-defined]
    assert merchant_risk.field_type == DoubleType()
    assert not merchant_risk.required

    old = rows_of(table.table.scan(snapshot_id=old_snapshot).to_arrow())
    assert _keyed(r.committed for r in old) == _keyed(read[:300])
    assert (
        "merchant_risk"
        not in table.table.scan(snapshot_id=old_snapshot)
        .to_arrow()
        .schema.field("features")
        .type.names
    )
    now = rows_of(table.table.scan().to_arrow())
    assert _keyed(r.committed for r in now) == _keyed(read[:300] + newer)


def test_a_table_made_before_the_worker_checkpoint_column_gets_it_and_stays_readable(
    tmp_path: Path, table: AuditTable, read: list[CommittedDecision]
) -> None:
    with table.table.update_schema() as update:  # the table as an older sink made it
        update.delete_column("worker_checkpoint_id")
    _append(table, read[:300])
    old_snapshot = table.position().snapshot_id

    reopened = _table(tmp_path)  # what a newer sink does at start
    column = reopened.table.schema().find_field("worker_checkpoint_id")
    assert not column.required
    newer = [dataclasses.replace(c, worker_checkpoint=f"w.1@{c.offset}") for c in read[300:]]
    _append(reopened, newer)

    old = reopened.table.scan(snapshot_id=old_snapshot).to_arrow()
    assert "worker_checkpoint_id" not in old.schema.names  # its own schema
    assert _keyed(r.committed for r in rows_of(old)) == _keyed(read[:300])
    now = _keyed(_all_rows(reopened))
    assert now == _keyed(read[:300] + newer)
    assert {now[(c.partition, c.offset)].worker_checkpoint for c in read[:300]} == {None}


def test_a_stale_writer_that_loses_a_schema_race_filters_against_the_refreshed_table(
    tmp_path: Path, table: AuditTable, read: list[CommittedDecision]
) -> None:
    newer = _with_merchant_risk(read)
    stale = _table(tmp_path)
    _append(table, newer[:300])  # adds the column, then the rows
    assert _append(stale, newer[:400]) == 100  # its schema change fails, it refreshes, filters
    assert _keyed(_all_rows(table)) == _keyed(newer[:400])


def _with_merchant_risk(read: list[CommittedDecision]) -> list[CommittedDecision]:
    """The decisions with a feature the table does not have yet."""
    return [
        dataclasses.replace(c, decision=with_feature(c.decision, "merchant_risk", 0.25))
        for c in read
    ]


def test_find_by_id_with_time_travel_and_as_of(
    table: AuditTable, read: list[CommittedDecision]
) -> None:
    _append(table, read[:300])
    first = table.position().snapshot_id
    later = table.stage(read, INGESTED + timedelta(minutes=1))
    assert later is not None
    assert table.commit(later) is not None
    late = read[400].decision
    event_day = date.fromisoformat(late.event_time[:10])

    [row] = table.find(late.transaction_id)
    assert row.committed == read[400]
    assert [r.committed for r in table.find(late.transaction_id, day=event_day)] == [read[400]]
    assert table.find(late.transaction_id, day=event_day + timedelta(days=1)) == []
    assert table.find(late.transaction_id, AsOf(snapshot_id=first)) == []
    assert table.find(late.transaction_id, AsOf(ingested_by=INGESTED)) == []
    assert (
        len(table.find(late.transaction_id, AsOf(ingested_by=INGESTED + timedelta(minutes=1)))) == 1
    )
    assert table.find("no-such-transaction") == []
    with pytest.raises(AuditError, match="as of a time"):
        table.find(late.transaction_id, AsOf(snapshot_id=12345))


def test_a_cut_line_of_snapshots_is_refused_rather_than_restarted_from_zero(
    table: AuditTable, read: list[CommittedDecision]
) -> None:
    _append(table, read[:100])
    sink_snapshot = table.position().snapshot_id
    assert sink_snapshot is not None
    # a writer that is not the sink appends without offsets; then the sink's snapshot expires
    table.table.append(arrow_batch(table.table.schema(), read[100:110], 0, INGESTED))
    table.table.maintenance.expire_snapshots().by_id(sink_snapshot).commit()
    with pytest.raises(AuditError, match=OFFSETS_PROPERTY):
        table.position()


def test_expiry_keeps_the_newest_snapshots_and_the_one_the_sink_resumes_from(
    tmp_path: Path, table: AuditTable, read: list[CommittedDecision]
) -> None:
    for start in range(0, 300, 50):
        _append(table, read[start : start + 50])
    sink_snapshot = table.position().snapshot_id
    for chunk in (read[300:310], read[310:320]):  # another writer's snapshots, no offsets
        table.table.append(arrow_batch(table.table.schema(), chunk, 0, INGESTED))
    head = table.table.current_snapshot()
    assert head is not None
    assert len(table.table.snapshots()) == 8

    maintenance = _table(tmp_path)
    assert maintenance.expire_snapshots(datetime.now(UTC) - timedelta(hours=1), keep=1) == []
    expired = maintenance.expire_snapshots(datetime.now(UTC) + timedelta(minutes=1), keep=1)
    assert len(expired) == 5  # the line from the head down to the sink's snapshot stays whole
    table.table.refresh()
    assert len(table.table.snapshots()) == 3
    assert head.parent_snapshot_id in {s.snapshot_id for s in table.table.snapshots()}
    assert table.position().snapshot_id == sink_snapshot
    assert table.table.scan().to_arrow().num_rows == 320


def test_a_sink_commit_staged_before_an_expiry_still_lands(
    tmp_path: Path, table: AuditTable, read: list[CommittedDecision]
) -> None:
    sink, maintenance = table, _table(tmp_path)
    for start in range(0, 300, 100):
        _append(sink, read[start : start + 100])
    staged = sink.stage(read, INGESTED)
    assert len(maintenance.expire_snapshots(datetime.now(UTC) + timedelta(minutes=1), 1)) == 2
    assert staged is not None
    assert sink.commit(staged) is not None
    assert _keyed(_all_rows(sink)) == _keyed(read)
    assert len(sink.table.snapshots()) == 2


def _spread(read: list[CommittedDecision], days: int = 3) -> list[CommittedDecision]:
    """The decisions moved to the first ``days`` days of 2026 in turn (times of day kept)."""
    return [
        dataclasses.replace(
            c,
            decision=msgspec.structs.replace(
                c.decision, event_time=f"2026-01-{1 + i % days:02d}{c.decision.event_time[10:]}"
            ),
        )
        for i, c in enumerate(read)
    ]


def test_compaction_rewrites_a_day_into_one_file_and_the_sink_carries_on(
    tmp_path: Path, table: AuditTable, read: list[CommittedDecision]
) -> None:
    assert table.days_to_compact(date(2026, 1, 3)) == []  # empty table
    spread = _spread(read)
    for start in range(0, 500, 100):
        _append(table, spread[start : start + 100])
    before = table.position()
    assert table.days_to_compact(date(2026, 1, 3)) == [date(2026, 1, 1), date(2026, 1, 2)]

    maintenance = _table(tmp_path)
    assert maintenance.compact_day(date(2026, 1, 2)) == 5
    assert maintenance.compact_day(date(2026, 1, 2)) == 0  # one file: nothing to do
    table.table.refresh()
    assert table.days_to_compact(date(2026, 1, 3)) == [date(2026, 1, 1)]
    after = table.position()
    assert (after.checkpoint_id, after.offsets) == (before.checkpoint_id, before.offsets)
    assert _keyed(_all_rows(table)) == _keyed(spread[:500])

    on_day_2 = spread[1].decision.transaction_id
    assert len(table.find(on_day_2, AsOf(snapshot_id=before.snapshot_id))) == 1  # before compaction
    [delete] = [s for s in table.table.snapshots() if s.summary.operation == Operation.DELETE]  # type: ignore[union-attr]
    with pytest.raises(AuditError, match="first half of the compaction of 2026-01-02"):
        table.find(on_day_2, AsOf(snapshot_id=delete.snapshot_id))
    assert _append(table, spread) == len(spread) - 500
    assert _keyed(_all_rows(table)) == _keyed(spread)


def test_a_day_compacted_into_several_files_is_not_compacted_again_until_a_file_comes(
    table: AuditTable, read: list[CommittedDecision]
) -> None:
    """A big day's compaction writes several files (it reads the day in groups of about the
    target file size, and pyiceberg splits at it too), each sorted by card and time: that
    must not make it due again at every run, only once a checkpoint adds rows."""
    with table.table.transaction() as transaction:  # small files, as a big day gets big ones
        transaction.set_properties({"write.target-file-size-bytes": "20000"})
    spread = _spread(read, days=1)
    for start in range(0, 400, 100):
        _append(table, spread[start : start + 100])
    day = date(2026, 1, 1)
    assert table.days_to_compact(date(2026, 1, 2)) == [day]
    before = len(list(table.table.scan().plan_files()))
    assert table.compact_day(day) == before
    paths = [task.file.file_path for task in table.table.scan().plan_files()]
    files = len(paths)
    assert files > 1, "the compaction wrote one file: the test proves nothing"
    for path in paths:
        rows = pq.read_table(urlparse(path).path, columns=["card_id", "event_time"]).to_pylist()
        keys = [(row["card_id"], row["event_time"]) for row in rows]
        assert keys == sorted(keys), path
    assert sum(pq.ParquetFile(urlparse(p).path).metadata.num_rows for p in paths) == 400
    assert table.days_to_compact(date(2026, 1, 2)) == []
    assert table.compact_day(day) == 0
    _append(table, spread[400:450])  # a late decision for the day
    assert table.days_to_compact(date(2026, 1, 2)) == [day]
    assert _keyed(_all_rows(table)) == _keyed(spread[:450])


def test_a_sink_commit_staged_before_a_compaction_is_staged_again_on_it(
    tmp_path: Path, table: AuditTable, read: list[CommittedDecision]
) -> None:
    spread = _spread(read)
    for start in range(0, 300, 100):
        _append(table, spread[start : start + 100])
    staged = table.stage(spread[:400], INGESTED)
    assert _table(tmp_path).compact_day(date(2026, 1, 1)) == 3
    assert staged is not None
    assert table.commit(staged) is None
    assert _append(table, spread[:400]) == 100
    assert _keyed(_all_rows(table)) == _keyed(spread[:400])


def test_orphan_removal_deletes_only_what_no_snapshot_reaches(
    table: AuditTable, read: list[CommittedDecision]
) -> None:
    spread = _spread(read)
    for start in range(0, 300, 100):
        _append(table, spread[start : start + 100])
    killed = table.stage(spread[:400], INGESTED)  # its files are written; it never commits
    assert killed is not None
    assert table.compact_day(date(2026, 1, 1)) == 3  # leaves the replaced data files behind
    assert table.expire_snapshots(datetime.now(UTC) + timedelta(minutes=1), keep=1)

    assert table.remove_orphan_files(datetime.now(UTC) - timedelta(hours=1)) == []  # too young
    removed = table.remove_orphan_files(datetime.now(UTC) + timedelta(seconds=1))
    kinds = Counter(Path(path).suffix for path in removed)
    assert kinds[".parquet"] >= 4, kinds  # the killed checkpoint's and the compacted day's
    assert kinds[".avro"] >= 4, kinds  # manifests and manifest lists of expired snapshots
    assert table.remove_orphan_files(datetime.now(UTC) + timedelta(seconds=1)) == []

    for snapshot in table.table.snapshots():  # every snapshot left reads in full
        table.table.scan(snapshot_id=snapshot.snapshot_id).to_arrow()
    assert _keyed(_all_rows(table)) == _keyed(spread[:300])
    assert _append(table, spread) == len(spread) - 300


def test_a_namespace_created_by_another_process_meanwhile_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _table(tmp_path)  # the namespace exists now
    catalog = _catalog(tmp_path)
    answers = [False]  # pyiceberg's first existence check ran before the other's insert
    real = catalog.namespace_exists
    monkeypatch.setattr(
        catalog, "namespace_exists", lambda ns: answers.pop() if answers else real(ns)
    )
    table = open_table(catalog, TABLE, {})
    assert table.table.name() == ("fraud", "decisions")


def _event_time(c: CommittedDecision) -> datetime:
    return datetime.fromisoformat(c.decision.event_time)


def test_a_cards_history_is_its_rows_in_a_time_range_oldest_first(
    table: AuditTable, read: list[CommittedDecision]
) -> None:
    _append(table, read[:300])
    later = table.stage(read, INGESTED + timedelta(minutes=1))
    assert later is not None
    assert table.commit(later) is not None
    card = Counter(c.decision.card_id for c in read).most_common(1)[0][0]
    mine = sorted(
        (c for c in read if c.decision.card_id == card),
        key=lambda c: (_event_time(c), c.decision.transaction_id),
    )
    assert len(mine) >= 4

    def ids(rows: Iterable[CommittedDecision]) -> list[str]:
        return [c.decision.transaction_id for c in rows]

    assert table.card(card)["transaction_id"].to_pylist() == ids(mine)
    start, end = _event_time(mine[1]), _event_time(mine[-1])
    inside = [c for c in mine if start <= _event_time(c) < end]  # from inclusive, to exclusive
    assert 0 < len(inside) < len(mine)
    assert table.card(card, start, end)["transaction_id"].to_pylist() == ids(inside)
    early = table.card(card, as_of=AsOf(ingested_by=INGESTED))
    assert early["transaction_id"].to_pylist() == ids(c for c in mine if c in read[:300])
    assert table.card("no-such-card").num_rows == 0


def test_day_stats_count_one_event_days_decisions_by_decision_model_and_reason(
    table: AuditTable, read: list[CommittedDecision]
) -> None:
    spread = [
        dataclasses.replace(
            c, decision=msgspec.structs.replace(c.decision, model_version="challenger-2")
        )
        if i % 3 == 0
        else c
        for i, c in enumerate(_spread(read))
    ]
    _append(table, spread)
    on_day = [c.decision for c in spread if c.decision.event_time.startswith("2026-01-02")]
    reasons = Counter(code for d in on_day for code in d.reasons)
    assert reasons, "the sample needs some REVIEW or DECLINE decisions"
    expected = {
        ("all", "decisions"): len(on_day),
        **{("decision", k): n for k, n in Counter(d.decision for d in on_day).items()},
        **{("model_version", k): n for k, n in Counter(d.model_version for d in on_day).items()},
        **{("reason", k): n for k, n in reasons.items()},
    }

    stats = table.day_stats(date(2026, 1, 2)).to_pylist()
    assert {(s["group"], s["value"]): s["count"] for s in stats} == expected
    decisions = [s["count"] for s in stats if s["group"] == "decision"]
    assert decisions == sorted(decisions, reverse=True)
    before = table.day_stats(date(2026, 1, 2), AsOf(ingested_by=INGESTED - timedelta(seconds=1)))
    assert before.to_pylist() == [{"group": "all", "value": "decisions", "count": 0}]


def _snapshot(
    snapshot_id: int, at: datetime, operation: Operation = Operation.APPEND, **properties: str
) -> Snapshot:
    return Snapshot.model_validate(
        {
            "snapshot-id": snapshot_id,
            "parent-snapshot-id": snapshot_id - 1,
            "sequence-number": snapshot_id,
            "timestamp-ms": datetime_to_millis(at),
            "manifest-list": f"snap-{snapshot_id}.avro",
            "summary": Summary(operation, **properties),
            "schema-id": 0,
        }
    )


def test_a_day_tag_goes_to_each_days_last_snapshot_but_never_a_compactions_delete_half() -> None:
    line = [  # a main line, newest first
        _snapshot(6, datetime(2026, 1, 2, 0, 0, 0, 4000, UTC)),  # the compaction's APPEND half
        _snapshot(
            5,
            datetime(2026, 1, 1, 23, 59, 59, 998000, UTC),
            Operation.DELETE,
            **{COMPACTED_PROPERTY: "2025-12-31"},
        ),
        _snapshot(4, datetime(2026, 1, 1, 12, 0, tzinfo=UTC)),
        _snapshot(3, datetime(2026, 1, 1, 0, 0, tzinfo=UTC), Operation.DELETE),  # not compaction
        _snapshot(2, datetime(2025, 12, 31, 23, 0, tzinfo=UTC)),
        _snapshot(1, datetime(2025, 12, 31, 1, 0, tzinfo=UTC)),
    ]
    assert day_ends(line, date(2026, 1, 3), set()) == {
        date(2026, 1, 2): 6,
        date(2026, 1, 1): 6,  # the DELETE half was the day's last: its APPEND half instead
        date(2025, 12, 31): 2,
    }
    assert day_ends(line[2:], date(2026, 1, 2), set()) == {
        date(2026, 1, 1): 4,
        date(2025, 12, 31): 2,
    }
    assert day_ends(line[3:], date(2026, 1, 2), set())[date(2026, 1, 1)] == 3
    assert day_ends(line, date(2026, 1, 2), {day_tag(date(2025, 12, 31))}) == {date(2026, 1, 1): 6}
    assert day_ends(line, date(2025, 12, 31), set()) == {}  # no day closed before it


def test_day_tags_survive_expiry_and_orphan_removal_and_answer_as_of_the_days_end(
    tmp_path: Path, table: AuditTable, read: list[CommittedDecision]
) -> None:
    spread = _spread(read)
    for start in range(0, 300, 100):
        _append(table, spread[start : start + 100])
    today = datetime.now(UTC).date()
    maintenance = _table(tmp_path)
    assert maintenance.tag_closed_days(today) == {}  # today is not closed
    assert maintenance.compact_day(date(2026, 1, 1)) == 3
    tagged = maintenance.tag_closed_days(today + timedelta(days=1))
    head = maintenance.table.current_snapshot()
    assert head is not None
    assert head.summary is not None
    assert head.summary.operation == Operation.APPEND
    assert tagged == {today: head.snapshot_id}
    assert maintenance.day_tags() == {day_tag(today): head.snapshot_id}
    assert maintenance.tag_closed_days(today + timedelta(days=1)) == {}  # tagged once

    table.table.refresh()  # the sink's handle saw the compaction commit: it would restage
    _append(table, spread)
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert head.snapshot_id not in maintenance.expire_snapshots(later, keep=1)
    assert maintenance.remove_orphan_files(later)
    at_end_of_day = table.read(as_of=AsOf(tag=day_tag(today)))
    assert _keyed(r.committed for r in rows_of(at_end_of_day)) == _keyed(spread[:300])
    assert table.read().num_rows == len(spread)
    with pytest.raises(AuditError, match=f"no tag 'day-1999-01-01'.*{day_tag(today)}"):
        table.read(as_of=AsOf(tag="day-1999-01-01"))
    with pytest.raises(AuditError, match="one thing only"):
        AsOf(tag=day_tag(today), ingested_by=INGESTED)


def test_a_transaction_lookup_returns_the_rows_of_the_plain_scan(
    tmp_path: Path, read: list[CommittedDecision]
) -> None:
    """Rows, order and schema, across time travel, a file from before a column was added, a
    compacted day, an id in the table twice and one not there; row groups of 16 rows, so
    that the lookup reads a few of each file's many row groups."""
    properties = {"write.parquet.row-group-limit": "16"}
    older = open_table(_catalog(tmp_path), TABLE, properties)
    with older.table.update_schema() as update:  # the table as an older sink made it
        update.delete_column("worker_checkpoint_id")
    spread = _spread(read)
    _append(older, spread[:300])
    before_column = older.position().snapshot_id
    table = open_table(_catalog(tmp_path), TABLE, properties)  # adds the column
    _append(table, [dataclasses.replace(c, worker_checkpoint=f"w.1@{c.offset}") for c in spread])
    again = msgspec.structs.replace(spread[5].decision, card_id="~a card sorted last")
    twice = [
        dataclasses.replace(spread[5], decision=again, offset=10**6),
        dataclasses.replace(spread[400], offset=10**6 + 1),
    ]
    _append(table, twice)
    before_compaction = table.position().snapshot_id
    # spread[5]'s day: its two rows in one file, in row groups far apart
    assert table.compact_day(date(2026, 1, 3)) > 1
    files = [t.file.file_path for t in table.table.scan().plan_files()]
    assert pq.ParquetFile(urlparse(files[0]).path).num_row_groups > 1

    ids = [c.decision.transaction_id for c in (*twice, spread[100], spread[350])]
    as_ofs = [
        AsOf(),
        AsOf(snapshot_id=before_column),
        AsOf(snapshot_id=before_compaction),
        AsOf(ingested_by=INGESTED),
    ]
    questions = [
        *itertools.product([*ids, "no-such-transaction"], as_ofs, [None]),
        *itertools.product(ids[:1], as_ofs[:1], [date(2026, 1, 3), date(2026, 1, 2)]),
    ]
    for transaction_id, as_of, day in questions:
        condition = parse(f"transaction_id = '{transaction_id}'")
        if day is not None:
            condition = And(condition, parse(f"event_time >= '{day}T00:00:00+00:00'"))
            condition = And(condition, parse(f"event_time < '{day}T23:59:59.999999+00:00'"))
        expected = table.read(condition, as_of)
        assert table.transaction(transaction_id, as_of, day).equals(expected, check_metadata=True)
    assert table.transaction(ids[0]).num_rows == 2
    # a column the older files lack: those are read by pyiceberg's reader, the others not
    checkpoint = f"w.1@{spread[350].offset}"
    scan = table.table.scan(row_filter=parse(f"worker_checkpoint_id = '{checkpoint}'"))
    assert scan_equal(scan, "worker_checkpoint_id", checkpoint).equals(scan.to_arrow())
    assert scan.to_arrow().num_rows > 0
    old = table.transaction(ids[2], AsOf(snapshot_id=before_column))
    assert old.num_rows == 1
    assert "worker_checkpoint_id" not in old.schema.names
    assert table.transaction(ids[2])["worker_checkpoint_id"].to_pylist() == [None]
