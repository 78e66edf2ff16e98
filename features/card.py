"""Per-card state and the features computed from it, as pure functions of event time.

:func:`observe` is the entry point (the worker's hot path and the training path alike,
through :func:`features.stream.process`): it takes the card's state and a transaction and
returns the new state and the transaction's feature vector, whose entries are named by
:data:`CARD_FEATURE_NAMES` (the first part of the model's vector,
:mod:`features.schema`). For a transaction at event time ``t`` the features look at the card's
transactions that have *arrived* so far (the current one included unless stated) in
half-open windows ``(t - W, t]``:

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
  value with an event time after ``t - 30 d`` (no device id: 0; :mod:`features.history`; for
  a transaction later than the bound, see below);
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
devices, merchants and MCCs each, at most ``max_events`` transaction ids, plus a few numbers.
Over a cap the oldest go first. The floats of ``amount_zscore`` and ``speed_kmh`` come from a
fixed sequence of operations in arrival order, so a replay gives the same bits; every other
feature is integer arithmetic and one correctly rounded division.

Later arrivals use and change only what the state still covers. With ``N`` the card's newest
event time (this transaction's included) and its *horizon* ``N - 24 h -
max_out_of_orderness``:

- the exact list holds the card's transactions after the horizon, the buckets those of the
  last 30 days + ``max_out_of_orderness`` before ``N``; windows count what they hold, and the
  7d/30d windows take ``(ceil_1h(t - 24 h), t]`` from the exact list (so a transaction late
  by more than the bound may miss some history there); ``seconds_since_prev`` and
  ``speed_kmh`` fall back to the newest transaction dropped from the exact list, if it is at
  or before ``t``;
- the "new" flags count a value as seen only after ``max(t, N' - max_out_of_orderness) -
  30 d``, ``N'`` being the newest time before this transaction: the last-seen maps forget
  values older than that (:func:`features.history.forget`);
- a transaction at or before the horizon is *not applied*: it is scored against the state
  (and is then not in its own windows), and changes nothing but the remembered ids.

Remembered ids (duplicate deliveries, :mod:`features.stream`): every transaction's id, with
``N`` right after it arrived, until the horizon passes that mark; at most ``max_events``. A
transaction is applied only if its time is after the horizon, and a forgotten id's
transaction is at or before it, so a duplicate delivery is never counted twice (unless the
card had more than ``max_events`` transactions within 24 h).

Amounts are kept as integers in 1/10,000 of the major unit (ISO 4217 exponents go up to 4), so
sums are exact and identical on replay; they become floats only in the feature vector, by
one correctly rounded division. Amounts of different currencies are added as they are.

Speed: :func:`observe` updates the state *in place* (its lists and maps), so the hot path
allocates only the feature vector and a few small tuples per event instead of rebuilding every
column; whoever passes a state in hands it over. ``python -m app.bench.features`` measures it
(docs/BENCHMARKS.md).
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Final

import msgspec

from features import history
from features.calendar import local_time_flags
from features.geo import speed_kmh
from features.transaction import Transaction
from features.windows import (
    BUCKET_SPAN_MS,
    DAY_MS,
    EXACT_SPAN_MS,
    ExactList,
    HourBuckets,
    Located,
)

_WINDOW_NAMES = ("60s", "10m", "1h", "24h", "7d", "30d")
CARD_FEATURE_NAMES: tuple[str, ...] = (
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
STATE_VERSION = 3
AMOUNT_SCALE: Final = 4  # state amounts are in 1/10**4 of the major unit
NO_PREVIOUS_MS: Final = BUCKET_SPAN_MS  # 30 days: seconds_since_prev's cap and default
NO_PREVIOUS_S: Final = NO_PREVIOUS_MS / 1000
_UNIT: Final = 10**AMOUNT_SCALE
_MAJOR_UNIT: Final = tuple(10.0**scale for scale in range(AMOUNT_SCALE + 1))
_TO_STATE_UNIT: Final = tuple(10 ** (AMOUNT_SCALE - scale) for scale in range(AMOUNT_SCALE + 1))

FeatureVector = tuple[float, ...]


@dataclass(frozen=True, slots=True)
class FeatureParams:
    max_out_of_orderness_ms: int = 5_000
    max_events: int = 1024  # entries in the exact 24 h list
    max_remembered: int = 128  # devices, merchants and MCCs remembered, each
    half_life_ms: int = 7 * 86_400_000  # of the decayed amount profile
    # how far back from the newest event time the exact list reaches (derived)
    horizon_ms: int = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "horizon_ms", EXACT_SPAN_MS + self.max_out_of_orderness_ms)


DEFAULT_PARAMS = FeatureParams()


class CardState(msgspec.Struct, array_like=True, gc=False):
    """What the worker remembers about one card (a msgpack array, ``v`` first).

    The exact list (:class:`features.windows.ExactList`) is sorted by event time, then
    arrival; the hourly buckets (:class:`features.windows.HourBuckets`) by hour. A state is
    *updated in place* by :func:`observe`: whoever passes one in hands it over.
    """

    v: int
    newest_ms: int  # the newest event time this card has seen
    exact: ExactList
    buckets: HourBuckets
    profile: history.Profile  # decayed amount mean/variance
    seen_devices: dict[str, int]  # value -> newest event time seen
    seen_merchants: dict[str, int]
    seen_mccs: dict[str, int]
    ids: list[str]  # transaction ids remembered, in arrival order ...
    id_marks: list[int]  # ... each with newest_ms right after it arrived


class _Head(msgspec.Struct, array_like=True, gc=False):
    """The first fields of an encoded state (msgspec skips the rest)."""

    v: int
    newest_ms: int


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(CardState)
_head_decoder = msgspec.msgpack.Decoder(_Head)


def encode_state(state: CardState) -> bytes:
    return _encoder.encode(state)


def decode_state(raw: bytes) -> CardState:
    state = _decoder.decode(raw)
    if state.v != STATE_VERSION:
        raise ValueError(f"card state version {state.v} is not {STATE_VERSION}")
    return state


def newest_of(raw: bytes) -> int:
    """The newest event time of an encoded state, without decoding the rest of it."""
    return _head_decoder.decode(raw).newest_ms


def empty_state(newest_ms: int) -> CardState:
    return CardState(
        STATE_VERSION,
        newest_ms,
        ExactList([], [], [], [], [], [], None, None),
        HourBuckets([], [], []),
        history.EMPTY_PROFILE,
        {},
        {},
        {},
        [],
        [],
    )


def delivered_before(state: CardState, transaction_id: str) -> bool:
    """Whether ``transaction_id`` is one this card remembers (see the module docstring)."""
    return transaction_id in state.ids


def observe(
    state: CardState | None, txn: Transaction, params: FeatureParams = DEFAULT_PARAMS
) -> tuple[CardState, FeatureVector]:
    """Apply ``txn`` to the card's state and compute its features: the worker's hot path.

    The state is updated in place and returned (a new one if ``state`` is None). A
    transaction older than the card's horizon changes nothing but the remembered ids.
    """
    t = txn.event_time_ms
    if state is None:
        state = empty_state(t)
    prior_newest = state.newest_ms
    newest = prior_newest if prior_newest > t else t
    amount = txn.amount_minor * _TO_STATE_UNIT[txn.amount_scale]
    exact, buckets = state.exact, state.buckets
    horizon = newest - params.horizon_ms
    applied = t > horizon
    times = exact.times
    if times and times[0] <= horizon:
        exact.drop_oldest(bisect_right(times, horizon))
    before = bisect_right(times, t)
    previous = exact.previous(before, t)
    if applied:
        entry = (t, amount, txn.merchant_id, txn.merchant_category, txn.lat, txn.lon)
        end = exact.insert(before, entry, params.max_events)
        buckets.add(t, amount)
        buckets.drop_before(newest - params.max_out_of_orderness_ms - BUCKET_SPAN_MS)
    else:
        end = before
    scanned = exact.scan(end, t)
    bucketed = buckets.totals(t, scanned[8], scanned[9])
    x = txn.amount_minor / _MAJOR_UNIT[txn.amount_scale]  # the same bits as txn.amount
    # the "new" flags look back 30 days, and no further than the maps still remember
    remembered = prior_newest - params.max_out_of_orderness_ms
    since = (t if t > remembered else remembered) - BUCKET_SPAN_MS
    features = _vector(txn, x, amount, scanned, bucketed, previous, state, since)
    if applied:
        _learn(state, txn, x, newest, params)
    _remember_id(state, txn.transaction_id, newest, horizon, params.max_events)
    return state, features


def _learn(
    state: CardState, txn: Transaction, x: float, newest: int, params: FeatureParams
) -> None:
    """Update the card's longer memory with an applied transaction (after its features)."""
    t, cap = txn.event_time_ms, params.max_remembered
    if newest // DAY_MS != state.newest_ms // DAY_MS:  # a new day: forget the expired values
        forget = newest - params.max_out_of_orderness_ms - BUCKET_SPAN_MS
        for last_seen in (state.seen_devices, state.seen_merchants, state.seen_mccs):
            history.forget(last_seen, forget)
    state.newest_ms = newest
    state.profile = history.update_profile(state.profile, x, t, params.half_life_ms)
    history.remember(state.seen_devices, txn.device_id, t, cap)
    history.remember(state.seen_merchants, txn.merchant_id, t, cap)
    history.remember(state.seen_mccs, txn.merchant_category, t, cap)


