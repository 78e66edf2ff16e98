"""The load generator: synthetic card transactions (plus optional malformed records) to Kafka.

:func:`produce` is the reusable coroutine (the CLI, the demo and the integration tests call
it in-process). What it sends is fully determined by ``count``, ``cards``, ``seed`` and
``malformed`` (see :func:`outgoing`); only the pacing depends on the wall clock. Records are
keyed by card token, so each card's transactions stay in one partition, in arrival order.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from random import Random
from typing import NamedTuple

from aiokafka import AIOKafkaProducer

from app.settings import FraudscoreSettings
from models.label import LabelRecord
from models.synthetic import encode_record, generate, malformed_records
from sinks.kafka import bulk_producer, ensure_topics

MAX_BATCH = 1000  # records sent before waiting for their acknowledgements
BATCH_SECONDS = 0.02  # at a given rate, a batch holds this much time's worth of records


class Outgoing(NamedTuple):
    key: bytes
    value: bytes
    scenario: str | None  # the fraud scenario of a valid record, None if genuine
    malformed: bool


@dataclass(frozen=True, slots=True)
class LoadgenResult:
    topic: str
    valid: int  # synthetic transactions sent
    fraud: int  # ... of which labelled fraud
    malformed: int  # malformed records sent
    elapsed_s: float

    @property
    def sent(self) -> int:
        return self.valid + self.malformed

    @property
    def rate(self) -> float:
        """Records per second of wall-clock time."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def outgoing(count: int, *, cards: int, seed: int, malformed: int) -> Iterator[Outgoing]:
    """The records to send, in order: ``count`` generated transactions with ``malformed``
    invalid records at positions drawn from ``seed``."""
    total = count + malformed
    positions = set(Random(f"fraudscore.loadgen/{seed}").sample(range(total), malformed))
    sample = next(iter(generate(1, cards=cards, seed=seed))).record
    bad = iter(malformed_records(malformed, seed=seed, valid_sample=sample))
    valid = generate(count, cards=cards, seed=seed)
    for position in range(total):
        if position in positions:
            yield Outgoing(f"malformed-{position:09d}".encode(), next(bad)[0], None, True)
        else:
            item = next(valid)
            yield Outgoing(item.key, encode_record(item.record), item.scenario, False)


def batch_size(rate: float) -> int:
    """Records per batch: a small slice of a second at ``rate`` (0: as fast as possible)."""
    if rate <= 0:
        return MAX_BATCH
    return max(1, min(MAX_BATCH, round(rate * BATCH_SECONDS)))


async def produce(
    settings: FraudscoreSettings,
    *,
    count: int,
    cards: int,
    seed: int,
    rate: float,
    malformed: int = 0,
    topic: str | None = None,
    on_progress: Callable[[int], None] | None = None,
    before_batch: Callable[[int], Awaitable[None]] | None = None,
) -> LoadgenResult:
    """Send ``count`` transactions (+ ``malformed`` bad records) at ``rate`` records/s.

    ``topic`` defaults to the settings' input topic; the service's topics are created first
    if missing. ``on_progress`` is called with the number of records each batch added;
    ``before_batch`` is awaited with the number sent so far before each batch, and may hold
    the load back (the fault tests feed in steps, one per worker they kill).
    """
    if count < 0 or malformed < 0 or rate < 0:
        raise ValueError("count, malformed and rate must not be negative")
    if topic is not None and topic != settings.input_topic:
        settings = settings.model_copy(update={"input_topic": topic})
    await ensure_topics(settings)
    producer = bulk_producer(settings)
    await producer.start()
    started = time.monotonic()
    try:
        records = outgoing(count, cards=cards, seed=seed, malformed=malformed)
        valid, fraud, bad = await send_paced(
            producer, settings.input_topic, records, rate, on_progress, before_batch=before_batch
        )
    finally:
        await producer.stop()
    return LoadgenResult(settings.input_topic, valid, fraud, bad, time.monotonic() - started)


async def send_paced(
    producer: AIOKafkaProducer,
    topic: str,
    records: Iterator[Outgoing],
    rate: float,
    on_progress: Callable[[int], None] | None,
    *,
    before_batch: Callable[[int], Awaitable[None]] | None = None,
) -> tuple[int, int, int]:
    """Send in batches, waiting for each batch's acks and, at a rate, for its time slot
    (time spent held back by ``before_batch`` does not count: no burst after it)."""
    size, sent, valid, fraud = batch_size(rate), 0, 0, 0
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        if before_batch is not None:
            held = loop.time()
            await before_batch(sent)
            started += loop.time() - held
        if not (batch := list(islice(records, size))):
            break
        acks = [await producer.send(topic, r.value, key=r.key) for r in batch]
        await asyncio.gather(*acks)
        sent += len(batch)
        valid += sum(not r.malformed for r in batch)
        fraud += sum(r.scenario is not None for r in batch)
        if on_progress is not None:
            on_progress(len(batch))
        if rate > 0 and (ahead := started + sent / rate - loop.time()) > 0:
            await asyncio.sleep(ahead)
    return valid, fraud, sent - valid


async def send_labels(
    producer: AIOKafkaProducer, settings: FraudscoreSettings, labels: Iterable[LabelRecord]
) -> None:
    """Send label records to the labels topic (keyed by card token), in the given order."""
    outgoing = (Outgoing(x.key, encode_record(x.wire()), None, False) for x in labels)
    await send_paced(producer, settings.labels_topic, outgoing, 0, None)
