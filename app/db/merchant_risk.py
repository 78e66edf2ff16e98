"""Labels, the aggregator's position and merchant-risk snapshots in the registry database.

Writes (the aggregator, :mod:`app.merchant_risk`) go through :func:`record_checkpoint`, one
database transaction per aggregator checkpoint: the labels read (each stored once: a label
read again after a crash meets the unique constraint and is skipped), the position reached
in every labels partition, every snapshot that became due (written once: a version that
exists is never rewritten, so what a worker has used stays what it was), and the deletion of
the snapshots that fell out of retention: those of days more than ``retention_days`` before
the newest published day (of any delay series). Retention counts from the newest snapshot,
i.e. from label time, not from the clock, so a stopped aggregator deletes nothing and a
replay of the labels deletes the same. Labels are never deleted (they are the training set).

Reads (workers, :mod:`app.merchant_snapshots`; tests) are :func:`published_days` and
:func:`load_snapshot`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.db.tables import Label, LabelPosition, MerchantRisk, MerchantRiskSnapshot
from features.merchant import (
    LabelFact,
    MerchantCounts,
    MerchantRiskParams,
    Snapshot,
    day_of,
    label_cutoff_ms,
    snapshot,
    version_name,
    window_end_ms,
    window_start_ms,
)
from models.label import FRAUD, LabelRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_datetime(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def to_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """What one aggregator checkpoint stores."""

    labels: Sequence[LabelRecord]
    positions: dict[int, int]  # labels partition -> next offset
    received_at: datetime


def positions(engine: Engine, topic: str) -> dict[int, int]:
    """The committed next offset of every labels partition the aggregator has read."""
    with Session(engine) as session:
        rows = session.execute(
            select(LabelPosition.partition, LabelPosition.next_offset).where(
                LabelPosition.topic == topic
            )
        )
        return {partition: offset for partition, offset in rows}


@dataclass(frozen=True, slots=True)
class Stored:
    """What :func:`record_checkpoint` changed besides the labels and positions."""

    published: list[str]  # versions of the snapshots published, oldest first
    pruned: int  # snapshots deleted because they fell out of retention


def record_checkpoint(
    engine: Engine,
    topic: str,
    checkpoint: Checkpoint,
    params: MerchantRiskParams,
    lateness_ms: int,
    *,
    retention_days: int,
) -> Stored:
    """Store one checkpoint, publish the snapshots due, delete those out of retention."""
    with Session(engine) as session, session.begin():
        _insert_labels(session, checkpoint.labels, checkpoint.received_at)
        for partition, offset in checkpoint.positions.items():
            session.merge(LabelPosition(topic=topic, partition=partition, next_offset=offset))
        session.flush()
        published = [
            _publish(session, day, params, checkpoint.received_at).version
            for day in _due_days(session, params, lateness_ms)
        ]
        return Stored(published, _prune(session, retention_days) if published else 0)


def _prune(session: Session, retention_days: int) -> int:
    """Delete the snapshots of days more than ``retention_days`` before the newest one."""
    newest = session.scalar(select(func.max(MerchantRiskSnapshot.day)))
    if newest is None:
        return 0
    old = select(MerchantRiskSnapshot.id).where(MerchantRiskSnapshot.day < newest - retention_days)
    ids = list(session.scalars(old))
    if ids:
        session.execute(delete(MerchantRisk).where(MerchantRisk.snapshot_id.in_(ids)))
        session.execute(delete(MerchantRiskSnapshot).where(MerchantRiskSnapshot.id.in_(ids)))
    return len(ids)


def _insert_labels(session: Session, labels: Sequence[LabelRecord], now: datetime) -> None:
    if not labels:
        return
    dialect = sqlite if session.get_bind().dialect.name == "sqlite" else postgresql
    rows = [
        {
            "transaction_id": label.transaction_id,
            "card_id": label.card_id,
            "merchant_id": label.merchant_id,
            "label": label.label,
            "event_time": to_datetime(label.event_time_ms),
            "reported_at": to_datetime(label.reported_at_ms),
            "received_at": now,
        }
        for label in labels
    ]
    statement = dialect.insert(Label).on_conflict_do_nothing(
        index_elements=["transaction_id", "label", "reported_at"]
    )
    session.execute(statement, rows)


def _due_days(session: Session, params: MerchantRiskParams, lateness_ms: int) -> range:
    """The days whose snapshots are due and not yet published: snapshot d once a label
    reported at ``lateness`` after its cut-off (the start of day d - 1) has been received;
    from the first day whose cut-off any label precedes, or the day after the newest
    published snapshot."""
    first, newest = session.execute(
        select(func.min(Label.reported_at), func.max(Label.reported_at))
    ).one()
    if first is None:
        return range(0)
    last_due = day_of(to_ms(newest) - lateness_ms) + 1
    published = session.scalar(
        select(func.max(MerchantRiskSnapshot.day)).where(
            MerchantRiskSnapshot.delay_days == params.delay_days
        )
    )
    start = day_of(to_ms(first)) + 2 if published is None else published + 1
    return range(start, last_due + 1)


def labels_for(session: Session, day: int, params: MerchantRiskParams) -> list[LabelFact]:
    """The stored labels snapshot ``day`` may count: reported before its cut-off, about
    transactions within its longest window."""
    rows = session.execute(
        select(
            Label.transaction_id,
            Label.merchant_id,
            Label.label,
            Label.event_time,
            Label.reported_at,
        ).where(
            Label.event_time >= to_datetime(window_start_ms(day, params)),
            Label.event_time < to_datetime(window_end_ms(day, params)),
            Label.reported_at < to_datetime(label_cutoff_ms(day)),
        )
    )
    return [
        LabelFact(txn, merchant, label == FRAUD, to_ms(event_time), to_ms(reported_at))
        for txn, merchant, label, event_time, reported_at in rows
    ]


def _publish(session: Session, day: int, params: MerchantRiskParams, now: datetime) -> Snapshot:
    made = snapshot(labels_for(session, day, params), day, params)
    row = MerchantRiskSnapshot(
        version=made.version,
        day=day,
        delay_days=params.delay_days,
        labels_reported_before=to_datetime(label_cutoff_ms(day)),
        window_end=to_datetime(window_end_ms(day, params)),
        merchants=len(made.counts),
        created_at=now,
    )
    session.add(row)
    session.flush()
    session.add_all(
        MerchantRisk(
            snapshot_id=row.id,
            merchant_id=merchant_id,
            labelled_1d=n1,
            fraud_1d=f1,
            labelled_7d=n7,
            fraud_7d=f7,
            labelled_30d=n30,
            fraud_30d=f30,
        )
        for merchant_id, (n1, f1, n7, f7, n30, f30) in made.counts.items()
    )
    return made


def published_days(engine: Engine, delay_days: int) -> list[int]:
    """The days with a published snapshot for ``delay_days``, oldest first."""
    with Session(engine) as session:
        return list(
            session.scalars(
                select(MerchantRiskSnapshot.day)
                .where(MerchantRiskSnapshot.delay_days == delay_days)
                .order_by(MerchantRiskSnapshot.day)
            )
        )


def load_snapshot(engine: Engine, day: int, delay_days: int) -> Snapshot | None:
    """The published snapshot of ``day``, None if there is none."""
    with Session(engine) as session:
        snapshot_id = session.scalar(
            select(MerchantRiskSnapshot.id).where(
                MerchantRiskSnapshot.version == version_name(day, delay_days)
            )
        )
        if snapshot_id is None:
            return None
        rows = session.execute(
            select(
                MerchantRisk.merchant_id,
                MerchantRisk.labelled_1d,
                MerchantRisk.fraud_1d,
                MerchantRisk.labelled_7d,
                MerchantRisk.fraud_7d,
                MerchantRisk.labelled_30d,
                MerchantRisk.fraud_30d,
            ).where(MerchantRisk.snapshot_id == snapshot_id)
        )
        counts = {m: (n1, f1, n7, f7, n30, f30) for m, n1, f1, n7, f7, n30, f30 in rows}
    return Snapshot(day, delay_days, counts)


def load_all(engine: Engine, delay_days: int) -> Iterable[Snapshot]:
    """Every published snapshot for ``delay_days`` (replays and tests)."""
    for day in published_days(engine, delay_days):
        loaded = load_snapshot(engine, day, delay_days)
        if loaded is not None:
            yield loaded


@dataclass(frozen=True, slots=True)
class MerchantRiskRow:
    """One merchant's counts in the newest published snapshot (None: no labelled transaction
    of it in that snapshot's windows)."""

    snapshot_version: str
    counts: MerchantCounts | None


def newest_merchant_risk(
    session: Session, merchant_id: str, delay_days: int
) -> MerchantRiskRow | None:
    """The merchant's counts in the newest snapshot published for ``delay_days``; None if no
    snapshot is published yet."""
    newest = session.execute(
        select(MerchantRiskSnapshot.id, MerchantRiskSnapshot.version)
        .where(MerchantRiskSnapshot.delay_days == delay_days)
        .order_by(MerchantRiskSnapshot.day.desc())
        .limit(1)
    ).first()
    if newest is None:
        return None
    row = session.scalar(
        select(MerchantRisk).where(
            MerchantRisk.snapshot_id == newest.id, MerchantRisk.merchant_id == merchant_id
        )
    )
    if row is None:
        return MerchantRiskRow(newest.version, None)
    return MerchantRiskRow(
        newest.version,
        (
            row.labelled_1d,
            row.fraud_1d,
            row.labelled_7d,
            row.fraud_7d,
            row.labelled_30d,
            row.fraud_30d,
        ),
    )
