"""``fraudscore generate``: weeks of synthetic card traffic and its late labels, for training.

:func:`generate_dataset` runs :func:`models.synthetic.simulate` and the
:class:`models.synthetic.Labeller` once and writes both to a Parquet dataset directory
(:mod:`sinks.parquet`) and, if asked, to Kafka: the transactions to the input topic keyed by
card token (what the worker scores), the labels to the labels topic keyed by card token, in
the order they are reported. Everything written is determined by the arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

from aiokafka import AIOKafkaProducer

from app.loadgen import Outgoing, send_labels, send_paced
from app.settings import FraudscoreSettings
from models.label import FRAUD
from models.synthetic import Labeller, encode_record, simulate
from sinks.kafka import bulk_producer, ensure_topics
from sinks.parquet import ParquetDatasetSink

CHUNK = 5_000  # records generated, written and sent at a time


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    cards: int
    days: float
    seed: int
    fraud_rate: float
    per_card_daily: float


@dataclass(frozen=True, slots=True)
class GenerateResult:
    directory: Path
    transactions: int
    fraud: int
    labels: int
    fraud_labels: int
    topics: tuple[str, str] | None  # (transactions, labels) when sent to Kafka


async def generate_dataset(
    settings: FraudscoreSettings,
    spec: DatasetSpec,
    out: Path,
    *,
    kafka: bool,
    on_progress: Callable[[int], None] | None = None,
) -> GenerateResult:
    """Write the dataset to ``out`` (and Kafka); ``on_progress`` gets the newest event time."""
    producer: AIOKafkaProducer | None = None
    if kafka:
        await ensure_topics(settings)
        producer = bulk_producer(settings)
        await producer.start()
    try:
        return await _write(settings, spec, out, producer, on_progress)
    finally:
        if producer is not None:
            await producer.stop()


async def _write(
    settings: FraudscoreSettings,
    spec: DatasetSpec,
    out: Path,
    producer: AIOKafkaProducer | None,
    on_progress: Callable[[int], None] | None,
) -> GenerateResult:
    items = simulate(
        cards=spec.cards,
        days=spec.days,
        seed=spec.seed,
        fraud_rate=spec.fraud_rate,
        per_card_daily=spec.per_card_daily,
    )
    labeller = Labeller(spec.seed)
    transactions = fraud = 0
    with ParquetDatasetSink(out) as sink:
        while chunk := list(islice(items, CHUNK)):
            sink.write(chunk, (label for label in map(labeller, chunk) if label is not None))
            if producer is not None:
                records = (
                    Outgoing(i.key, encode_record(i.record), i.scenario, False) for i in chunk
                )
                await send_paced(producer, settings.input_topic, records, 0, None)
            transactions += len(chunk)
            fraud += sum(item.scenario is not None for item in chunk)
            if on_progress is not None:
                on_progress(max(item.event_time_ms for item in chunk))
    labels = sink.labels
    if producer is not None:
        await send_labels(producer, settings, labels)
    return GenerateResult(
        directory=out,
        transactions=transactions,
        fraud=fraud,
        labels=len(labels),
        fraud_labels=sum(label.label == FRAUD for label in labels),
        topics=(settings.input_topic, settings.labels_topic) if producer is not None else None,
    )
