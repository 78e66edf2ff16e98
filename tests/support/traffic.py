"""Generated traffic made untidy the way real inputs are: duplicate deliveries (a producer
retry sends a record again a little later) and late arrivals (a record held up far longer
than ``max_out_of_orderness``). Deterministic from the seed."""

from __future__ import annotations

from random import Random

from models.synthetic import SyntheticTransaction, encode_record, generate

Keyed = tuple[bytes, bytes]  # (key, value) as produced to the input topic


def untidy(
    count: int,
    *,
    cards: int,
    seed: int,
    events_per_second: float = 200.0,
    duplicates: float = 0.02,
    late: float = 0.02,
    hold_up: int = 3_000,
) -> list[Keyed]:
    """``count`` generated records in arrival order, about a fraction ``duplicates`` of them
    delivered a second time within the next 50 records, and a fraction ``late`` held back by
    ``hold_up`` records (more than ``max_out_of_orderness`` of event time at the default
    rate)."""
    rng = Random(f"tests.untidy/{seed}")
    traffic = generate(count, cards=cards, seed=seed, events_per_second=events_per_second)
    slots: dict[int, list[Keyed]] = {}
    for i, item in enumerate(traffic):
        record = _keyed(item)
        position = i + hold_up if rng.random() < late else i
        slots.setdefault(position, []).append(record)
        if rng.random() < duplicates:
            slots.setdefault(position + rng.randint(1, 50), []).append(record)
    return [record for position in sorted(slots) for record in slots[position]]


def _keyed(item: SyntheticTransaction) -> Keyed:
    return item.key, encode_record(item.record)
