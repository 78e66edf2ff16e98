"""``fraudscore audit txn|card|stats|sql|maintain`` on a real audit table (SQLite catalog)
under tmp_path."""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from app.audit import open_audit_table
from app.cli import app
from app.process import settings_env
from app.settings import FraudscoreSettings, get_settings
from models.pipeline import DecisionRecord
from sinks.iceberg import CommittedDecision
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
    env = {**settings_env(settings), "COLUMNS": "250"}  # a wide terminal: no folded ids
    return CliRunner().invoke(app, ["audit", *args], env=env)


def _fill(settings: FraudscoreSettings, decisions: list[DecisionRecord]) -> int:
    """Half the decisions at FIRST, all of them at SECOND; the first snapshot's id."""
    table = open_audit_table(settings)
    read = [CommittedDecision(d, "decisions", 0, i, None) for i, d in enumerate(decisions)]
    for batch, ingested in ((read[:20], FIRST), (read, SECOND)):
        staged = table.stage(batch, ingested)
        assert staged is not None
        assert table.commit(staged) is not None
    return table.table.snapshots()[0].snapshot_id


def test_txn_prints_the_record_for_a_person_and_as_json_and_csv(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    _fill(settings, decisions)
    wanted = decisions[30]
    text = _audit(settings, "txn", wanted.transaction_id)
    assert text.exit_code == 0, text.output
    for expected in (wanted.decision, wanted.card_id, wanted.model_version, "amount_avg_24h"):
        assert expected in text.output
    out = _audit(settings, "txn", wanted.transaction_id, "--output", "json")
    assert out.exit_code == 0, out.output
    [row] = json.loads(out.stdout)
    assert (row["transaction_id"], row["decision"], row["score"]) == (
        wanted.transaction_id,
        wanted.decision,
        wanted.score,
    )
    assert Decimal(row["amount"]) == Decimal(wanted.amount)  # a string: no digit lost
    assert row["features"] == wanted.features
    assert (row["checkpoint_id"], datetime.fromisoformat(row["ingested_at"])) == (2, SECOND)
    [line] = _csv(_audit(settings, "txn", wanted.transaction_id, "-o", "csv"))
    assert line["reasons"] == ";".join(wanted.reasons)
    assert float(line["features.amount_avg_24h"]) == wanted.features["amount_avg_24h"]
    assert "show" not in _audit(settings, "--help").output.split("Commands")[-1].split()


def _csv(result: Result) -> list[dict[str, str]]:
    assert result.exit_code == 0, result.output
    return list(csv.DictReader(io.StringIO(result.stdout)))


def test_txn_travels_in_time_by_snapshot_tag_and_ingest_time(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    first = _fill(settings, decisions)
    early, late = decisions[5].transaction_id, decisions[30].transaction_id
    assert _audit(settings, "txn", early, "--snapshot", str(first)).exit_code == 0
    assert _audit(settings, "txn", early, "--as-of", "2026-03-01T12:00:00").exit_code == 0
    for args in (["--snapshot", str(first)], ["--as-of", "2026-03-01T13:04:59+01:00"]):
        result = _audit(settings, "txn", late, *args)
        assert result.exit_code == 1
        assert "is not in the audit table" in result.output
    assert _audit(settings, "txn", late, "--as-of", "2026-03-01T12:05:00Z").exit_code == 0
    today = datetime.now(UTC).date()
    open_audit_table(settings).tag_closed_days(today + timedelta(days=1))
    assert _audit(settings, "txn", late, "--tag", f"day-{today}").exit_code == 0
    missing = _audit(settings, "txn", late, "--tag", "day-1999-01-01")
    assert missing.exit_code == 1
    assert f"newest day tags: day-{today}" in missing.output


def test_card_lists_a_cards_decisions_in_a_range_oldest_first(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    _fill(settings, decisions)
    card = Counter(d.card_id for d in decisions).most_common(1)[0][0]
    mine = sorted((d for d in decisions if d.card_id == card), key=lambda d: d.event_time)
    assert len(mine) >= 3
    rows = json.loads(_ok(settings, "card", card, "-o", "json"))
    assert [r["transaction_id"] for r in rows] == [d.transaction_id for d in mine]
    ranged = ["--from", mine[1].event_time, "--to", mine[-1].event_time]
    lines = _csv(_audit(settings, "card", card, *ranged, "-o", "csv"))
    assert [line["transaction_id"] for line in lines] == [d.transaction_id for d in mine[1:-1]]
    text = _ok(settings, "card", card, *ranged)
    assert mine[1].transaction_id in text
    assert mine[0].transaction_id not in text
    assert f"{len(mine) - 2} row(s)" in text
    early = json.loads(_ok(settings, "card", card, "--as-of", FIRST.isoformat(), "-o", "json"))
    assert {r["transaction_id"] for r in early} == {d.transaction_id for d in mine} & {
        d.transaction_id for d in decisions[:20]
    }


def _ok(settings: FraudscoreSettings, *args: str) -> str:
    result = _audit(settings, *args)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_stats_count_a_days_decisions(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    _fill(settings, decisions)
    day = decisions[0].event_time[:10]
    on_day = [d for d in decisions if d.event_time.startswith(day)]
    stats = json.loads(_ok(settings, "stats", "--day", day, "-o", "json"))
    counts = {(s["group"], s["value"]): s["count"] for s in stats}
    assert counts[("all", "decisions")] == len(on_day)
    for outcome, n in Counter(d.decision for d in on_day).items():
        assert counts[("decision", outcome)] == n
    assert counts[("model_version", on_day[0].model_version)] == len(on_day)
    assert f"decisions of {day}" in _ok(settings, "stats", "--day", day)
    assert _audit(settings, "stats").exit_code == 2  # --day is required


def test_sql_runs_duckdb_over_the_rows_and_nothing_else(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    _fill(settings, decisions)
    query = (
        "SELECT decision, count(*) AS n, max(features.amount) AS top FROM decisions "
        "GROUP BY decision ORDER BY decision"
    )
    rows = json.loads(_ok(settings, "sql", query, "-o", "json"))
    by_outcome: dict[str, list[DecisionRecord]] = {}
    for d in decisions:
        by_outcome.setdefault(d.decision, []).append(d)
    assert rows == [
        {"decision": k, "n": len(v), "top": max(d.features["amount"] for d in v)}
        for k, v in sorted(by_outcome.items())
    ]
    as_of = ["--as-of", FIRST.isoformat()]
    assert json.loads(
        _ok(settings, "sql", "SELECT count(*) AS n FROM decisions", *as_of, "-o", "json")
    ) == [{"n": 20}]
    for forbidden in (
        "SELECT * FROM read_csv('/etc/passwd')",
        "COPY decisions TO '/tmp/audit-leak.csv'",
        "SET enable_external_access = true",
    ):
        refused = _audit(settings, "sql", forbidden)
        assert refused.exit_code == 1, forbidden
        assert "DuckDB refused" in refused.output


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
    assert _audit(settings, "txn", decisions[30].transaction_id).exit_code == 0


def test_queries_refuse_what_they_cannot_answer(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    no_table = _audit(settings, "txn", "tx_1")
    assert no_table.exit_code == 1
    assert "audit-sink" in no_table.output
    _fill(settings, decisions)
    expired = _audit(settings, "txn", decisions[0].transaction_id, "--snapshot", "42")
    assert expired.exit_code == 1
    assert "as of a time" in expired.output
    both = _audit(settings, "txn", "tx_1", "--snapshot", "42", "--as-of", "2026-03-01")
    assert both.exit_code == 2
    assert _audit(settings, "card", "c", "--tag", "t", "--as-of", "2026-03-01").exit_code == 2
    assert _audit(settings, "txn", "tx_1", "--day", "March 1st").exit_code == 2
    assert _audit(settings, "card", "c", "--from", "yesterday").exit_code == 2
