"""Card state on disk: bytes per active card, and a stream where half of the cards go dormant.

Run: ``.venv/bin/python -m app.bench.state_size monthly [--cards 20000] [--per-day 3]``
     ``.venv/bin/python -m app.bench.state_size dormant [--cards 100000] [--ttl-days 45]``

Both replay transactions through the worker's per-transaction step
(:func:`features.stream.process`) into the worker's state store
(:class:`sinks.rocksdb.PartitionStore`, RocksDB in a temporary directory), one input
partition holding every card, with a checkpoint (the overlay written to RocksDB in one
batch) every ``--checkpoint`` transactions, as the worker does after its Kafka transaction
commits. Kafka, scoring and decoding are left out: only state is measured. Reported: cards
held, the encoded bytes of their values and keys (what the changelog holds per card), and the
bytes of RocksDB's live table files (flushed; and after a full compaction at the end).

- ``monthly``: the first 30 days of event time of :func:`models.synthetic.generate` traffic
  (``--cards`` cards, about ``--per-day`` transactions per card and day, skewed as the
  generator skews activity), decoded once before the replay: bytes per active card after
  30 days, with percentiles of the per-card value size.
- ``dormant``: 90 days of a simple deterministic stream: half of the cards are used all along
  (a transaction every ``--steady-gap-days`` on average), the other half each for one
  ``--burst-days`` stretch (one a day on average) that starts on a uniformly random day, then
  never again. Without expiry the state would keep every card ever seen; with
  ``card_state_ttl`` it should level off once the first bursts are older than the TTL plus
  their length. A row per ``--report-every`` days.
"""

from __future__ import annotations

import argparse
import heapq
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

from app.bench.features import transactions as generated_transactions
from app.settings import get_settings
from features.stream import PARTITION_KEY, StreamParams, process
from features.transaction import Transaction
from features.windows import DAY_MS
from models.synthetic import DEFAULT_START_MS
from sinks.rocksdb import CheckpointMeta, PartitionStore
from sinks.rocksdb_memory import shared_memory

_PARTITION_KEY_BYTES = PARTITION_KEY.encode()  # the partition's own state: not a card


@dataclass
class Footprint:
    """What the changelog holds: the latest encoded value of every live key."""

    sizes: dict[bytes, int] = field(default_factory=dict)  # key -> len(key) + len(value)
    total: int = 0

    def apply(self, changes: Iterable[tuple[bytes, bytes | None]]) -> None:
        for key, value in changes:
            self.total -= self.sizes.pop(key, 0)
            if value is not None:
                self.sizes[key] = len(key) + len(value)
                self.total += self.sizes[key]


@dataclass
class Replay:
    store: PartitionStore
    params: StreamParams
    checkpoint_every: int
    footprint: Footprint = field(default_factory=Footprint)
    events: int = 0
    cpu_s: float = 0.0

    def run(self, txns: Iterable[Transaction], report_every_ms: int | None = None) -> None:
        """Process ``txns``; with ``report_every_ms``, print a row each time event time
        crosses a multiple of it."""
        next_report = None
        started = time.process_time()
        for txn in txns:
            if report_every_ms is not None:
                if next_report is None:
                    next_report = txn.event_time_ms + report_every_ms
                while txn.event_time_ms >= next_report:
                    self.cpu_s += time.process_time() - started
                    self.report(next_report)
                    started = time.process_time()
                    next_report += report_every_ms
            process(self.store, txn, self.params)
            self.events += 1
            if self.events % self.checkpoint_every == 0:
                self.checkpoint()
        self.checkpoint()
        self.cpu_s += time.process_time() - started

    def checkpoint(self) -> None:
        changes = list(self.store.dirty())
        self.store.write(changes, CheckpointMeta())
        self.footprint.apply(changes)

    def cards(self) -> int:
        return len(self.footprint.sizes) - 1  # the partition's own state is no card

    def report(self, at_ms: int) -> None:
        self.checkpoint()
        day = (at_ms - DEFAULT_START_MS) / DAY_MS
        print(
            f"| {day:5.0f} | {self.events:>11,} | {self.cards():>9,} | "
            f"{self.footprint.total / 1e6:10.1f} | {self.store.table_bytes() / 1e6:10.1f} | "
            f"{self.cpu_s / max(self.events, 1) * 1e6:6.1f} |",
            flush=True,
        )


def _store(directory: str | None) -> PartitionStore:
    root = Path(directory) if directory else Path(tempfile.mkdtemp(prefix="fraudscore-bench-"))
    return PartitionStore(root / "state", shared_memory(get_settings().state_memory_mb))


