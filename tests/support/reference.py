"""The crash-free reference: the pure pipeline replayed over each input partition's log.

Each partition's committed input records run through the pipeline the worker builds,
sequentially, with an in-memory store. The worker's decisions must equal the reference byte
for byte (features, score, decision, reasons), which a duplicate-id check alone would not
show; its state must equal the reference's final states.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from app.settings import FraudscoreSettings
from app.worker import build_pipeline
from features.card import CardState
from features.stream import MemoryCardStore, PartitionState
from models.pipeline import SourceRecord, encode_decision
from tests.support.kafka import Record, read_partitions


@dataclass
class Reference:
    decisions: dict[str, bytes] = field(default_factory=dict)  # transaction_id → decision
    dead_letters: list[tuple[int, int]] = field(default_factory=list)  # (partition, offset)
    late: list[tuple[int, int]] = field(default_factory=list)  # copied to the late topic
    states: dict[int, dict[str, CardState]] = field(default_factory=dict)  # partition → cards
    partitions: dict[int, PartitionState | None] = field(default_factory=dict)  # its own state
    input_ends: dict[int, int] = field(default_factory=dict)  # partition → next input offset


def reference_of(settings: FraudscoreSettings, logs: dict[int, list[Record]]) -> Reference:
    """The reference over the given input records (partition → records in offset order)."""
    pipeline = build_pipeline(settings)
    ref = Reference()
    for partition, records in logs.items():
        batch = [SourceRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
        store = MemoryCardStore()
        result = pipeline.run(batch, store)
        for _, decision in result.decisions:
            ref.decisions[decision.transaction_id] = encode_decision(decision)
        ref.dead_letters.extend((d.record.partition, d.record.offset) for d in result.dead_letters)
        ref.late.extend((record.partition, record.offset) for record in result.late)
        ref.states[partition] = store.states
        ref.partitions[partition] = store.partition
        if records:
            ref.input_ends[partition] = records[-1].offset + 1
    return ref


async def reference(settings: FraudscoreSettings) -> Reference:
    """The reference over everything on the input topic now."""
    return reference_of(settings, await read_partitions(settings, settings.input_topic))
