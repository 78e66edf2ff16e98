"""The aggregator's database side on SQLite and PostgreSQL: labels stored once however often
they are written, positions kept, snapshots published when due, equal to the pure recount,
and never rewritten."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.db import migration
from app.db.merchant_risk import (
    Checkpoint,
    Stored,
    load_snapshot,
    positions,
    published_days,
    record_checkpoint,
)
from app.db.tables import Label, MerchantRisk, MerchantRiskSnapshot
from app.merchant_snapshots import DatabaseSnapshots
from features.merchant import LabelSnapshots, MerchantRiskParams, version_name
from features.windows import DAY_MS, HOUR_MS
from models.label import FRAUD, GENUINE, LabelRecord

DAY = 20_454
PARAMS = MerchantRiskParams(delay_days=7)
LATENESS = HOUR_MS
RETENTION = 400
NOW = datetime(2026, 11, 21, tzinfo=UTC)


def _label(i: int, reported_ms: int) -> LabelRecord:
    event = reported_ms - (5 + i % 20) * DAY_MS
    return LabelRecord(
        f"tx{i}", "tok", f"m{i % 3}", FRAUD if i % 4 == 0 else GENUINE, event, reported_ms
    )


def test_checkpoints_store_labels_once_and_publish_due_snapshots(engine: Engine) -> None:
    migration.upgrade(engine)
    first = [_label(i, (DAY - 10) * DAY_MS + i * HOUR_MS) for i in range(100)]  # ~4 days
    published = record_checkpoint(
        engine,
        "labels",
        Checkpoint(first, {0: 100}, NOW),
        PARAMS,
        LATENESS,
        retention_days=RETENTION,
    ).published
    # the first snapshot whose cut-off follows a report, to the last whose cut-off + 1 h passed
    newest = first[-1].reported_at_ms
    expected_days = list(range(DAY - 10 + 2, (newest - LATENESS) // DAY_MS + 2))
    assert published == [version_name(d, 7) for d in expected_days]
    assert published_days(engine, 7) == expected_days

    # the same labels again (a replay after a crash) and a few new ones
    more = [_label(i, (DAY - 5) * DAY_MS + i * HOUR_MS) for i in range(100, 130)]
    record_checkpoint(
        engine,
        "labels",
        Checkpoint([*first, *more], {0: 130, 1: 4}, NOW),
        PARAMS,
        LATENESS,
        retention_days=RETENTION,
    )
    with Session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Label)) == 130
    assert positions(engine, "labels") == {0: 130, 1: 4}

    # every snapshot equals the recount over the labels stored when it was published: the
    # first ones (published from `first`) are not changed by the later labels
    days = published_days(engine, 7)
    assert days[: len(expected_days)] == expected_days
    assert days[-1] > expected_days[-1]
    early, later = (
        LabelSnapshots(x.fact() for x in first),
        LabelSnapshots(x.fact() for x in [*first, *more]),
    )
    for day in days:
        stored = load_snapshot(engine, day, 7)
        assert stored is not None
        recount = early if day in expected_days else later
        assert stored == recount.snapshot_for(day), day
    assert load_snapshot(engine, days[-1] + 1, 7) is None
    assert published_days(engine, 3) == []  # another delay is another series

    # the worker's view: the newest preloaded, older ones loaded when asked, bounded fallback
    book = DatabaseSnapshots(engine, MerchantRiskParams(delay_days=7, max_staleness_days=2), 50)
    newest_day = days[-1]
    for day in (newest_day, days[0]):  # preloaded, then loaded when asked
        found = book.snapshot_for(day)
        assert found is not None
        assert found.day == day
    stale = book.snapshot_for(newest_day + 2)
    assert stale is not None
    assert stale.version == version_name(newest_day, 7)
    assert book.snapshot_for(newest_day + 3) is None
    assert book.snapshot_for(days[0] - 1) is None


def test_snapshots_out_of_retention_are_deleted_by_label_time(engine: Engine) -> None:
    migration.upgrade(engine)
    retention = 31
    early = [_label(i, (DAY - 60) * DAY_MS + i * HOUR_MS) for i in range(48)]  # 2 days
    first = record_checkpoint(
        engine,
        "labels",
        Checkpoint(early, {0: 48}, NOW),
        PARAMS,
        LATENESS,
        retention_days=retention,
    )
    assert first.published
    assert first.pruned == 0  # all within 31 days of the newest
    before = published_days(engine, 7)

    # labels 40 days later: every day up to them is published, and the days more than 31
    # before the newest snapshot go, with their merchant rows
    late = [_label(i, (DAY - 20) * DAY_MS + i * HOUR_MS) for i in range(48, 60)]
    second = record_checkpoint(
        engine, "labels", Checkpoint(late, {0: 60}, NOW), PARAMS, LATENESS, retention_days=retention
    )
    days = published_days(engine, 7)
    newest = days[-1]
    assert days == list(range(newest - retention, newest + 1))
    assert second.pruned == len(before) + len(second.published) - len(days) > 0
    with Session(engine) as session:
        snapshot_ids = set(session.scalars(select(MerchantRiskSnapshot.id)))
        risk_ids = set(session.scalars(select(MerchantRisk.snapshot_id)))
        assert risk_ids <= snapshot_ids  # no merchant rows of deleted snapshots
        assert session.scalar(select(func.count()).select_from(Label)) == 60  # labels stay
    assert load_snapshot(engine, before[0], 7) is None

    # only a checkpoint that publishes deletes (retention runs on label time, not the clock)
    nothing = record_checkpoint(
        engine, "labels", Checkpoint([], {0: 60}, NOW), PARAMS, LATENESS, retention_days=1
    )
    assert nothing == Stored([], 0)
    assert published_days(engine, 7) == days
