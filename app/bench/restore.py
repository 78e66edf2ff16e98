"""How fast a partition's state comes back from its changelog, in records and bytes per second:
the restore-time figures of docs/SCALING.md. Needs a running broker.

Run: ``.venv/bin/python -m app.bench.restore [--records 1000000] [--rounds 2] [--bootstrap H:P]``

1. **Realistic values.** ``--sample-cards`` generated cards live ``--sample-days`` days of
   event time at about three transactions a day each, through the worker's stream step
   (:func:`features.stream.process`); their encoded states are what a changelog holds after a
   month of traffic (mean about 1.9 kB, docs/BENCHMARKS.md, "Card state size").
2. **The changelog.** ``--records`` records, keys ``tok_<16 hex digits>`` like the load
   generator's tokens, values taken in turn from the sample, are produced to partition 0 of
   a fresh compacted topic (the changelog's own settings, :data:`sinks.kafka.CHANGELOG_CONFIG`),
   uncompressed like the worker's checkpoints (``--compression`` to compare), and flushed
   before any timing.
3. **The restore.** Each round restores that partition into a fresh state directory with the
   worker's own code (:func:`app.restore.restore_partition`: ``read_committed`` batches, RocksDB
   writes of 50,000 keys, the expiry index); timed are wall time and this process's CPU, and
   the table files' size afterwards.

A worker restores its partitions concurrently (one thread each); this is one partition, so
multiply by the partitions a worker restores at once only as far as it has cores for them.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.cimpl import NewTopic

from app.bench._common import fresh_settings, host_info, librdkafka_version, load1
from app.bench.features import transactions
from app.restore import restore_partition
from app.settings import FraudscoreSettings
from features.card import encode_state
from features.stream import MemoryCardStore, process
from sinks.kafka import CHANGELOG_CONFIG, confluent_options, group_admin, produce_waiting
from sinks.rocksdb import PartitionStore
from sinks.rocksdb_memory import shared_memory

_TXNS_PER_CARD_DAY = 3.0
_DAY_S = 86_400


def sample_values(cards: int, days: int, seed: int) -> list[bytes]:
    """The encoded states of ``cards`` generated cards after ``days`` of event time."""
    events = int(cards * days * _TXNS_PER_CARD_DAY)
    per_second = cards * _TXNS_PER_CARD_DAY / _DAY_S
    store = MemoryCardStore()
    for txn in transactions(events, cards=cards, seed=seed, events_per_second=per_second):
        process(store, txn)
    return [encode_state(state) for state in store.states.values()]


def fill_changelog(
    settings: FraudscoreSettings, records: int, values: list[bytes], compression: str
) -> int:
    """Produce ``records`` changelog records to partition 0, compressed with ``compression``
    (the producer's ``compression.type``); returns their key + value bytes."""
    admin = group_admin(settings)
    topic = NewTopic(settings.changelog_topic, 1, 1, config=CHANGELOG_CONFIG)
    admin.create_topics([topic])[settings.changelog_topic].result()
    producer = Producer(
        {
            **confluent_options(settings),
            "linger.ms": 20,
            "queue.buffering.max.messages": 1_000_000,
            "enable.idempotence": True,
            "compression.type": compression,
        }
    )
    total = 0
    for i in range(records):
        key, value = f"tok_{i:016x}".encode(), values[i % len(values)]
        total += len(key) + len(value)
        produce_waiting(producer, settings.changelog_topic, key, value, partition=0)
    if producer.flush(120):
        raise SystemExit("the changelog records were not all delivered within 120 s")
    return total


def restore_once(settings: FraudscoreSettings, directory: Path) -> tuple[float, float, int]:
    """Wall seconds, CPU seconds and table-file bytes of one restore into ``directory``."""
    store = PartitionStore(directory, shared_memory(settings.state_memory_mb))
    try:
        wall, cpu = time.monotonic(), time.process_time()
        restore_partition(settings, store, 0, 0)
        wall, cpu = time.monotonic() - wall, time.process_time() - cpu
        return wall, cpu, store.table_bytes()
    finally:
        store.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m app.bench.restore",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--records", type=int, default=1_000_000, help="changelog records")
    parser.add_argument("--rounds", type=int, default=2, help="restores of the same changelog")
    parser.add_argument("--sample-cards", type=int, default=2_000)
    parser.add_argument("--sample-days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument(
        "--compression",
        choices=("none", "lz4", "zstd"),
        default="none",
        help="the changelog producer's compression.type (the worker's is none)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the changelog topic (to look at its size)"
    )
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: the settings')")
    args = parser.parse_args(argv)

    base = FraudscoreSettings()
    if args.bootstrap:
        base = base.model_copy(update={"kafka_bootstrap": args.bootstrap})
    root = Path(tempfile.mkdtemp(prefix="fraudscore-restore-"))
    settings = fresh_settings(base, "restore", root)
    libraries = f"librdkafka {librdkafka_version()}, rocksdict {version('rocksdict')}"
    for name, value in host_info(libraries):
        print(f"{name}: {value}")
    started = time.monotonic()
    values = sample_values(args.sample_cards, args.sample_days, args.seed)
    mean = sum(map(len, values)) / len(values)
    took = time.monotonic() - started
    print(f"{len(values):,} sampled card states, mean {mean:,.0f} B ({took:.0f} s)")
    total = fill_changelog(settings, args.records, values, args.compression)
    print(
        f"changelog {settings.changelog_topic}: {args.records:,} records, "
        f"{total / 1e6:,.1f} MB of keys and values, compression {args.compression}"
    )
    print("| round | wall s | CPU s | records/s | MB/s | s per GB | table files MB | load 1m |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    try:
        for round_ in range(1, args.rounds + 1):
            before = load1()
            directory = root / f"restore-{round_}"
            wall, cpu, table = restore_once(settings, directory)
            shutil.rmtree(directory, ignore_errors=True)
            print(
                f"| {round_} | {wall:.2f} | {cpu:.2f} | {args.records / wall:,.0f} | "
                f"{total / 1e6 / wall:,.1f} | {wall / (total / 1e9):,.1f} | {table / 1e6:,.1f} | "
                f"{before:.2f}→{load1():.2f} |",
                flush=True,
            )
    finally:
        if not args.keep:
            group_admin(settings).delete_topics([settings.changelog_topic])
        shutil.rmtree(root, ignore_errors=True)
    print(f"pid {os.getpid()} done in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