def _remember_id(
    state: CardState, transaction_id: str, newest: int, horizon: int, cap: int
) -> None:
    """Remember the id with the card's newest time; forget those the horizon has passed."""
    ids, marks = state.ids, state.id_marks
    ids.append(transaction_id)
    marks.append(newest)
    if marks[0] <= horizon or len(ids) > cap:
        n = max(bisect_right(marks, horizon), len(ids) - cap)
        del ids[:n], marks[:n]


def _vector(  # noqa: PLR0917 - the hot path: positional arguments cost less
    txn: Transaction,
    x: float,  # the amount in the major unit
    amount: int,  # ... and in the state's unit
    scanned: tuple[int, ...],
    bucketed: tuple[int, int, int, int],
    previous: tuple[int | None, Located | None],
    prior: CardState,  # before this transaction: for the z-score and the "new" flags
    since: int,  # the "new" flags count values seen after this time
) -> FeatureVector:
    t, unit = txn.event_time_ms, _UNIT
    prev_ms, prev_loc = previous
    (count_1m, sum_1m, count_10m, sum_10m, count_1h, sum_1h, count_24h, sum_24h, _, _,
     merchants_10m, merchants_24h, mccs_24h) = scanned  # fmt: skip
    count_7d, sum_7d, count_30d, sum_30d = bucketed
    hour, weekend, night = local_time_flags(t, txn.utc_offset_min)
    device = txn.device_id
    device_seen = None if device is None else prior.seen_devices.get(device, since)
    merchant_seen = prior.seen_merchants.get(txn.merchant_id, since)
    mcc_seen = prior.seen_mccs.get(txn.merchant_category, since)
    # (count, sum, average) per window, amounts back in the major unit; average 0.0 if empty
    return (
        x,
        float(count_1m), sum_1m / unit, sum_1m / (count_1m * unit) if count_1m else 0.0,
        float(count_10m), sum_10m / unit, sum_10m / (count_10m * unit) if count_10m else 0.0,
        float(count_1h), sum_1h / unit, sum_1h / (count_1h * unit) if count_1h else 0.0,
        float(count_24h), sum_24h / unit, sum_24h / (count_24h * unit) if count_24h else 0.0,
        float(count_7d), sum_7d / unit, sum_7d / (count_7d * unit) if count_7d else 0.0,
        float(count_30d), sum_30d / unit, sum_30d / (count_30d * unit) if count_30d else 0.0,
        float(merchants_10m),
        float(merchants_24h),
        float(mccs_24h),
        NO_PREVIOUS_S if prev_ms is None or t - prev_ms >= NO_PREVIOUS_MS else (t - prev_ms) / 1000,
        amount * count_30d / sum_30d if sum_30d > 0 else 0.0,
        history.zscore(prior.profile, x),
        0.0 if device_seen is None or device_seen > since else 1.0,
        0.0 if merchant_seen > since else 1.0,
        0.0 if mcc_seen > since else 1.0,
        0.0 if prev_loc is None or txn.lat is None else _speed(txn, prev_loc),
        float(hour),
        float(weekend),
        float(night),
    )  # fmt: skip


def _speed(txn: Transaction, previous: Located) -> float:
    if txn.lat is None or txn.lon is None:
        return 0.0
    return speed_kmh(previous, (txn.event_time_ms, txn.lat, txn.lon))
