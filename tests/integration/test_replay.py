"""``fraudscore replay`` on the real broker: a real worker decides four days of untidy
generated traffic (duplicate deliveries, late arrivals, cards expiring after a day idle), a
real audit sink writes the decisions to an Iceberg table (SQLite catalog in ``tmp_path``), and
the replay of the middle two days must find every decision identical, having stopped reading
before the end of the log; after one audit row is changed by one ulp of its score, it must
name that row and field and exit 1.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import SecretStr
from pyiceberg.expressions import EqualTo, Reference
from pyiceberg.expressions.literals import literal
from typer.testing import CliRunner, Result

from app.audit import load_audit_table
from app.cli import app
from app.process import WorkerProcess, settings_env
from app.settings import FraudscoreSettings
from models.pipeline import DecisionRecord
from sinks.iceberg import rows_of
from sinks.kafka import ensure_topics
from tests.support.audit import start_sink, wait_for_rows
from tests.support.kafka import read_topic, send_input
from tests.support.settings import isolated_settings, migrated_registry
from tests.support.traffic import untidy

pytestmark = pytest.mark.integration

COUNT, CARDS, SEED = 2_000, 150, 61
EVENTS_PER_SECOND = COUNT / (4 * 86_400)  # four days of event time
TTL_MS = 25 * 3_600_000  # the shortest allowed: cards idle for a day expire


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> Iterator[FraudscoreSettings]:
    """A deployment of its own, with a migrated (empty) registry: the worker scores with the
    configured model and policy, which replay finds as ``audit reproduce`` does."""
    settings = isolated_settings(
        kafka_bootstrap,
        unique,
        tmp_path / "var",
        database_url=SecretStr(f"sqlite:///{tmp_path / 'registry.db'}"),
        card_state_ttl_ms=TTL_MS,
        checkpoint_max_records=200,
        fetch_max_records=200,
    )
    with migrated_registry(settings):
        yield settings


async def _decide_and_audit(settings: FraudscoreSettings, tmp_path: Path) -> list[DecisionRecord]:
    await ensure_topics(settings)
    records = untidy(COUNT, cards=CARDS, seed=SEED, events_per_second=EVENTS_PER_SECOND, hold_up=30)
    await send_input(settings, records)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    sink = start_sink(settings, tmp_path / "sink.log", audit_checkpoint_interval_ms=500)
    try:
        await read_topic(settings, settings.decisions_topic, expect=COUNT)
        await wait_for_rows(settings, COUNT, sink)
    finally:
        assert worker.stop() == 0, worker.log_tail()
        assert sink.stop() == 0, sink.log_tail()
    rows = rows_of(load_audit_table(settings).table.scan().to_arrow())
    return [row.committed.decision for row in rows]


def _replay(settings: FraudscoreSettings, *args: str) -> Result:
    env = {**settings_env(settings), "COLUMNS": "200"}
    return CliRunner().invoke(app, ["replay", *args], env=env)


def _middle(decisions: list[DecisionRecord]) -> tuple[str, str, int]:
    """An event-time range over the middle half of the decisions (so cards have history
    before it and transactions follow it), and how many decisions lie in it."""
    times = sorted(d.event_time for d in decisions)
    start, end = times[len(times) // 4], times[3 * len(times) // 4]
    assert any(d.late and start <= d.event_time < end for d in decisions)
    return start, end, sum(start <= t < end for t in times)


def _tamper_score(settings: FraudscoreSettings, transaction_id: str) -> float:
    """Rewrite one audit row with its score one ulp higher; return the new score."""
    table = load_audit_table(settings).table
    condition = EqualTo(term=Reference("transaction_id"), value=literal(transaction_id))
    row = table.scan(row_filter=condition).to_arrow()
    assert row.num_rows == 1
    score = math.nextafter(row.column("score")[0].as_py(), 1.0)
    index = row.schema.get_field_index("score")
    tampered = row.set_column(index, row.schema.field(index), pa.array([score], pa.float64()))
    table.overwrite(tampered, overwrite_filter=condition)
    return score


async def test_replay_finds_every_decision_identical_then_names_a_tampered_row(
    settings: FraudscoreSettings, tmp_path: Path
) -> None:
    decisions = await _decide_and_audit(settings, tmp_path)
    start, end, in_range = _middle(decisions)
    out = tmp_path / "replay"

    result = _replay(settings, "--from", start, "--to", end, "--out", str(out), "-o", "json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    [counts] = report["counts"]
    assert counts == {
        "replayed": in_range,
        "compared": in_range,
        "identical": in_range,
        "different": 0,
        "unproven": 0,
        "missing_in_audit": 0,
        "missing_in_replay": 0,
        "duplicates": 0,
    }
    assert report["differences"] == []
    assert all(p["log_start"] == 0 and not p["history_truncated"] for p in report["partitions"])
    # it stopped once the range was behind it, before the end of some partition's log
    assert any(p["read_to"] < p["log_end"] for p in report["partitions"])
    assert len((out / "decisions.jsonl").read_text().splitlines()) == in_range

    victim = next(d for d in decisions if start <= d.event_time < end)
    score = _tamper_score(settings, victim.transaction_id)
    result = _replay(settings, "--from", start, "--to", end, "--out", str(out), "-o", "json")
    assert result.exit_code == 1, result.output
    report = json.loads(result.stdout)
    assert report["counts"][0]["different"] == 1
    assert report["counts"][0]["identical"] == in_range - 1
    assert report["differences"] == [
        {
            "transaction_id": victim.transaction_id,
            "kind": "different",
            "field": "score",
            "recorded": repr(score),
            "replayed": repr(victim.score),
        }
    ]
    assert "DIFFERENCES" in result.stderr
    text = _replay(settings, "--from", start, "--to", end, "--out", str(out))
    assert text.exit_code == 1
    assert victim.transaction_id in text.stdout
    assert repr(score) in text.stdout


def test_a_range_without_audit_table_is_an_error_that_says_what_to_do(
    settings: FraudscoreSettings,
) -> None:
    later = datetime(2026, 1, 2).isoformat()
    result = _replay(settings, "--from", "2026-01-01", "--to", later)
    assert result.exit_code == 1
    assert "error:" in result.stderr


def _delete_log_start(settings: FraudscoreSettings, partition: int, before: int) -> None:
    """Retention's work, done now: the input partition's records before ``before`` go."""
    admin = AdminClient({"bootstrap.servers": settings.kafka_bootstrap})
    [future] = admin.delete_records(
        [TopicPartition(settings.input_topic, partition, before)]
    ).values()
    assert future.result(timeout=30).low_watermark == before


async def test_a_log_whose_start_was_deleted_reports_history_truncated_not_mismatches(
    settings: FraudscoreSettings, tmp_path: Path
) -> None:
    decisions = await _decide_and_audit(settings, tmp_path)
    start, end, in_range = _middle(decisions)
    on_zero = sorted(d.source.offset for d in decisions if d.source.partition == 0)
    before = on_zero[len(on_zero) // 5]  # the first day or so of partition 0
    early = [d for d in decisions if d.source.partition == 0 and d.source.offset < before]
    assert all(d.event_time < start for d in early)
    _delete_log_start(settings, 0, before)

    result = _replay(settings, "--from", start, "--to", end, "-o", "json")
    report = json.loads(result.stdout)
    [counts] = report["counts"]
    truncated = [p["partition"] for p in report["partitions"] if p["history_truncated"]]
    assert truncated == [0]
    assert counts["different"] == 0  # nothing called a mismatch ...
    assert counts["unproven"] > 0  # ... though cards of partition 0 lost their history
    assert counts["compared"] == counts["identical"] + counts["unproven"] == in_range
    assert {d["kind"] for d in report["differences"]} == {"history truncated"}
    assert result.exit_code == 1, result.output  # unproven is not proven identical
    assert "history truncated" in result.stderr
