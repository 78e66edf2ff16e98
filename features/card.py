"""Per-card state and the features computed from it, as pure functions of event time.

For a transaction at event time ``t`` the features look at the card's transactions that have
*arrived* so far (the current one included) whose event time lies in the half-open window
``(t - W, t]``:

- ``txn_count_60s`` and ``amount_sum_60s``: count and amount sum with W = 60 s;
- ``distinct_merchants_10m``: distinct merchant ids with W = 10 min.

Out-of-order arrivals are placed by their event time. The state keeps the card's events of the
last ``merchant_window + max_out_of_orderness`` of event time (measured back from the newest
event time the card has seen), sorted by event time, so every window stays exact for events
that arrive at most ``max_out_of_orderness`` behind the card's newest event. Older arrivals are
scored from what is left and are not stored (lateness handling proper is its own issue).
Exact up to ``max_events`` events inside that horizon (default 512): beyond the cap the oldest
are dropped.

Amounts are kept as integers in 1/10,000 of the major unit (ISO 4217 exponents go up to 4), so
sums are exact and identical on replay; they become floats only in the feature vector.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from dataclasses import dataclass

import msgspec

from features.transaction import Transaction

FEATURE_SCHEMA_VERSION = 1
FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    "txn_count_60s",
    "amount_sum_60s",
    "distinct_merchants_10m",
)
STATE_VERSION = 1
_AMOUNT_SCALE = 4  # state amounts are in 1/10**4 of the major unit

Event = tuple[int, int, str]  # (event_time_ms, amount in 1/10**4 major units, merchant_id)
FeatureVector = tuple[float, ...]


@dataclass(frozen=True, slots=True)
class FeatureParams:
    velocity_window_ms: int = 60_000
    merchant_window_ms: int = 600_000
    max_out_of_orderness_ms: int = 5_000
    max_events: int = 512

    @property
    def horizon_ms(self) -> int:
        return max(self.velocity_window_ms, self.merchant_window_ms) + self.max_out_of_orderness_ms


DEFAULT_PARAMS = FeatureParams()


class CardState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What the worker remembers about one card. ``events`` is sorted by event time."""

    v: int
    newest_ms: int  # the newest event time this card has seen
    events: tuple[Event, ...]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CardState)


def encode_state(state: CardState) -> bytes:
    return _encoder.encode(state)


def decode_state(raw: bytes) -> CardState:
    state = _decoder.decode(raw)
    if state.v != STATE_VERSION:
        raise ValueError(f"card state version {state.v} is not {STATE_VERSION}")
    return state


def _event_time(event: Event) -> int:
    return event[0]


def apply(
    state: CardState | None, txn: Transaction, params: FeatureParams = DEFAULT_PARAMS
) -> CardState:
    """The card's state after ``txn`` has arrived."""
    newest = txn.event_time_ms if state is None else max(state.newest_ms, txn.event_time_ms)
    horizon = newest - params.horizon_ms
    events = [] if state is None else list(state.events)
    del events[: bisect_right(events, horizon, key=_event_time)]
    if txn.event_time_ms > horizon:
        amount = txn.amount_minor * 10 ** (_AMOUNT_SCALE - txn.amount_scale)
        insort(events, (txn.event_time_ms, amount, txn.merchant_id), key=_event_time)
        del events[: max(0, len(events) - params.max_events)]
    return CardState(v=STATE_VERSION, newest_ms=newest, events=tuple(events))


def vector(
    state: CardState, txn: Transaction, params: FeatureParams = DEFAULT_PARAMS
) -> FeatureVector:
    """The features of ``txn`` given the card's state after it arrived (see :func:`apply`)."""
    t = txn.event_time_ms
    events = state.events
    end = bisect_right(events, t, key=_event_time)
    start_60s = bisect_right(events, t - params.velocity_window_ms, 0, end, key=_event_time)
    start_10m = bisect_right(events, t - params.merchant_window_ms, 0, end, key=_event_time)
    amount_sum = sum(event[1] for event in events[start_60s:end])
    merchants = {event[2] for event in events[start_10m:end]}
    return (
        txn.amount,
        float(end - start_60s),
        amount_sum / 10**_AMOUNT_SCALE,
        float(len(merchants)),
    )


def observe(
    state: CardState | None, txn: Transaction, params: FeatureParams = DEFAULT_PARAMS
) -> tuple[CardState, FeatureVector]:
    """Apply ``txn`` to the card's state and compute its features: the worker's hot path."""
    new_state = apply(state, txn, params)
    return new_state, vector(new_state, txn, params)
