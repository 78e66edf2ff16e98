"""The ceiling: a transactional pass-through with no processing, with each Kafka client.

Run: ``.venv/bin/python -m app.bench.passthrough [--events N] [--rounds R] [--bootstrap HOST:PORT]``

``--events`` load-generator transactions (50,000 cards, seed 3) are produced to one input topic
first. Then each contender, in its own child process and its own consumer group, copies the
input to its own output topic with the worker's checkpoint shape: ``read_committed`` batch
fetches; every ``checkpoint_interval_ms`` (10 ms) or ``checkpoint_max_records`` (2,000), one
transaction with the fetched records and the consumed offsets. Rounds alternate the
contenders. Measured in the child, from its first fetched record until its last transaction
committed: events/s, and the child's CPU (user + system, all threads) per event.

- ``aiokafka``: one transactional producer per input partition (static id per partition, as
  aiokafka without KIP-447 needs), one transaction per partition per checkpoint, committed
  concurrently; ``send`` per record.
- ``confluent-kafka``: one transactional producer for the process (KIP-447 group-metadata
  fencing), one transaction per checkpoint for all partitions; ``produce`` per record.

The machine is shared and noisy: compare the contenders within a round, and read the ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from confluent_kafka import Consumer, Producer
from confluent_kafka import TopicPartition as CkTopicPartition
from rich.console import Console
from rich.table import Table

from app.bench._common import Outgoing as BenchRecord
from app.bench._common import bulk_produce, fresh_settings, load1, machine_info, partitioner
from app.loadgen import outgoing
from app.settings import FraudscoreSettings
from sinks.kafka import client_options, confluent_options, ensure_topics

console = Console()
CONTENDERS = ("aiokafka", "confluent-kafka")
_SEED = 3
_CARDS = 50_000


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- the contenders (run in a child process each) ---------------------------------------------


async def _aiokafka(settings: FraudscoreSettings, events: int) -> tuple[float, float]:
    group, topic = settings.group_id, settings.input_topic
    out, interval_s = settings.decisions_topic, settings.checkpoint_interval_ms / 1000
    consumer = AIOKafkaConsumer(
        topic,
        **client_options(settings),
        group_id=group,
        enable_auto_commit=False,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=2 * 1024 * 1024,
    )
    producers = {
        p: AIOKafkaProducer(
            **client_options(settings),
            transactional_id=f"{group}.{p}",
            retry_backoff_ms=10,
        )
        for p in range(settings.partitions)
    }
    for producer in producers.values():
        await producer.start()
    await consumer.start()
    pending: dict[int, list[ConsumerRecord[bytes, bytes]]] = {p: [] for p in producers}
    opened: dict[int, float] = {}
    next_offset: dict[int, int] = {}

    async def checkpoint(p: int) -> int:
        records, pending[p] = pending[p], []
        producer = producers[p]
        await producer.begin_transaction()
        for record in records:
            await producer.send(out, value=record.value, key=record.key, partition=p)
        await producer.send_offsets_to_transaction(
            {TopicPartition(topic, p): next_offset[p]}, group
        )
        await producer.commit_transaction()
        return len(records)

    done, started = 0, None
    try:
        while done < events:
            batches = await consumer.getmany(
                timeout_ms=settings.checkpoint_interval_ms, max_records=settings.fetch_max_records
            )
            if batches and started is None:
                started = (time.perf_counter(), _cpu())
            now = time.monotonic()
            for tp, records in batches.items():
                if not pending[tp.partition]:
                    opened[tp.partition] = now
                pending[tp.partition].extend(records)
                next_offset[tp.partition] = records[-1].offset + 1
            due = [
                p
                for p, records in pending.items()
                if records
                and (
                    len(records) >= settings.checkpoint_max_records or now - opened[p] >= interval_s
                )
            ]
            done += sum(await asyncio.gather(*(checkpoint(p) for p in due)))
    finally:
        await consumer.stop()
        for producer in producers.values():
            await producer.stop()
    assert started is not None
    return time.perf_counter() - started[0], _cpu() - started[1]


def _confluent(settings: FraudscoreSettings, events: int) -> tuple[float, float]:
    topic, out = settings.input_topic, settings.decisions_topic
    interval_s = settings.checkpoint_interval_ms / 1000
    consumer = Consumer(
        {
            **confluent_options(settings),
            "group.id": settings.group_id,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "auto.offset.reset": "earliest",
        }
    )
    producer = Producer(
        {
            **confluent_options(settings),
            "transactional.id": f"{settings.group_id}.worker",
            "linger.ms": 5,
        }
    )
    producer.init_transactions()
    consumer.subscribe([topic])
    done = pending = 0
    opened = 0.0
    offsets: dict[int, int] = {}
    started = None
    try:
        while done < events:
            messages = consumer.consume(settings.fetch_max_records, interval_s)
            if messages and started is None:
                started = (time.perf_counter(), _cpu())
            for message in messages:
                if message.error() is not None:
                    continue
                if pending == 0:
                    producer.begin_transaction()
                    opened = time.monotonic()
                producer.produce(out, message.value(), message.key(), message.partition() or 0)
                offsets[message.partition() or 0] = (message.offset() or 0) + 1
                pending += 1
            producer.poll(0)
            if pending and (
                pending >= settings.checkpoint_max_records
                or time.monotonic() - opened >= interval_s
            ):
                producer.send_offsets_to_transaction(
                    [CkTopicPartition(topic, p, o) for p, o in offsets.items()],
                    consumer.consumer_group_metadata(),
                )
                producer.commit_transaction()
                done, pending = done + pending, 0
    finally:
        consumer.close()
    assert started is not None
    return time.perf_counter() - started[0], _cpu() - started[1]


def _child(contender: str, settings: FraudscoreSettings, events: int) -> None:
    if contender == "aiokafka":
        seconds, cpu = asyncio.run(_aiokafka(settings, events))
    else:
        seconds, cpu = _confluent(settings, events)
    print(json.dumps({"seconds": seconds, "cpu": cpu}))


# --- the parent ------------------------------------------------------------------------------


def run_child(contender: str, settings: FraudscoreSettings, events: int) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUDSCORE_")}
    env["FRAUDSCORE_SETTINGS_JSON"] = settings.model_dump_json()
    output = subprocess.run(  # noqa: S603 - this module, our arguments
        [
            sys.executable,
            "-m",
            "app.bench.passthrough",
            "--child",
            contender,
            "--events",
            str(events),
        ],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(output.strip().splitlines()[-1]))


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m app.bench.passthrough",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the settings')")
    parser.add_argument("--child", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        settings = FraudscoreSettings.model_validate_json(os.environ["FRAUDSCORE_SETTINGS_JSON"])
        _child(args.child, settings, args.events)
        return
    base = FraudscoreSettings()
    if args.bootstrap:
        base = base.model_copy(update={"kafka_bootstrap": args.bootstrap})
    root = Path(base.var_dir, "bench", f"passthrough-{uuid.uuid4().hex[:6]}").resolve()
    for key, value in machine_info(base.kafka_version):
        console.print(f"{key}: {value}")
    source = fresh_settings(base, "input", root)
    asyncio.run(ensure_topics(source))
    part = partitioner(source.partitions)
    records = [
        BenchRecord(r.key, r.value, part(r.key))
        for r in outgoing(args.events, cards=_CARDS, seed=_SEED, malformed=0)
    ]
    asyncio.run(bulk_produce(source, source.input_topic, records))
    table = Table(title=f"Transactional pass-through, {args.events:,} events, 4 partitions")
    for column in ("round", "client", "events/s", "CPU µs/event", "load 1m"):
        table.add_column(column, justify="left" if column == "client" else "right")
    results: dict[str, list[tuple[float, float]]] = {c: [] for c in CONTENDERS}
    for round_ in range(1, args.rounds + 1):
        for contender in CONTENDERS:
            settings = fresh_settings(base, contender, root, input_topic=source.input_topic)
            asyncio.run(ensure_topics(settings))
            before = load1()
            measured = run_child(contender, settings, args.events)
            rate = args.events / measured["seconds"]
            cpu_us = 1e6 * measured["cpu"] / args.events
            results[contender].append((rate, cpu_us))
            table.add_row(
                str(round_),
                contender,
                f"{rate:,.0f}",
                f"{cpu_us:.1f}",
                f"{before:.2f}→{load1():.2f}",
            )
    console.print(table)
    aio, ck = (results[c] for c in CONTENDERS)
    rate_ratio = statistics.median(c[0] / a[0] for a, c in zip(aio, ck, strict=True))
    cpu_ratio = statistics.median(a[1] / c[1] for a, c in zip(aio, ck, strict=True))
    console.print(
        f"confluent-kafka / aiokafka, median over rounds: {rate_ratio:.1f}x the events/s, "
        f"{cpu_ratio:.1f}x less CPU per event"
    )


if __name__ == "__main__":
    main()
