"""Audit sinks under test and the check that the audit table equals the decisions topic."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

from app.audit import load_audit_table
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from models.pipeline import encode_decision
from sinks.errors import AuditError
from sinks.iceberg import AuditRow, from_epoch_ms, rows_of
from sinks.kafka import CHECKPOINT_HEADER, PROCESSED_AT_HEADER
from tests.support.kafka import Record, read_partitions

READY = "audit sink ready"


def start_sink(settings: FraudscoreSettings, log_path: Path, **overrides: object) -> WorkerProcess:
    """An ``audit-sink`` process with ``settings`` plus ``overrides`` (e.g. failpoints)."""
    return WorkerProcess(
        settings.model_copy(update=overrides), log_path, ("--log-level", "DEBUG"), "audit-sink"
    )


def table_rows(settings: FraudscoreSettings) -> int:
    """Rows in the audit table now, from its current snapshot's summary (0 if none yet)."""
    try:
        snapshot = load_audit_table(settings).table.current_snapshot()
    except AuditError:  # the sink has not created the table yet
        return 0
    return (
        0
        if snapshot is None or snapshot.summary is None
        else int(snapshot.summary.get("total-records") or 0)
    )


async def wait_for_rows(
    settings: FraudscoreSettings, count: int, *sinks: WorkerProcess, timeout_s: float = 120.0
) -> None:
    deadline = time.monotonic() + timeout_s
    while (rows := table_rows(settings)) < count:
        if time.monotonic() > deadline:
            logs = "\n".join(sink.log_tail() for sink in sinks)
            raise AssertionError(f"the audit table has {rows} rows, not {count}\n{logs}")
        await asyncio.sleep(0.25)


async def assert_audited(settings: FraudscoreSettings, expect: int, log_path: Path) -> None:
    """Run an audit sink over the decisions topic until the table holds ``expect`` rows, stop
    it (SIGTERM), and check the table against the topic."""
    sink = start_sink(settings, log_path, audit_checkpoint_interval_ms=1000)
    try:
        await wait_for_rows(settings, expect, sink)
    finally:
        assert sink.stop() == 0, sink.log_tail()
    assert len(await assert_audit_equals_decisions(settings)) == expect


async def assert_audit_equals_decisions(settings: FraudscoreSettings) -> list[AuditRow]:
    """One row per committed decision record and nothing else: same topic coordinates, the
    decision record byte for byte (re-encoded from the row), the worker's decision time and
    checkpoint; no
    transaction twice."""
    committed = await read_partitions(settings, settings.decisions_topic)
    expected: dict[tuple[int, int], Record] = {
        (p, r.offset): r for p, records in committed.items() for r in records
    }
    rows = rows_of(load_audit_table(settings).table.scan().to_arrow())
    keys = Counter((row.committed.partition, row.committed.offset) for row in rows)
    duplicated = [key for key, n in keys.items() if n > 1]
    assert not duplicated, f"{len(duplicated)} decisions have several rows, e.g. {duplicated[:3]}"
    missing = sorted(set(expected) - set(keys))
    assert not missing, f"{len(missing)} committed decisions have no row, e.g. {missing[:3]}"
    extra = sorted(set(keys) - set(expected))
    assert not extra, f"{len(extra)} rows are no committed decision, e.g. {extra[:3]}"
    for row in rows:
        c = row.committed
        record = expected[(c.partition, c.offset)]
        assert c.topic == settings.decisions_topic
        assert encode_decision(c.decision) == record.value, (
            f"row differs from the record at {c.offset}"
        )
        headers = dict(record.headers)
        header = headers.get(PROCESSED_AT_HEADER)
        assert c.decided_at == (None if header is None else from_epoch_ms(int(header)))
        checkpoint = headers.get(CHECKPOINT_HEADER)
        assert c.worker_checkpoint == (None if checkpoint is None else checkpoint.decode())
    ids = Counter(row.committed.decision.transaction_id for row in rows)
    assert max(ids.values(), default=1) == 1, "a transaction has several rows"
    return rows
