"""CPU cost per event of the card features: :func:`features.card.observe`.

Run: ``.venv/bin/python -m app.bench.features [--events 200000] [--cards 20000] [--repeats 5]``

The traffic is :func:`models.synthetic.generate` (seeded): wire records are decoded once,
before timing, so only the feature update is timed: for every transaction, in arrival order,
the card's state is looked up in a dict, ``observe`` runs, the new state is stored; each run
starts from empty state. Reported: best and median microseconds per event of process CPU
time (``time.process_time``: other processes on the machine do not count), and the wall time
of the best run. To compare with an earlier feature schema, run this command on that
commit in the same session (docs/BENCHMARKS.md records such pairs).
"""

from __future__ import annotations

import argparse
import gc
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from features import card
from features.transaction import Transaction
from features.validation import Rejection, decode_transaction
from models.synthetic import encode_record, generate

Observe = Callable[[Any, Transaction], tuple[Any, tuple[float, ...]]]
_MAX_BYTES = 8192


def transactions(events: int, cards: int, seed: int) -> list[Transaction]:
    out: list[Transaction] = []
    for item in generate(events, cards=cards, seed=seed):
        txn = decode_transaction(encode_record(item.record), max_bytes=_MAX_BYTES)
        if isinstance(txn, Rejection):
            raise SystemExit(f"synthetic record rejected: {txn.reason}: {txn.detail}")
        out.append(txn)
    return out


def run_once(observe: Observe, txns: Sequence[Transaction]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of one pass over ``txns`` from empty state."""
    states: dict[str, Any] = {}
    gc.collect()
    cpu, wall = time.process_time(), time.perf_counter()
    for txn in txns:
        state, _ = observe(states.get(txn.card_id), txn)
        states[txn.card_id] = state
    return time.process_time() - cpu, time.perf_counter() - wall


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--cards", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    txns = transactions(args.events, args.cards, args.seed)
    variants: dict[str, Observe] = {
        f"v{card.FEATURE_SCHEMA_VERSION} ({len(card.FEATURE_NAMES)} features)": card.observe,
    }
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, observe in variants.items():
            runs[name].append(run_once(observe, txns))
    print(f"python {sys.version.split()[0]} on {platform.platform()}, {platform.processor()}")
    print(f"{len(txns)} events, {args.cards} cards, seed {args.seed}, {args.repeats} repeats")
    for name, results in runs.items():
        per_event = sorted(cpu / len(txns) * 1e6 for cpu, _ in results)
        best_wall = min(wall for _, wall in results) / len(txns) * 1e6
        print(
            f"{name:<20} best {per_event[0]:6.2f} µs/event, median "
            f"{statistics.median(per_event):6.2f} µs/event CPU (best wall {best_wall:6.2f})"
        )


if __name__ == "__main__":
    main()
