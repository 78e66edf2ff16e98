"""Labels → merchant snapshot → decisions, on the real broker and a real registry database.

The aggregator process (``fraudscore merchant-risk``) reads the labels topic, stores every
label once, dead-letters the bad ones with their original bytes (card numbers masked), reason
and source offset, and publishes the day's snapshot; a worker process then decides that day's
transactions with their merchants' risk and names the snapshot, byte for byte what the pure
pipeline gives over the same input and the published snapshots (a replay).
"""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from app.db import migration
from app.db.engine import create_db_engine
from app.db.merchant_risk import load_all, published_days
from app.db.tables import Label
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from app.worker import build_pipeline
from features.merchant import MERCHANT_FEATURE_NAMES, MemorySnapshots, version_name
from features.stream import MemoryCardStore
from features.windows import DAY_MS
from models.label import FRAUD, GENUINE, LabelRecord
from models.pipeline import SourceRecord, encode_decision, format_event_time
from tests.support.kafka import read_partitions, read_topic, send_input
from tests.support.labels import send_labels, until
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration

DAY = 20_454  # 2026-01-01: the day the transactions happen
RISKY, CLEAN, UNKNOWN = "m_risky", "m_clean", "m_unknown"
PAN = "4111111111111111"


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> FraudscoreSettings:
    return isolated_settings(
        kafka_bootstrap, unique, tmp_path / "var", merchant_risk_checkpoint_interval_ms=200
    )


@pytest.fixture
def engine(settings: FraudscoreSettings) -> Engine:
    engine = create_db_engine(settings)
    migration.upgrade(engine)
    return engine


def _labels() -> list[LabelRecord]:
    """Labels of transactions 8-20 days before DAY, reported before DAY's cut-off (the start
    of DAY - 1), and one reported after it that makes the aggregator publish DAY's snapshot
    (lateness 1 h) but is not in it."""
    labels = []
    for i in range(30):
        merchant = RISKY if i % 2 else CLEAN
        fraud = merchant == RISKY and i % 3 != 0
        event = (DAY - 8 - i % 12) * DAY_MS + i * 60_000
        reported = (DAY - 3) * DAY_MS + i * 1000
        labels.append(
            LabelRecord(
                f"old_{i}", f"tok_{i % 5}", merchant, FRAUD if fraud else GENUINE, event, reported
            )
        )
    late = LabelRecord("late_0", "tok_0", RISKY, FRAUD, (DAY - 9) * DAY_MS, (DAY - 1) * DAY_MS)
    trigger = LabelRecord(
        "now_0", "tok_1", CLEAN, GENUINE, (DAY - 2) * DAY_MS, (DAY - 1) * DAY_MS + 2 * 3_600_000
    )
    return [*labels, late, trigger]


def _bad_labels() -> list[tuple[bytes, bytes, str]]:
    """(key, value, reason) of records the aggregator must dead-letter."""
    good = _labels()[0].wire()
    with_pan = {**good, "card_id": PAN}
    return [
        (b"tok_0", b"{not json", "malformed_json"),
        (PAN.encode(), msgspec.json.encode(with_pan), "pan_detected"),
        (b"tok_other", msgspec.json.encode(good), "key_mismatch"),
        (b"tok_0", msgspec.json.encode({**good, "label": "maybe"}), "invalid_field"),
    ]


def _transactions() -> list[tuple[bytes, bytes]]:
    out = []
    for i in range(60):
        card = f"tok_{i % 7}"
        value = {
            "transaction_id": f"today_{i}",
            "card_id": card,
            "amount": f"{10 + i}.00",
            "currency": "USD",
            "merchant_id": (RISKY, CLEAN, UNKNOWN)[i % 3],
            "merchant_category": "5411",
            "event_time": format_event_time(DAY * DAY_MS + 9 * 3_600_000 + i * 60_000),
        }
        out.append((card.encode(), msgspec.json.encode(value)))
    return out


def _stored_labels(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Label)) or 0)


async def test_labels_become_a_snapshot_that_decisions_use_and_name(
    settings: FraudscoreSettings, engine: Engine, tmp_path: Path
) -> None:
    labels = _labels()
    good = [(label.key, msgspec.json.encode(label.wire())) for label in labels]
    bad = _bad_labels()
    # every good label twice (an upstream retry): stored once
    await send_labels(settings, [*good[:10], *[(k, v) for k, v, _ in bad], *good, *good[10:]])

    aggregator = WorkerProcess(
        settings, tmp_path / "aggregator.log", ["--log-level", "DEBUG"], command="merchant-risk"
    )
    try:
        published = await until(lambda: DAY in published_days(engine, 7))
        dead = await read_topic(settings, settings.labels_dlq_topic, expect=len(bad))
    finally:
        assert aggregator.stop() == 0, aggregator.log_tail()
    assert published, aggregator.log_tail()
    assert _stored_labels(engine) == len(labels)

    # dead letters: original bytes with card numbers masked, reason and source offset
    inputs = await read_partitions(settings, settings.labels_topic)
    assert sorted(dict(r.headers)["fraudscore.reason"].decode() for r in dead) == sorted(
        reason for _, _, reason in bad
    )
    for record in dead:
        headers = dict(record.headers)
        source = inputs[int(headers["fraudscore.source.partition"])]
        original = next(r for r in source if r.offset == int(headers["fraudscore.source.offset"]))
        assert PAN.encode() not in record.value + (record.key or b"")
        if PAN.encode() not in original.value:
            assert record.value == original.value

    # the snapshot: labels known by the start of DAY - 1, not the late one
    snapshots = {s.day: s for s in load_all(engine, 7)}
    today = snapshots[DAY]
    assert today.version == version_name(DAY, 7) == "2026-01-01/d7"
    risky_fraud = sum(1 for x in labels[:30] if x.merchant_id == RISKY and x.label == FRAUD)
    assert today.counts[RISKY][4:] == (15, risky_fraud)
    assert today.counts[CLEAN][4:] == (15, 0)

    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        await send_input(settings, _transactions())
        decisions = await read_topic(settings, settings.decisions_topic, expect=60)
    finally:
        assert worker.stop() == 0, worker.log_tail()
    decided = {msgspec.json.decode(r.value)["transaction_id"]: r for r in decisions}
    assert len(decided) == len(decisions) == 60
    for record in decisions:
        value = msgspec.json.decode(record.value)
        assert value["merchant_risk_version"] == "2026-01-01/d7"
        share = value["features"]["merchant_fraud_share_30d"]
        expected = {RISKY: risky_fraud / 15, CLEAN: 0.0, UNKNOWN: 0.0}[value["merchant_id"]]
        assert share == expected
        assert set(MERCHANT_FEATURE_NAMES) <= set(value["features"])

    # a replay: the pure pipeline over the same input with the published snapshots
    pipeline = build_pipeline(
        settings, MemorySnapshots(snapshots.values(), settings.merchant_params)
    )
    for partition, records in (await read_partitions(settings, settings.input_topic)).items():
        batch = [SourceRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
        for _, decision in pipeline.run(batch, MemoryCardStore()).decisions:
            assert decided[decision.transaction_id].value == encode_decision(decision), partition
