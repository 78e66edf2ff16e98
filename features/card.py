"""Per-card state and the features computed from it, as pure functions of event time.

:func:`observe` is the entry point (the worker's hot path and the training path alike): it
takes the card's state and a transaction and returns the new state and the transaction's
feature vector, whose entries are named by :data:`FEATURE_NAMES`. For a transaction at event
time ``t`` the features look at the card's transactions that have *arrived* so far (the
current one included unless stated) in half-open windows ``(t - W, t]``:

- ``amount``: the amount in its currency's major unit;
- ``txn_count_<W>``, ``amount_sum_<W>``, ``amount_avg_<W>`` (sum / count, 0.0 if empty) for
  W = 60s, 10m, 1h, 24h (exact) and 7d, 30d (hourly buckets: the window's old edge is rounded
  *up* to a UTC hour boundary, so it misses at most the events of less than 1 h at that edge;
  the exact bound is in :mod:`features.windows`);
- ``distinct_merchants_10m``, ``distinct_merchants_24h``, ``distinct_mccs_24h``: exact;
- ``seconds_since_prev``: seconds from the latest earlier-arrived transaction with event time
  at or before ``t`` (ties: the latest to arrive), capped at 30 days (2,592,000 s), which is
  also the value when there is none;
- ``amount_ratio_30d``: amount / the 30-day average amount, the current one *included* (so
  1.0 for a card's first transaction, 0.0 if the 30-day sum is 0);
- ``amount_zscore``: against a decayed mean/variance (half-life 7 days; :mod:`features.history`);
- ``new_device``, ``new_merchant``, ``new_mcc``: 1 if no earlier-arrived transaction used the
  value with an event time after ``t - 30 d`` (no device id: 0; :mod:`features.history`);
- ``speed_kmh``: haversine distance / time from the previous *located* transaction (same
  choice as ``seconds_since_prev`` among located ones), 0.0 if either has no location or no
  time passed (:mod:`features.geo`);
- ``local_hour``, ``local_weekend``, ``local_night``: in the event_time's own UTC offset
  (:mod:`features.calendar`).

These definitions hold (exactly, or within the documented bucket bound for 7d and 30d) for
every event arriving at most ``max_out_of_orderness`` behind the card's newest one, as long
as the caps are not hit. Memory per card is bounded: at most ``max_events`` (1024) entries in
the exact list (24 h + ``max_out_of_orderness``), at most 30 * 24 + 2 = 722 hourly buckets
(by construction, for ``max_out_of_orderness`` <= 1 h), at most ``max_remembered`` (128)
devices, merchants and MCCs each, plus a few numbers. Over a cap the oldest go first. Later
arrivals are scored from what is left (lateness proper is part B of issue 4). The floats of
``amount_zscore`` and ``speed_kmh`` come from a fixed sequence of operations in arrival
order, so a replay gives the same bits; every other feature is integer arithmetic and one
correctly rounded division.

Amounts are kept as integers in 1/10,000 of the major unit (ISO 4217 exponents go up to 4), so
sums are exact and identical on replay; they become floats only in the feature vector, by
one correctly rounded division. Amounts of different currencies are added as they are.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from typing import Final

import msgspec

from features import history
from features.calendar import local_time_flags
from features.geo import speed_kmh
from features.transaction import Transaction
from features.windows import (
    BUCKET_SPAN_MS,
    EXACT_SPAN_MS,
    ExactList,
    HourBuckets,
    Located,
    Totals,
    scan_exact,
)

FEATURE_SCHEMA_VERSION = 2
_WINDOW_NAMES = ("60s", "10m", "1h", "24h", "7d", "30d")
FEATURE_NAMES: tuple[str, ...] = (
    "amount",
    *(f"{kind}_{w}" for w in _WINDOW_NAMES for kind in ("txn_count", "amount_sum", "amount_avg")),
    "distinct_merchants_10m",
    "distinct_merchants_24h",
    "distinct_mccs_24h",
    "seconds_since_prev",
    "amount_ratio_30d",
    "amount_zscore",
    "new_device",
    "new_merchant",
    "new_mcc",
    "speed_kmh",
    "local_hour",
    "local_weekend",
    "local_night",
)
STATE_VERSION = 2
AMOUNT_SCALE: Final = 4  # state amounts are in 1/10**4 of the major unit
NO_PREVIOUS_S: Final = BUCKET_SPAN_MS / 1000  # 30 days: seconds_since_prev's cap and default
_UNIT: Final = 10**AMOUNT_SCALE

FeatureVector = tuple[float, ...]


@dataclass(frozen=True, slots=True)
class FeatureParams:
    max_out_of_orderness_ms: int = 5_000
    max_events: int = 1024  # entries in the exact 24 h list
    max_remembered: int = 128  # devices, merchants and MCCs remembered, each
    half_life_ms: int = 7 * 86_400_000  # of the decayed amount profile

    @property
    def horizon_ms(self) -> int:
        """How far back from the newest event time the exact list reaches."""
        return EXACT_SPAN_MS + self.max_out_of_orderness_ms


DEFAULT_PARAMS = FeatureParams()


class CardState(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """What the worker remembers about one card (a msgpack array, ``v`` first).

    The exact list is stored as columns (:class:`features.windows.ExactList`), sorted by event
    time, then arrival; the hourly buckets likewise (:class:`features.windows.HourBuckets`).
    """

    v: int
    newest_ms: int  # the newest event time this card has seen
    times: tuple[int, ...]
    amounts: tuple[int, ...]  # in 1/10**4 of the major unit
    merchants: tuple[str, ...]
    mccs: tuple[str, ...]
    lats: tuple[float | None, ...]
    lons: tuple[float | None, ...]
    dropped_ms: int | None  # newest event time among arrivals no longer in the exact list
    dropped_loc: Located | None  # ... and the newest located one among them
    hours: tuple[int, ...]  # bucket hour indexes
    hour_counts: tuple[int, ...]
    hour_sums: tuple[int, ...]
    profile: history.Profile  # decayed amount mean/variance
    seen_devices: dict[str, int]  # value -> newest event time seen
    seen_merchants: dict[str, int]
    seen_mccs: dict[str, int]


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CardState)


def encode_state(state: CardState) -> bytes:
    return _encoder.encode(state)


def decode_state(raw: bytes) -> CardState:
    state = _decoder.decode(raw)
    if state.v != STATE_VERSION:
        raise ValueError(f"card state version {state.v} is not {STATE_VERSION}")
    return state


def empty_state(newest_ms: int) -> CardState:
    no: tuple[()] = ()
    return CardState(
        STATE_VERSION, newest_ms, no, no, no, no, no, no, None, None, no, no, no,
        history.EMPTY_PROFILE, {}, {}, {},
    )  # fmt: skip


def observe(
    state: CardState | None, txn: Transaction, params: FeatureParams = DEFAULT_PARAMS
) -> tuple[CardState, FeatureVector]:
    """Apply ``txn`` to the card's state and compute its features: the worker's hot path."""
    t = txn.event_time_ms
    prior = empty_state(t) if state is None else state
    newest = max(prior.newest_ms, t)
    amount = txn.amount_minor * 10 ** (AMOUNT_SCALE - txn.amount_scale)
    horizon = newest - params.horizon_ms
    exact = _exact_list(prior)
    exact.drop_oldest(bisect_right(exact.times, horizon))
    before = bisect_right(exact.times, t)
    previous = exact.previous(before, t)
    end = _store(exact, txn, amount=amount, before=before, horizon=horizon, cap=params.max_events)
    buckets = HourBuckets(list(prior.hours), list(prior.hour_counts), list(prior.hour_sums))
    buckets.add(t, amount)
    buckets.drop_before(newest - params.max_out_of_orderness_ms - BUCKET_SPAN_MS)
    totals, recent, distinct = scan_exact(exact, end, t)
    totals.extend(buckets.totals(t, recent))
    flags = (
        history.is_new(prior.seen_devices, txn.device_id, t, BUCKET_SPAN_MS),
        history.is_new(prior.seen_merchants, txn.merchant_id, t, BUCKET_SPAN_MS),
        history.is_new(prior.seen_mccs, txn.merchant_category, t, BUCKET_SPAN_MS),
    )
    zscore = history.zscore(prior.profile, txn.amount)
    features = _vector(
        txn, amount, totals, distinct=distinct, previous=previous, rest=(zscore, flags)
    )
    return _next_state(prior, txn, newest, exact=exact, buckets=buckets, params=params), features


def _exact_list(state: CardState) -> ExactList:
    return ExactList(
        list(state.times),
        list(state.amounts),
        list(state.merchants),
        list(state.mccs),
        list(state.lats),
        list(state.lons),
        state.dropped_ms,
        state.dropped_loc,
    )


def _store(
    exact: ExactList, txn: Transaction, *, amount: int, before: int, horizon: int, cap: int
) -> int:
    """Insert ``txn`` at ``before`` unless older than ``horizon``; return the end of the
    entries at or before its time."""
    t, lat, lon = txn.event_time_ms, txn.lat, txn.lon
    if t <= horizon:  # too late for the exact list: remembered only as dropped
        exact.dropped_ms = max(t, exact.dropped_ms or t)
        if lat is not None and lon is not None:
            exact.note_dropped_location((t, lat, lon))
        return before
    exact.times.insert(before, t)
    exact.amounts.insert(before, amount)
    exact.merchants.insert(before, txn.merchant_id)
    exact.mccs.insert(before, txn.merchant_category)
    exact.lats.insert(before, lat)
    exact.lons.insert(before, lon)
    over = max(0, len(exact.times) - cap)
    exact.drop_oldest(over)
    return max(0, before + 1 - over)


def _next_state(
    prior: CardState,
    txn: Transaction,
    newest: int,
    *,
    exact: ExactList,
    buckets: HourBuckets,
    params: FeatureParams,
) -> CardState:
    t, cap = txn.event_time_ms, params.max_remembered
    return CardState(
        STATE_VERSION,
        newest,
        tuple(exact.times),
        tuple(exact.amounts),
        tuple(exact.merchants),
        tuple(exact.mccs),
        tuple(exact.lats),
        tuple(exact.lons),
        exact.dropped_ms,
        exact.dropped_loc,
        tuple(buckets.hours),
        tuple(buckets.counts),
        tuple(buckets.sums),
        history.update_profile(prior.profile, txn.amount, t, params.half_life_ms),
        history.remember(prior.seen_devices, txn.device_id, t, cap),
        history.remember(prior.seen_merchants, txn.merchant_id, t, cap),
        history.remember(prior.seen_mccs, txn.merchant_category, t, cap),
    )


def _vector(
    txn: Transaction,
    amount: int,
    totals: list[Totals],
    *,
    distinct: list[int],
    previous: tuple[int | None, Located | None],
    rest: tuple[float, tuple[int, int, int]],  # the z-score and the three "new" flags
) -> FeatureVector:
    t = txn.event_time_ms
    zscore, (new_device, new_merchant, new_mcc) = rest
    prev_ms, prev_loc = previous
    count_30d, sum_30d = totals[5]
    hour, weekend, night = local_time_flags(t, txn.utc_offset_min)
    return (
        txn.amount,
        *_window(*totals[0]),
        *_window(*totals[1]),
        *_window(*totals[2]),
        *_window(*totals[3]),
        *_window(*totals[4]),
        *_window(count_30d, sum_30d),
        float(distinct[0]),
        float(distinct[1]),
        float(distinct[2]),
        NO_PREVIOUS_S if prev_ms is None else min((t - prev_ms) / 1000, NO_PREVIOUS_S),
        amount * count_30d / sum_30d if sum_30d > 0 else 0.0,
        zscore,
        float(new_device),
        float(new_merchant),
        float(new_mcc),
        _speed(txn, prev_loc),
        float(hour),
        float(weekend),
        float(night),
    )


def _window(count: int, total: int) -> tuple[float, float, float]:
    """(count, sum, average) of a window, amounts back in the major unit."""
    return float(count), total / _UNIT, total / (count * _UNIT) if count else 0.0


def _speed(txn: Transaction, previous: Located | None) -> float:
    if previous is None or txn.lat is None or txn.lon is None:
        return 0.0
    return speed_kmh(previous, (txn.event_time_ms, txn.lat, txn.lon))
