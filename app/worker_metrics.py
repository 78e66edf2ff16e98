"""The worker's Prometheus metrics (every one is described in docs/OBSERVABILITY.md).

Nothing here is called per record. The record counters and the two latency histograms are
updated once per *committed* checkpoint, from what the checkpoint carried
(:meth:`WorkerMetrics.checkpoint_committed`), so they count each input record once, as the
decisions topic does, even when a failed checkpoint makes the worker process records again
(those are counted in ``fraudscore_worker_records_rewound_total``). Consumer lag and state
size are refreshed by the worker's loop about once a second (:meth:`partition_observed`);
restore progress by the restoring threads, once per changelog batch.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

from app.metrics import LATENCY_BUCKETS, BatchHistogram, new_registry
from app.partition import Pending
from app.settings import FraudscoreSettings
from models.pipeline import Pipeline
from models.policy import Outcome
from sinks.rocksdb import StoreMemory
from sinks.rocksdb_memory import StateMemory

_STEP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 50000)


class WorkerMetrics:
    def __init__(
        self, settings: FraudscoreSettings, registry: CollectorRegistry | None = None
    ) -> None:
        self.registry = r = registry if registry is not None else new_registry()
        self._settings = settings
        self.records_in = Counter(
            "fraudscore_worker_records_in",
            "Input records carried by committed checkpoints (decided or dead-lettered)",
            ["topic"],
            registry=r,
        )
        self.records_out = Counter(
            "fraudscore_worker_records_out",
            "Records written by committed checkpoints, per output topic (decisions, dead "
            "letters, late copies, changelog)",
            ["topic"],
            registry=r,
        )
        self.dead_letters = Counter(
            "fraudscore_worker_dead_letters",
            "Input records dead-lettered by committed checkpoints, by reason",
            ["topic", "reason"],
            registry=r,
        )
        self.late = Counter(
            "fraudscore_worker_late_records",
            "Late transactions (older than the watermark minus the allowed lateness) decided "
            "by committed checkpoints",
            ["topic"],
            registry=r,
        )
        self.decisions = Counter(
            "fraudscore_worker_decisions",
            "Decisions published by committed checkpoints, by outcome",
            ["outcome"],
            registry=r,
        )
        self.rewound = Counter(
            "fraudscore_worker_records_rewound",
            "Input records processed by a checkpoint that failed; they are processed again",
            ["topic"],
            registry=r,
        )
        self.checkpoints = Counter(
            "fraudscore_worker_checkpoints", "Committed checkpoints", registry=r
        )
        self.checkpoint_failures = Counter(
            "fraudscore_worker_checkpoint_failures",
            "Checkpoints that did not commit: fenced (the partitions moved to another worker) "
            "or error (aborted, rewound and retried)",
            ["kind"],
            registry=r,
        )
        self.client_restarts = Counter(
            "fraudscore_worker_client_restarts",
            "Times the Kafka clients were broken beyond repair and started afresh",
            registry=r,
        )
        self.checkpoint_seconds = Histogram(
            "fraudscore_worker_checkpoint_duration_seconds",
            "Duration of the steps of committed checkpoints (wait, outputs, offsets, commit, "
            "store, total; app/checkpoint_stats.py)",
            ["step"],
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.checkpoint_records = Histogram(
            "fraudscore_worker_checkpoint_records",
            "Input records carried per committed checkpoint",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.checkpoint_changes = Histogram(
            "fraudscore_worker_checkpoint_changes",
            "Changelog records (changed card states) written per committed checkpoint",
            buckets=_SIZE_BUCKETS,
            registry=r,
        )
        self.last_checkpoint = Gauge(
            "fraudscore_worker_last_checkpoint_timestamp_seconds",
            "Wall-clock time of the last committed checkpoint (Unix seconds)",
            registry=r,
        )
        self.event_to_decision = BatchHistogram(
            "fraudscore_worker_event_to_decision_seconds",
            "From a transaction's event time to its decision being produced (the decision's "
            "processed_at header), per decision",
            LATENCY_BUCKETS,
            registry=r,
        )
        self.ingest_to_commit = BatchHistogram(
            "fraudscore_worker_ingest_to_commit_seconds",
            "From an input record's Kafka timestamp to the commit of the checkpoint that "
            "carries its decision or dead letter, per input record",
            LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "fraudscore_worker_consumer_lag",
            "Input records after the partition's committed offset (high watermark minus "
            "committed offset, refreshed about once a second)",
            ["topic", "partition"],
            registry=r,
        )
        self.state_keys = Gauge(
            "fraudscore_worker_state_keys",
            "Keys in the partition's committed RocksDB state (RocksDB's estimate)",
            ["partition"],
            registry=r,
        )
        self.state_bytes = Gauge(
            "fraudscore_worker_state_bytes",
            "Bytes of the partition's RocksDB state: table files plus memtables",
            ["partition"],
            registry=r,
        )
        self.state_memory = Gauge(
            "fraudscore_worker_state_memory_bytes",
            "Memory RocksDB holds for the worker's partition stores, by its own account: "
            "budget_used (the shared block cache's usage, memtables' reservations included), "
            "memtables, table_readers (index and filter blocks outside the cache)",
            ["kind"],
            registry=r,
        )
        self.state_memory_budget = Gauge(
            "fraudscore_worker_state_memory_budget_bytes",
            "The memory budget of the worker's RocksDB stores (FRAUDSCORE_STATE_MEMORY_MB)",
            registry=r,
        )
        self.restore_remaining = Gauge(
            "fraudscore_worker_restore_remaining_offsets",
            "Changelog offsets a restoring partition still has to read (0 once restored)",
            ["partition"],
            registry=r,
        )
        self.restored = Counter(
            "fraudscore_worker_restored_records",
            "Changelog records read into RocksDB while restoring",
            ["partition"],
            registry=r,
        )
        self.pipeline = Info(
            "fraudscore_worker_pipeline",
            "The model, shadow model and policy versions the worker scores with",
            registry=r,
        )
        self._initialise(settings)

    def _initialise(self, settings: FraudscoreSettings) -> None:
        """Export zeros for the series that exist from the start."""
        self.records_in.labels(settings.input_topic)
        self.late.labels(settings.input_topic)
        self.rewound.labels(settings.input_topic)
        for topic in (settings.decisions_topic, settings.dlq_topic, settings.late_topic):
            self.records_out.labels(topic)
        self.records_out.labels(settings.changelog_topic)
        for outcome in Outcome:
            self.decisions.labels(outcome.value)
        for kind in ("fenced", "error"):
            self.checkpoint_failures.labels(kind)

    # --- checkpoints --------------------------------------------------------------------
    def checkpoint_committed(
        self,
        pendings: Sequence[Pending],
        changes: int,
        durations: dict[str, float],
        decided_ms: int,
    ) -> None:
        """A checkpoint carrying ``pendings`` and ``changes`` changelog records committed;
        its decisions were stamped ``decided_ms`` (their processed_at header)."""
        committed_at = time.time()
        settings = self._settings
        records = sum(p.records for p in pendings)
        self.records_in.labels(settings.input_topic).inc(records)
        outcomes = collections.Counter(
            [decision.decision for p in pendings for _, decision in p.result.decisions]
        )
        for outcome, count in outcomes.items():
            self.decisions.labels(outcome).inc(count)
        reasons = collections.Counter(
            letter.rejection.reason for p in pendings for letter in p.result.dead_letters
        )
        for reason, count in reasons.items():
            self.dead_letters.labels(settings.dlq_topic, reason).inc(count)
        late = sum(len(p.result.late) for p in pendings)
        self.late.labels(settings.input_topic).inc(late)
        self.records_out.labels(settings.decisions_topic).inc(outcomes.total())
        self.records_out.labels(settings.dlq_topic).inc(reasons.total())
        self.records_out.labels(settings.late_topic).inc(late)
        self.records_out.labels(settings.changelog_topic).inc(changes)
        for step, seconds in durations.items():
            self.checkpoint_seconds.labels(step).observe(seconds)
        self.checkpoint_records.observe(records)
        self.checkpoint_changes.observe(changes)
        self.checkpoints.inc()
        self.last_checkpoint.set(committed_at)
        event_ms = _joined([p.event_ms for p in pendings])
        self.event_to_decision.observe_many((decided_ms - event_ms) / 1000)
        ingest_ms = _joined([p.ingest_ms for p in pendings])
        self.ingest_to_commit.observe_many((committed_at * 1000 - ingest_ms) / 1000)

    def checkpoint_failed(self, records: int, *, fenced: bool) -> None:
        self.checkpoint_failures.labels("fenced" if fenced else "error").inc()
        self.rewound.labels(self._settings.input_topic).inc(records)

    # --- partitions ---------------------------------------------------------------------
    def restore_progress(self, partition: int, restored: int, remaining: int) -> None:
        """``restored`` more changelog records are in RocksDB, ``remaining`` offsets to go."""
        self.restored.labels(str(partition)).inc(restored)
        self.restore_remaining.labels(str(partition)).set(remaining)

    def partition_observed(
        self, partition: int, lag: int | None, keys: int, state_bytes: int
    ) -> None:
        label = str(partition)
        if lag is not None:
            self.lag.labels(self._settings.input_topic, label).set(lag)
        self.state_keys.labels(label).set(keys)
        self.state_bytes.labels(label).set(state_bytes)

    def state_memory_observed(self, budget: StateMemory, stores: StoreMemory) -> None:
        """RocksDB's memory over all the worker's stores (refreshed with the partitions)."""
        self.state_memory_budget.set(budget.capacity)
        self.state_memory.labels("budget_used").set(budget.usage())
        for kind, value in stores._asdict().items():
            self.state_memory.labels(kind).set(value)

    def partition_closed(self, partition: int) -> None:
        """Stop exporting the partition's gauges: another worker owns it now."""
        label = str(partition)
        self.lag.remove(self._settings.input_topic, label)  # absent series: nothing happens
        for gauge in (self.state_keys, self.state_bytes, self.restore_remaining):
            gauge.remove(label)

    def pipeline_in_use(self, pipeline: Pipeline) -> None:
        shadow = "none" if pipeline.shadow is None else pipeline.shadow.version
        self.pipeline.info(
            {
                "model_version": pipeline.scorer.version,
                "shadow_model_version": shadow,
                "policy_version": pipeline.policy.version,
            }
        )


def _joined(lists: list[list[int]]) -> npt.NDArray[np.int64]:
    """Epoch milliseconds of several lists as one array (numpy: ~10 ns a value)."""
    return np.concatenate([np.asarray(values, dtype=np.int64) for values in lists])
