"""The metric definitions and collectors, exposed through prometheus-client's own text format
and read back with its parser: nothing running."""

from __future__ import annotations

from pathlib import Path

from app.metrics import BatchHistogram, exposition, new_registry
from app.partition import Pending
from app.worker_metrics import WorkerMetrics
from app.worker_status import WorkerStatus
from features.validation import Reason, Rejection
from models.pipeline import DeadLetter, DecisionRecord, Source, SourceRecord
from tests.support.metrics import by_label, parse, value
from tests.support.settings import isolated_settings


def test_a_batch_histogram_sorts_values_into_cumulative_le_buckets() -> None:
    registry = new_registry()
    histogram = BatchHistogram("latency_seconds", "test", [0.1, 1.0], registry)
    histogram.observe_many([0.05, 0.1, 0.5, 2.0])
    histogram.observe_many([1.0])
    histogram.observe_many([])
    series = parse(exposition(registry).decode())
    buckets = {
        le: value(series, "latency_seconds_bucket", {"le": le}) for le in ("0.1", "1.0", "+Inf")
    }
    assert buckets == {"0.1": 2, "1.0": 4, "+Inf": 5}  # le: at or below the bound
    assert value(series, "latency_seconds_count") == 5
    assert value(series, "latency_seconds_sum") == 3.65


def test_registries_do_not_share_state(tmp_path: Path) -> None:
    settings = isolated_settings("127.0.0.1:1", "u", tmp_path)
    one, two = WorkerMetrics(settings), WorkerMetrics(settings)
    one.checkpoints.inc()
    assert (
        value(parse(exposition(two.registry).decode()), "fraudscore_worker_checkpoints_total") == 0
    )


def _pending(settings_topic: str, outcomes: list[str], reasons: list[str], late: int) -> Pending:
    pending = Pending(records=len(outcomes) + len(reasons))
    pending.result.decisions.extend((b"k", _decision(outcome)) for outcome in outcomes)
    record = SourceRecord(settings_topic, 0, 0, None, b"{}")
    pending.result.dead_letters.extend(DeadLetter(record, Rejection(r, "x")) for r in reasons)
    pending.result.late.extend([record] * late)
    pending.ingest_ms.extend([1_000] * pending.records)
    pending.event_ms.extend([500] * len(outcomes))
    return pending


def _decision(outcome: str) -> DecisionRecord:
    return DecisionRecord(
        transaction_id="tx_1",
        card_id="tok_1",
        amount="1.00",
        currency="USD",
        merchant_id="m_1",
        event_time="2026-01-01T00:00:00.000Z",
        score=0.1,
        decision=outcome,
        reasons=(),
        model_version="m",
        policy_version="p",
        feature_schema_version=3,
        features={},
        merchant_risk_version=None,
        late=False,
        source=Source("tx", 0, 0),
    )


def test_a_committed_checkpoint_counts_what_it_carried(tmp_path: Path) -> None:
    settings = isolated_settings("127.0.0.1:1", "u", tmp_path)
    metrics = WorkerMetrics(settings)
    pendings = [
        _pending(
            settings.input_topic, ["APPROVE", "APPROVE", "DECLINE"], [Reason.MALFORMED_JSON], 1
        ),
        _pending(
            settings.input_topic,
            ["REVIEW"],
            [Reason.MALFORMED_JSON, Reason.DUPLICATE_TRANSACTION],
            0,
        ),
    ]
    metrics.checkpoint_committed(pendings, 7, {"total": 0.02, "commit": 0.01}, decided_ms=1_500)
    series = parse(exposition(metrics.registry).decode())

    topic = {"topic": settings.input_topic}
    assert value(series, "fraudscore_worker_records_in_total", topic) == 7
    assert by_label(series, "fraudscore_worker_decisions_total", "outcome") == {
        "APPROVE": 2, "DECLINE": 1, "REVIEW": 1,
    }  # fmt: skip
    assert by_label(series, "fraudscore_worker_dead_letters_total", "reason") == {
        "malformed_json": 2, "duplicate_transaction": 1,
    }  # fmt: skip
    assert value(series, "fraudscore_worker_late_records_total", topic) == 1
    out = "fraudscore_worker_records_out_total"
    assert value(series, out, {"topic": settings.decisions_topic}) == 4
    assert value(series, out, {"topic": settings.dlq_topic}) == 3
    assert value(series, out, {"topic": settings.changelog_topic}) == 7
    assert value(series, "fraudscore_worker_checkpoints_total") == 1
    assert value(series, "fraudscore_worker_checkpoint_records_sum") == 7
    step = {"step": "total"}
    assert value(series, "fraudscore_worker_checkpoint_duration_seconds_count", step) == 1
    assert value(series, "fraudscore_worker_event_to_decision_seconds_count") == 4
    assert value(series, "fraudscore_worker_event_to_decision_seconds_sum") == 4.0  # 1 s each
    assert value(series, "fraudscore_worker_ingest_to_commit_seconds_count") == 7


def test_failures_and_partition_gauges(tmp_path: Path) -> None:
    settings = isolated_settings("127.0.0.1:1", "u", tmp_path)
    metrics = WorkerMetrics(settings)
    metrics.checkpoint_failed(40, fenced=True)
    metrics.restore_progress(3, 100, 20)
    metrics.partition_observed(3, lag=5, keys=10, state_bytes=4096)
    series = parse(exposition(metrics.registry).decode())
    failures = "fraudscore_worker_checkpoint_failures_total"
    assert by_label(series, failures, "kind") == {"fenced": 1}
    assert (
        value(series, "fraudscore_worker_records_rewound_total", {"topic": settings.input_topic})
        == 40
    )
    lag = {"topic": settings.input_topic, "partition": "3"}
    assert value(series, "fraudscore_worker_consumer_lag", lag) == 5
    assert value(series, "fraudscore_worker_restore_remaining_offsets", {"partition": "3"}) == 20

    metrics.partition_closed(3)
    metrics.partition_closed(4)  # never seen: nothing to remove
    left = {
        name
        for name, labels in parse(exposition(metrics.registry).decode())
        if ("partition", "3") in labels
    }
    counter = "fraudscore_worker_restored_records"  # a counter keeps its total
    assert left == {f"{counter}_total", f"{counter}_created"}


def test_worker_status_is_ready_only_when_loaded_assigned_and_restored(tmp_path: Path) -> None:
    status = WorkerStatus()
    assert status.problems() == [
        "the model is not loaded yet",
        "waiting for the consumer group to assign partitions",
    ]
    status.pipeline_loaded("model m, shadow none, policy p")
    status.restoring([])
    assert status.problems() == ["the consumer group assigned no input partition to this worker"]
    status.rebalancing()
    status.restoring([0, 2])
    assert status.problems() == ["restoring partitions 0, 2 from the changelog"]
    status.restored(0)
    status.restored(2)
    assert status.problems() == []

    registry = new_registry()
    registry.register(status)
    series = parse(exposition(registry).decode())
    assert value(series, "fraudscore_worker_ready") == 1
    assert value(series, "fraudscore_worker_partitions", {"state": "active"}) == 2
    status.released([0, 2])
    assert status.problems() == ["the consumer group assigned no input partition to this worker"]
