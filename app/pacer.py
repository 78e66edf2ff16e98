"""Transactions sent one by one at a steady rate, each stamped just before its send: how the
authorizer and the latency benchmark produce, so that send → decision is what they measure.
(The load generator, ``app/loadgen.py``, sends in batches instead.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from itertools import islice
from typing import NamedTuple

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from models.synthetic import encode_record, generate
from sinks.kafka import produce_waiting

_FLUSH_TIMEOUT_S = 60.0


class Paced(NamedTuple):
    transaction_id: str
    key: bytes
    value: bytes


def paced_records(count: int, cards: int, seed: int, *, skip: int = 0) -> list[Paced]:
    """The load generator's transactions ``skip`` to ``skip + count`` for ``seed`` (so one
    generated stream can be split between the load generator and the authorizer)."""
    generated = islice(generate(skip + count, cards=cards, seed=seed), skip, None)
    return [
        Paced(str(s.record["transaction_id"]), s.key, encode_record(s.record)) for s in generated
    ]


async def send_one_by_one(
    producer: Producer,
    topic: str,
    records: Iterable[Paced],
    rate: float,
    on_send: Callable[[Paced], None],
) -> tuple[float, float]:
    """Send at ``rate`` per second (0: as fast as possible), calling ``on_send`` just before
    each send; (seconds taken, how far behind schedule the sender fell at worst). Returns once
    every record is acknowledged; a failed send raises.

    ``producer`` is a librdkafka one (:func:`sinks.kafka.request_producer`): a send costs a few
    microseconds of this thread, so the sender takes little of the CPU the measured service
    needs (the aiokafka sender took 0.4 of a core at 5,000 per second; docs/BENCHMARKS.md)."""
    records = list(records)
    failures: list[KafkaError] = []

    def delivered(error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            failures.append(error)

    loop_start, i, behind = time.perf_counter(), 0, 0.0
    while i < len(records):
        now = time.perf_counter()
        if rate <= 0:  # as fast as possible
            due = len(records)
        else:
            due = min(len(records), int((now - loop_start) * rate) + 1)
            if due > i:
                behind = max(behind, now - (loop_start + i / rate))
        while i < due:
            record = records[i]
            on_send(record)
            produce_waiting(producer, topic, record.key, record.value, on_delivery=delivered)
            i += 1
        producer.poll(0)  # delivery reports
        _raise_first(failures)
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - loop_start
    left = await asyncio.to_thread(producer.flush, _FLUSH_TIMEOUT_S)
    _raise_first(failures)
    if left:
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, f"{left} sends not acknowledged"))
    return elapsed, behind


def _raise_first(failures: list[KafkaError]) -> None:
    if failures:
        raise KafkaException(failures[0])
