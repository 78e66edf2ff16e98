"""Transactions sent one by one at a steady rate, each stamped just before its send: how the
authorizer and the latency benchmark produce, so that send → decision is what they measure.
(The load generator, ``app/loadgen.py``, sends in batches instead.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from itertools import islice
from typing import NamedTuple

from aiokafka import AIOKafkaProducer

from models.synthetic import encode_record, generate


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
    producer: AIOKafkaProducer,
    topic: str,
    records: Iterable[Paced],
    rate: float,
    on_send: Callable[[Paced], None],
) -> tuple[float, float]:
    """Send at ``rate`` per second (0: as fast as possible), calling ``on_send`` just before
    each send; (seconds taken, how far behind schedule the sender fell at worst). A failed
    send raises."""
    records = list(records)
    loop_start, i, behind = time.perf_counter(), 0, 0.0
    acks: list[asyncio.Future[object]] = []
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
            acks.append(await producer.send(topic, record.value, key=record.key))
            i += 1
        acks = _unacknowledged(acks)
        await asyncio.sleep(0.001)
    elapsed = time.perf_counter() - loop_start
    await asyncio.gather(*acks)
    return elapsed, behind


def _unacknowledged(acks: list[asyncio.Future[object]]) -> list[asyncio.Future[object]]:
    """The sends still waiting for their ack; a failed send raises here."""
    for ack in acks:
        if ack.done():
            ack.result()
    return [ack for ack in acks if not ack.done()]
