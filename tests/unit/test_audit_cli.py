"""``fraudscore audit show`` on a real audit table (SQLite catalog) under tmp_path."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner, Result

from app.audit import open_audit_table
from app.cli import app
from app.process import settings_env
from app.settings import FraudscoreSettings, get_settings
from models.pipeline import DecisionRecord
from sinks.iceberg import AuditRow, CommittedDecision
from tests.support.decisions import decisions_of

FIRST = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECOND = datetime(2026, 3, 1, 12, 5, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[FraudscoreSettings]:
    settings = FraudscoreSettings(var_dir=tmp_path / "var")
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


@pytest.fixture
def decisions() -> list[DecisionRecord]:
    return decisions_of(40, seed=9, partitions=1)


def _audit(settings: FraudscoreSettings, *args: str) -> Result:
    return CliRunner().invoke(app, ["audit", *args], env=settings_env(settings))


def _fill(settings: FraudscoreSettings, decisions: list[DecisionRecord]) -> int:
    """Half the decisions at FIRST, all of them at SECOND; the first snapshot's id."""
    table = open_audit_table(settings)
    read = [CommittedDecision(d, "decisions", 0, i, None) for i, d in enumerate(decisions)]
    for batch, ingested in ((read[:20], FIRST), (read, SECOND)):
        staged = table.stage(batch, ingested)
        assert staged is not None
        assert table.commit(staged) is not None
    return table.table.snapshots()[0].snapshot_id


def test_show_prints_the_record_for_a_person_and_as_json(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    _fill(settings, decisions)
    wanted = decisions[30]
    text = _audit(settings, "show", wanted.transaction_id)
    assert text.exit_code == 0, text.output
    for expected in (wanted.decision, wanted.card_id, wanted.model_version, "amount_avg_24h"):
        assert expected in text.output
    out = _audit(settings, "show", wanted.transaction_id, "--output", "json")
    assert out.exit_code == 0, out.output
    [row] = msgspec.json.decode(out.output, type=list[AuditRow])
    assert row.committed.decision == wanted
    assert (row.checkpoint_id, row.ingested_at) == (2, SECOND)


def test_show_travels_in_time_by_snapshot_and_by_ingest_time(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    first = _fill(settings, decisions)
    early, late = decisions[5].transaction_id, decisions[30].transaction_id
    assert _audit(settings, "show", early, "--snapshot", str(first)).exit_code == 0
    assert _audit(settings, "show", early, "--as-of", "2026-03-01T12:00:00").exit_code == 0
    for args in (["--snapshot", str(first)], ["--as-of", "2026-03-01T13:04:59+01:00"]):
        result = _audit(settings, "show", late, *args)
        assert result.exit_code == 1
        assert "is not in the audit table" in result.output
    assert _audit(settings, "show", late, "--as-of", "2026-03-01T12:05:00Z").exit_code == 0


def test_maintain_compacts_closed_days_and_expires_snapshots(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    _fill(settings, decisions)  # two checkpoints: two files of the same (long closed) day
    day = decisions[0].event_time[:10]
    maintain = ["maintain", "--compact", "--keep", "1", "--min-age-minutes", "0"]
    result = _audit(settings, *maintain, "--orphans-older-than-hours", "1")
    assert result.exit_code == 0, result.output
    assert f"compacted {day}: 2 files" in result.output
    assert "expired 2 snapshot(s)" in result.output  # the appends; compaction came after "now"
    assert "removed 0 orphan file(s)" in result.output  # the replaced files are minutes old
    assert _audit(settings, *maintain, "--orphans-older-than-hours", "0.5").exit_code == 2
    assert _audit(settings, "show", decisions[30].transaction_id).exit_code == 0


def test_show_refuses_what_it_cannot_answer(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    no_table = _audit(settings, "show", "tx_1")
    assert no_table.exit_code == 1
    assert "audit-sink" in no_table.output
    _fill(settings, decisions)
    expired = _audit(settings, "show", decisions[0].transaction_id, "--snapshot", "42")
    assert expired.exit_code == 1
    assert "as of a time" in expired.output
    both = _audit(settings, "show", "tx_1", "--snapshot", "42", "--as-of", "2026-03-01")
    assert both.exit_code == 2
    assert _audit(settings, "show", "tx_1", "--day", "March 1st").exit_code == 2
