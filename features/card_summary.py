"""What a card's state says at a point of event time, without adding a transaction: the
answer of ``GET /v1/cards/{card_id}/features`` (docs/API.md, "Card features").

:func:`summarize` takes a card's *committed* state and the time ``as_of`` to read it at (the
worker uses its partition's stream time: the newest event time it has committed, so no event
in the state is after it) and gives, with the windows of :mod:`features.card`:

- ``txn_count_<W>``, ``amount_sum_<W>``, ``amount_avg_<W>`` for W = 60s, 10m, 1h, 24h
  (exact) and 7d, 30d (hourly buckets, the old edge rounded up to an hour): the card's
  applied transactions with event time in ``(as_of - W, as_of]``, amounts in the major unit
  (currencies added as they are), average 0.0 if empty;
- ``distinct_merchants_10m``, ``distinct_merchants_24h``, ``distinct_mccs_24h``: exact, over
  the same windows;
- ``seconds_since_newest``: ``as_of`` minus the card's newest event time, in seconds.

These are the window values a transaction at ``as_of`` would be scored with *minus that
transaction itself*: its own count, amount and merchant are not in them. The same code
(:meth:`~features.windows.ExactList.scan`, :meth:`~features.windows.HourBuckets.totals`)
computes both, so they cannot drift apart.

:func:`is_expired` says whether a card must read as unknown: its state is past
``card_state_ttl`` at the watermark even if the expiry sweep has not removed it yet
(:mod:`features.stream`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from features.card import AMOUNT_SCALE, CardState
from features.stream import StreamParams, expired_through_ms

SUMMARY_WINDOWS: Final = ("60s", "10m", "1h", "24h", "7d", "30d")
SUMMARY_NAMES: Final[tuple[str, ...]] = (
    *(f"{kind}_{w}" for w in SUMMARY_WINDOWS for kind in ("txn_count", "amount_sum", "amount_avg")),
    "distinct_merchants_10m",
    "distinct_merchants_24h",
    "distinct_mccs_24h",
    "seconds_since_newest",
)
_UNIT: Final = 10**AMOUNT_SCALE


@dataclass(frozen=True, slots=True)
class CardSummary:
    as_of_ms: int  # the windows end here
    newest_ms: int  # the card's newest event time
    values: dict[str, float]  # by name, in the order of SUMMARY_NAMES


def summarize(state: CardState, as_of_ms: int) -> CardSummary:
    """The card's window values at ``as_of_ms`` (at or after its newest event time)."""
    if as_of_ms < state.newest_ms:
        raise ValueError(f"as_of {as_of_ms} is before the card's newest event {state.newest_ms}")
    exact = state.exact
    scanned = exact.scan(len(exact.times), as_of_ms)
    count_7d, sum_7d, count_30d, sum_30d = state.buckets.totals(as_of_ms, scanned[8], scanned[9])
    pairs = [*zip(scanned[0:8:2], scanned[1:8:2], strict=True), (count_7d, sum_7d)]
    pairs.append((count_30d, sum_30d))
    values: dict[str, float] = {}
    for window, (count, total) in zip(SUMMARY_WINDOWS, pairs, strict=True):
        values[f"txn_count_{window}"] = float(count)
        values[f"amount_sum_{window}"] = total / _UNIT
        values[f"amount_avg_{window}"] = total / (count * _UNIT) if count else 0.0
    values["distinct_merchants_10m"] = float(scanned[10])
    values["distinct_merchants_24h"] = float(scanned[11])
    values["distinct_mccs_24h"] = float(scanned[12])
    values["seconds_since_newest"] = (as_of_ms - state.newest_ms) / 1000
    return CardSummary(as_of_ms, state.newest_ms, values)


def is_expired(state: CardState, stream_time_ms: int, params: StreamParams) -> bool:
    """Whether the card's state is past its TTL at the partition's watermark: it then reads
    as unknown, as :func:`features.stream.process` treats it."""
    return state.newest_ms <= expired_through_ms(stream_time_ms, params)
