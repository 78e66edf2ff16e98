"""Synthetic audit rows built directly as Arrow, for the audit benchmarks' big tables.

Building rows through :class:`sinks.iceberg.CommittedDecision` costs Python work per row;
for tens of millions of rows the benchmark writes Arrow columns made with numpy instead, in
the table's own schema, sorted as the sink sorts them, and appends them through the sink's own
write path (:meth:`sinks.iceberg.AuditTable.stage_batch` and ``commit``). Transaction ids are
random (no order to prune on); cards are drawn uniformly from ``cards`` tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pyarrow as pa

from sinks.iceberg import AMOUNT_TYPE


@dataclass(frozen=True, slots=True)
class RowSpec:
    """One batch: ``count`` rows with event times in [``start_us``, ``end_us``)."""

    count: int
    start_us: int
    end_us: int
    first_offset: int
    checkpoint_id: int
    ingested_at: datetime


def card_token(number: int) -> str:
    return f"tok_{number:08d}"


def synthetic_rows(
    schema: pa.Schema, spec: RowSpec, cards: int, rng: np.random.Generator
) -> pa.Table:
    """``spec.count`` rows in ``schema`` (the table's Arrow schema), sorted by card and time;
    optional columns not named here are null."""
    n = spec.count
    card_numbers = rng.integers(0, cards, n)
    times = rng.integers(spec.start_us, spec.end_us, n)
    order = np.lexsort((times, card_numbers))
    card_numbers, times = card_numbers[order], times[order]
    ids = rng.integers(0, 2**63 - 1, n, dtype=np.int64)
    offsets = np.arange(spec.first_offset, spec.first_offset + n, dtype=np.int64)
    features = schema.field("features").type
    columns: dict[str, pa.Array] = {
        "transaction_id": pa.array([f"tx_{i:016x}" for i in ids.tolist()], pa.string()),
        "card_id": pa.array([card_token(c) for c in card_numbers.tolist()], pa.string()),
        "amount": pa.array((rng.integers(100, 100_000_00, n) / 100).astype(str), pa.string()).cast(
            pa.decimal128(AMOUNT_TYPE.precision, AMOUNT_TYPE.scale)
        ),
        "currency": _repeat("EUR", n),
        "merchant_id": pa.array([f"m_{m:05d}" for m in rng.integers(0, 20_000, n).tolist()]),
        "event_time": pa.array(times, pa.timestamp("us", tz="UTC")),
        "score": pa.array(rng.random(n)),
        "shadow_score": pa.nulls(n, pa.float64()),
        "shadow_model_version": pa.nulls(n, pa.string()),
        "decision": _repeat("APPROVE", n),
        "reasons": pa.array([[] for _ in range(n)], pa.list_(pa.string())),
        "model_version": _repeat("bench-1", n),
        "policy_version": _repeat("default-1", n),
        "feature_schema_version": pa.array(np.full(n, 1, np.int32)),
        "features": pa.StructArray.from_arrays(
            [pa.array(rng.random(n)) for _ in features], fields=list(features)
        ),
        "merchant_risk_version": pa.nulls(n, pa.string()),
        "late": pa.array(np.zeros(n, bool)),
        "source_topic": _repeat("bench.tx", n),
        "source_partition": pa.array(np.zeros(n, np.int32)),
        "source_offset": pa.array(offsets),
        "decision_topic": _repeat("bench.decisions", n),
        "decision_partition": pa.array(np.zeros(n, np.int32)),
        "decision_offset": pa.array(offsets),
        "decided_at": pa.array(times, pa.timestamp("us", tz="UTC")),
        "checkpoint_id": pa.array(np.full(n, spec.checkpoint_id, np.int64)),
        "ingested_at": pa.array([spec.ingested_at] * n, pa.timestamp("us", tz="UTC")),
    }
    arrays = [columns[f.name] if f.name in columns else pa.nulls(n, f.type) for f in schema]
    return pa.Table.from_arrays(
        [a.cast(f.type) for a, f in zip(arrays, schema, strict=True)], schema=schema
    )


def _repeat(value: str, n: int) -> pa.Array:
    return pa.DictionaryArray.from_arrays(np.zeros(n, np.int32), [value]).cast(pa.string())