def monthly(args: argparse.Namespace) -> None:
    count = args.cards * args.per_day * 30
    generated = generated_transactions(  # a little more than 30 days' worth, then cut
        count * 6 // 5, args.cards, args.seed, events_per_second=count / (30 * DAY_MS / 1000)
    )
    month_end = generated[0].event_time_ms + 30 * DAY_MS
    txns = [txn for txn in generated if txn.event_time_ms < month_end]
    days = (txns[-1].event_time_ms - txns[0].event_time_ms) / DAY_MS
    replay = Replay(_store(args.dir), StreamParams(), args.checkpoint)
    replay.run(txns)
    cards = replay.cards()
    values = sorted(
        size for key, size in replay.footprint.sizes.items() if key != _PARTITION_KEY_BYTES
    )
    table = replay.store.table_bytes(compact=True)
    print(f"{len(txns):,} transactions of {cards:,} cards over {days:.1f} days of event time")
    print(f"encoded key + value per card: mean {statistics.mean(values):,.0f} B, p50 "
          f"{_pct(values, 0.5):,} B, p90 {_pct(values, 0.9):,} B, p99 {_pct(values, 0.99):,} B, "
          f"max {values[-1]:,} B")  # fmt: skip
    print(f"RocksDB live table files after full compaction: {table:,} B = "
          f"{table / cards:,.0f} B per card (all column families)")  # fmt: skip
    print(f"CPU {replay.cpu_s / len(txns) * 1e6:.1f} µs per transaction (stream step + store)")


def _pct(values: Sequence[int], q: float) -> int:
    return values[min(len(values) - 1, int(q * len(values)))]


def dormant_stream(
    cards: int, *, days: int, seed: int, steady_gap_days: float, burst_days: float
) -> Iterator[Transaction]:
    """Half the cards active all ``days``, half for one burst each; in event-time order."""
    rng = Random(f"fraudscore.bench.dormant/{seed}")
    end = DEFAULT_START_MS + days * DAY_MS
    stops: list[int] = []
    gaps: list[float] = []
    heap: list[tuple[int, int]] = []
    for card in range(cards):
        if card % 2 == 0:  # steady
            start, stop, gap = DEFAULT_START_MS, end, steady_gap_days * DAY_MS
        else:  # one burst, then dormant
            start = DEFAULT_START_MS + int(rng.uniform(0, days - burst_days) * DAY_MS)
            stop, gap = start + int(burst_days * DAY_MS), DAY_MS
        stops.append(stop)
        gaps.append(gap)
        first = start + rng.expovariate(1 / gap)
        if first < stop:
            heap.append((int(first), card))
    heapq.heapify(heap)
    n = 0
    while heap:
        t, card = heapq.heappop(heap)
        yield _transaction(n, card, t, rng)
        n += 1
        following = t + rng.expovariate(1 / gaps[card])
        if following < stops[card]:
            heapq.heappush(heap, (int(following), card))


def _transaction(n: int, card: int, t: int, rng: Random) -> Transaction:
    merchant = (card * 7 + rng.randrange(6)) % 50_000  # a few regular merchants per card
    return Transaction(
        transaction_id=f"b_{n:010d}",
        card_id=f"tok_{card:09d}",
        amount_minor=rng.randrange(100, 20_000),
        amount_scale=2,
        currency="USD",
        merchant_id=f"m_{merchant:05d}",
        merchant_category=f"{5000 + merchant % 40:04d}",
        event_time_ms=t,
        device_id=f"dev_{card}_{rng.randrange(2)}",
        lat=40.0 + card % 1000 / 1000,
        lon=-74.0 + card % 997 / 1000,
    )


def dormant(args: argparse.Namespace) -> None:
    params = StreamParams(card_state_ttl_ms=int(args.ttl_days * DAY_MS))
    txns = dormant_stream(
        args.cards,
        days=args.days,
        seed=args.seed,
        steady_gap_days=args.steady_gap_days,
        burst_days=args.burst_days,
    )
    replay = Replay(_store(args.dir), params, args.checkpoint)
    print(f"{args.cards:,} cards, {args.days} days, TTL {args.ttl_days} days")
    print("|   day | transactions |     cards | changelog MB | on disk MB | CPU µs/txn |")
    print("|---:|---:|---:|---:|---:|---:|")
    replay.run(txns, report_every_ms=int(args.report_every * DAY_MS))
    replay.report(DEFAULT_START_MS + args.days * DAY_MS)
    table = replay.store.table_bytes(compact=True)
    print(f"after a full compaction: {table / 1e6:.1f} MB on disk for {replay.cards():,} cards")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--dir", help="where to put RocksDB (default: a new temporary directory)")
    parser.add_argument("--checkpoint", type=int, default=2000, help="transactions per checkpoint")
    parser.add_argument("--seed", type=int, default=7)
    commands = parser.add_subparsers(dest="command", required=True)
    month = commands.add_parser("monthly", help="bytes per active card after 30 days")
    month.add_argument("--cards", type=int, default=20_000)
    month.add_argument("--per-day", type=int, default=3)
    month.set_defaults(run=monthly)
    idle = commands.add_parser("dormant", help="90 days, half of the cards go dormant")
    idle.add_argument("--cards", type=int, default=100_000)
    idle.add_argument("--days", type=int, default=90)
    idle.add_argument("--ttl-days", type=float, default=45.0)
    idle.add_argument("--steady-gap-days", type=float, default=3.0)
    idle.add_argument("--burst-days", type=float, default=10.0)
    idle.add_argument("--report-every", type=float, default=5.0, help="days between rows")
    idle.set_defaults(run=dormant)
    args = parser.parse_args(argv)
    print(f"python {platform.python_version()} on {platform.platform()}, {os.cpu_count()} CPUs")
    args.run(args)


if __name__ == "__main__":
    main()
