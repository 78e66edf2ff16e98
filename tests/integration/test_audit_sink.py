"""The audit sink process on the real broker and a real Iceberg table (SQLite catalog).

The table must equal the decisions topic as a ``read_committed`` consumer sees it, one row for
one record: a worker's real output, and a publisher's output that also holds aborted
transactions, a new feature half-way (schema evolution) and several checkpoints.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from app.audit import load_audit_table
from app.loadgen import produce
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from sinks.iceberg import from_epoch_ms
from sinks.kafka import client_options
from tests.support.audit import assert_audit_equals_decisions, start_sink, wait_for_rows
from tests.support.decisions import decisions_of, publish, with_feature
from tests.support.kafka import read_topic
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> FraudscoreSettings:
    return isolated_settings(kafka_bootstrap, unique, tmp_path / "var")


async def test_a_workers_decisions_land_once_each_in_the_final_commit_on_sigterm(
    settings: FraudscoreSettings, tmp_path: Path
) -> None:
    count = 2500
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    # no checkpoint is due by time or count: only SIGTERM's final commit writes the table
    sink = start_sink(
        settings,
        tmp_path / "sink.log",
        audit_checkpoint_interval_ms=600_000,
        audit_checkpoint_max_records=1_000_000,
    )
    try:
        await produce(settings, count=count, cards=300, seed=31, rate=0, malformed=20)
        await read_topic(settings, settings.decisions_topic, expect=count)
        assert await sink.wait_for_log(f"{count} decisions pending"), sink.log_tail()
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert sink.stop() == 0, sink.log_tail()
    rows = await assert_audit_equals_decisions(settings)
    assert len(rows) == count
    assert {row.checkpoint_id for row in rows} == {1}
    assert len(load_audit_table(settings).table.snapshots()) == 1
    # each row names the worker's checkpoint (Kafka transaction) that committed it
    for row in rows:
        assert row.committed.decided_at is not None
        producer, _, ms = (row.committed.worker_checkpoint or "").rpartition("@")
        assert producer.startswith(settings.transactional_id(""))
        assert from_epoch_ms(int(ms)) == row.committed.decided_at


async def test_aborted_decisions_stay_out_and_a_new_feature_becomes_a_column(
    settings: FraudscoreSettings, tmp_path: Path
) -> None:
    decisions = decisions_of(3000, seed=41)
    sink = start_sink(
        settings,
        tmp_path / "sink.log",
        audit_checkpoint_interval_ms=300,
        audit_checkpoint_max_records=700,
    )
    try:
        aborted = await publish(settings, decisions[:2000])
        await wait_for_rows(settings, 2000, sink)
        before = load_audit_table(settings).position()
        newer = [with_feature(d, "merchant_risk", d.score / 2) for d in decisions[2000:]]
        aborted += await publish(settings, newer)
        await wait_for_rows(settings, 3000, sink)
    finally:
        assert sink.stop() == 0, sink.log_tail()
    assert aborted > 0
    uncommitted = await read_topic(
        settings,
        settings.decisions_topic,
        expect=3000 + aborted,
        isolation_level="read_uncommitted",
    )
    assert len(uncommitted) == 3000 + aborted  # the aborted copies are really in the log
    rows = await assert_audit_equals_decisions(settings)
    assert len({row.checkpoint_id for row in rows}) >= 4

    table = load_audit_table(settings).table
    features = table.schema().find_field("features").field_type
    assert not features.field_by_name("merchant_risk").required  # type: ignore[attr-defined]
    old = table.scan(snapshot_id=before.snapshot_id).to_arrow()
    assert old.num_rows == 2000
    assert "merchant_risk" not in old.schema.field("features").type.names
    risk = [r.committed.decision.features.get("merchant_risk") for r in rows]
    assert risk.count(None) == 2000

    position = load_audit_table(settings).position()
    assert await _monitoring_offsets(settings) == position.offsets[settings.decisions_topic]


async def _monitoring_offsets(settings: FraudscoreSettings) -> dict[int, int]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.audit_group_id)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items()}


async def test_maintenance_inside_the_sink_keeps_one_row_each_and_few_snapshots(
    settings: FraudscoreSettings, tmp_path: Path
) -> None:
    """Maintenance after every checkpoint (expiry keeping 3, and every second compaction of
    the closed day all the decisions fall on) while decisions flow: the snapshots stay within
    the kept ones, one checkpoint and one compaction's two, and the table still holds exactly
    one row per decision."""
    keep = 3
    decisions = decisions_of(1500, seed=43)
    sink = start_sink(
        settings,
        tmp_path / "sink.log",
        audit_checkpoint_interval_ms=100,
        audit_checkpoint_max_records=100,
        audit_maintenance_interval_s=0.001,  # due at every turn of the loop
        audit_compaction_interval_s=1,
        audit_maintenance_keep=keep,
        audit_maintenance_min_age_s=0,
    )
    most = 0

    async def watch(sent: int) -> None:
        nonlocal most
        if sent:  # the table exists once the sink is ready
            snapshots = len(load_audit_table(settings).table.snapshots())
            most = max(most, snapshots)

    try:
        assert await sink.wait_for_log("audit sink ready"), sink.log_tail()
        await publish(settings, decisions, pause_s=0.05, before_transaction=watch)
        await wait_for_rows(settings, len(decisions), sink)
    finally:
        assert sink.stop() == 0, sink.log_tail()
    table = load_audit_table(settings)
    log = sink.log_path.read_text()
    assert table.position().checkpoint_id > 2 * (keep + 3), "too few checkpoints to tell"
    # after a run: the kept ones; then a checkpoint, then the next run's compaction (a DELETE
    # and an APPEND snapshot) before its expiry
    assert 0 < most <= keep + 3, most
    assert "audit maintenance in" in log, sink.log_tail()
    assert "compacted 2026-01-01" in log, sink.log_tail()
    assert len(await assert_audit_equals_decisions(settings)) == len(decisions)
