"""CPU cost per event of the card features: :func:`features.card.observe`.

Run: ``.venv/bin/python -m app.bench.features [--events 200000] [--cards 20000] [--repeats 5]
[--events-per-second 200] [--stream]``

The traffic is :func:`models.synthetic.generate` (seeded; 200 events per second of event time
by default, so 200,000 events span 17 minutes; a lower rate spreads them over days and gives
the cards longer histories): wire records are decoded once, before timing, so only the
feature update is timed: for every transaction, in arrival order, the card's state is looked
up in a dict, ``observe`` runs, the new state is stored; each run starts from empty state.
``--stream`` also times the whole per-transaction step (:func:`features.stream.process`:
watermark, duplicate check, expiry, the card update) with the in-memory store.

Where the state lives matters too: with a dict of live states, 20,000 cards' lists and
strings, grown one event at a time, lie scattered over the heap (cache misses). The worker
never keeps states that long: a card's state is read from RocksDB, decoded into fresh, compact
objects, updated and encoded again at each checkpoint (every 10 ms), so its ``observe`` runs on
a freshly decoded state. ``--worker-path`` times that: pass A decodes, observes and encodes each
event's state from a dict of encoded states; pass B decodes and encodes the same bytes
without ``observe``; A - B is ``observe`` on a freshly decoded state. Reported:
best and median microseconds per event of process CPU time (``time.process_time``: other
processes on the machine do not count), and the wall time of the best run. To compare with
an earlier commit, run its own copy of this command alternately with this one in the same
session (docs/BENCHMARKS.md records such pairs).
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from features import card, stream
from features.schema import FEATURE_SCHEMA_VERSION
from features.transaction import Transaction
from features.validation import Rejection, decode_transaction
from models.synthetic import encode_record, generate

Replay = Callable[[Sequence[Transaction]], object]
_T = TypeVar("_T")
_MAX_BYTES = 8192


def transactions(
    events: int, cards: int, seed: int, events_per_second: float = 200.0
) -> list[Transaction]:
    """Generated transactions, decoded as the worker decodes them."""
    out: list[Transaction] = []
    for item in generate(events, cards=cards, seed=seed, events_per_second=events_per_second):
        txn = decode_transaction(encode_record(item.record), max_bytes=_MAX_BYTES)
        if isinstance(txn, Rejection):
            raise SystemExit(f"synthetic record rejected: {txn.reason}: {txn.detail}")
        out.append(txn)
    return out


def card_updates(txns: Sequence[Transaction]) -> None:
    """The card feature update alone: ``observe`` with a dict as the state store."""
    states: dict[str, card.CardState] = {}
    for txn in txns:
        state, _ = card.observe(states.get(txn.card_id), txn)
        states[txn.card_id] = state


def stream_steps(txns: Sequence[Transaction]) -> None:
    """The whole per-transaction step: watermark, duplicates, expiry and the card update."""
    store = stream.MemoryCardStore()
    for txn in txns:
        stream.process(store, txn)


def worker_path(txns: Sequence[Transaction]) -> None:
    """Pass A: the card's state decoded, ``observe``, encoded again, as the worker does."""
    states: dict[str, bytes] = {}
    for txn in txns:
        raw = states.get(txn.card_id)
        state, _ = card.observe(None if raw is None else card.decode_state(raw), txn)
        states[txn.card_id] = card.encode_state(state)


def states_before(txns: Sequence[Transaction]) -> list[bytes]:
    """Every event's encoded card state before it (untimed: the input of pass B)."""
    states: dict[str, bytes] = {}
    before: list[bytes] = []
    for txn in txns:
        raw = states.get(txn.card_id)
        if raw is not None:
            before.append(raw)
        state, _ = card.observe(None if raw is None else card.decode_state(raw), txn)
        states[txn.card_id] = card.encode_state(state)
    return before


def codec_only(raws: Sequence[bytes]) -> None:
    """Pass B: pass A's decoding and encoding of the very same states, without ``observe``."""
    for raw in raws:
        card.encode_state(card.decode_state(raw))


def run_once(replay: Callable[[Sequence[_T]], object], txns: Sequence[_T]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one pass over ``txns`` from empty state."""
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    replay(txns)
    return time.process_time() - cpu, time.perf_counter() - wall


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--events-per-second", type=float, default=200.0, help="of event time")
    parser.add_argument("--stream", action="store_true", help="also time the whole stream step")
    parser.add_argument(
        "--worker-path",
        action="store_true",
        help="also time observe on freshly decoded states, as in the worker",
    )
    args = parser.parse_args(argv)
    txns = transactions(args.events, args.cards, args.seed, args.events_per_second)
    variants: dict[str, Replay] = {
        f"v{FEATURE_SCHEMA_VERSION} ({len(card.CARD_FEATURE_NAMES)} card features)": card_updates,
    }
    if args.stream:
        variants["stream step"] = stream_steps
    if args.worker_path:
        variants["A decode+observe+encode"] = worker_path
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    raws = states_before(txns) if args.worker_path else []
    codec: list[tuple[float, float]] = []
    for _ in range(args.repeats):
        for name, replay in variants.items():
            runs[name].append(run_once(replay, txns))
        if args.worker_path:
            codec.append(run_once(codec_only, raws))
    hours = (max(t.event_time_ms for t in txns) - min(t.event_time_ms for t in txns)) / 3.6e6
    print(f"python {sys.version.split()[0]} on {platform.platform()}, {platform.processor()}")
    print(
        f"{len(txns)} events, {args.cards} cards over {hours:.1f} hours of event time, "
        f"seed {args.seed}, {args.repeats} repeats"
    )
    for name, results in runs.items():
        per_event = sorted(cpu / len(txns) * 1e6 for cpu, _ in results)
        best_wall = min(wall for _, wall in results) / len(txns) * 1e6
        print(
            f"{name:<20} best {per_event[0]:6.2f} µs/event, median "
            f"{statistics.median(per_event):6.2f} µs/event CPU (best wall {best_wall:6.2f})"
        )
    if args.worker_path:
        # pass B decodes the states of events that had one: per event of the whole stream
        a = sorted(cpu / len(txns) * 1e6 for cpu, _ in runs["A decode+observe+encode"])
        b = sorted(cpu / len(txns) * 1e6 for cpu, _ in codec)
        print(
            f"{'B decode+encode':<20} best {b[0]:6.2f} µs/event, median {statistics.median(b):6.2f}"
        )
        print(
            f"{'A - B: observe':<20} best {a[0] - b[0]:6.2f} µs/event, median "
            f"{statistics.median(a) - statistics.median(b):6.2f} (on freshly decoded states)"
        )


if __name__ == "__main__":
    main()
