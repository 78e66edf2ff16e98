"""Card features against a brute-force oracle over random, out-of-order, multi-card streams.

The oracle recomputes every feature from the list of transactions that have arrived for the
card (the current one last). Exact windows must match exactly. Bucketed windows (7 d, 30 d)
must equal the oracle over ``(ceil_1h(t - W), t]`` exactly, which is the documented bound: they
lie between the exact values over ``(t - W + 1 h, t]`` and ``(t - W, t]``, and no further.
"""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from features.card import (
    DEFAULT_PARAMS,
    FEATURE_NAMES,
    NO_PREVIOUS_S,
    CardState,
    FeatureParams,
    decode_state,
    encode_state,
    observe,
)
from features.geo import haversine_km
from features.transaction import Transaction

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday, an hour boundary
OOO = DEFAULT_PARAMS.max_out_of_orderness_ms
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
EXACT = {"60s": MIN, "10m": 10 * MIN, "1h": HOUR, "24h": DAY}
BUCKETED = {"7d": 7 * DAY, "30d": 30 * DAY}
HALF_LIFE = DEFAULT_PARAMS.half_life_ms
PLACES = ((48.8566, 2.3522), (51.5074, -0.1278), (40.7128, -74.0060), (48.86, 2.35))
EDGES = [0, 1, MIN - 1, MIN, MIN + 1, 10 * MIN, HOUR - 1, HOUR, HOUR + 1, DAY - 1, DAY]
LONG_EDGES = [7 * DAY - 1, 7 * DAY, 7 * DAY + HOUR // 2, 30 * DAY - 1, 30 * DAY, 30 * DAY + 1]

Step = tuple[int, int, int, int, int, int, int | None, int | None, int]

_steps = st.lists(
    st.tuples(
        st.one_of(  # gap to the previous "true" time: biased to the window edges
            st.integers(0, 90_000),
            st.sampled_from(EDGES),
            st.integers(0, 2 * DAY),
            st.sampled_from(LONG_EDGES),
        ),
        st.one_of(st.integers(0, OOO), st.sampled_from([0, OOO])),  # how late, within bound
        st.integers(0, 3),  # card
        st.integers(0, 500_000),  # amount in minor units
        st.integers(0, 6),  # merchant
        st.sampled_from([0, 2, 3]),  # currency exponent
        st.one_of(st.none(), st.integers(0, 3)),  # device
        st.one_of(st.none(), st.integers(0, len(PLACES) - 1)),  # location
        st.sampled_from([0, 60, -300, 330, -720, 840]),  # UTC offset, minutes
    ),
    min_size=1,
    max_size=60,
)

# Edge-heavy streams of one or two cards: every gap is a window or bucket edge, give or take
# the out-of-orderness, so events land exactly on (and next to) the window boundaries.
_EDGE_GAPS = sorted({g + d for g in EDGES + LONG_EDGES for d in (0, 1, -1, OOO, -OOO)} - {-1})
_edge_steps = st.lists(
    st.tuples(
        st.sampled_from([g for g in _EDGE_GAPS if g >= 0]),
        st.sampled_from([0, 1, OOO - 1, OOO]),
        st.integers(0, 1),
        st.integers(0, 500_000),
        st.integers(0, 6),
        st.just(2),
        st.one_of(st.none(), st.integers(0, 3)),
        st.one_of(st.none(), st.integers(0, len(PLACES) - 1)),
        st.just(0),
    ),
    min_size=1,
    max_size=40,
)


def _txn(i: int, t: int, step: Step) -> Transaction:
    _, _, card, amount, merchant, scale, device, place, offset = step
    lat, lon = (None, None) if place is None else PLACES[place]
    return Transaction(
        transaction_id=f"t{i}",
        card_id=f"card{card}",
        amount_minor=amount,
        amount_scale=scale,
        currency={0: "JPY", 2: "USD", 3: "KWD"}[scale],
        merchant_id=f"m{merchant}",
        merchant_category=f"54{merchant % 3:02d}",
        event_time_ms=t,
        device_id=None if device is None else f"d{device}",
        lat=lat,
        lon=lon,
        utc_offset_min=offset,
    )


def _stream(steps: list[Step]) -> list[Transaction]:
    base, out = T0, []
    for i, step in enumerate(steps):
        base += step[0]
        out.append(_txn(i, base - step[1], step))
    return out


def _amount(txn: Transaction) -> Decimal:
    return Decimal(txn.amount_minor).scaleb(-txn.amount_scale)


def _totals(arrived: list[Transaction], lo: int, t: int) -> tuple[float, float, float]:
    inside = [e for e in arrived if lo < e.event_time_ms <= t]
    total = sum((_amount(e) for e in inside), Decimal(0))
    average = float(Fraction(total) / len(inside)) if inside else 0.0
    return float(len(inside)), float(total), average


def _ceil_hour(ms: int) -> int:
    return -(-ms // HOUR) * HOUR


def _previous(earlier: list[Transaction], t: int, located: bool) -> Transaction | None:
    """The latest earlier arrival at or before t (ties: the latest to arrive)."""
    best = None
    for e in earlier:
        usable = e.event_time_ms <= t and (not located or e.lat is not None)
        if usable and (best is None or e.event_time_ms >= best.event_time_ms):
            best = e
    return best


def _zscore(earlier: list[Transaction], x: float) -> float:
    weight = mean = m2 = 0.0
    last = None
    for e in earlier:  # arrival order
        if last is None or e.event_time_ms > last:
            if last is not None:
                decay = math.pow(2.0, -(e.event_time_ms - last) / HALF_LIFE)
                weight, m2 = weight * decay, m2 * decay
            last = e.event_time_ms
        y = e.amount_minor / 10.0**e.amount_scale
        weight += 1.0
        new_mean = mean + (y - mean) / weight
        m2 += (y - mean) * (y - new_mean)
        mean = new_mean
    return 0.0 if weight == 0.0 else (x - mean) / math.sqrt(m2 / weight + 1.0)


def _oracle(arrived: list[Transaction]) -> dict[str, float]:
    txn, earlier = arrived[-1], arrived[:-1]
    t = txn.event_time_ms
    out = {"amount": float(_amount(txn))}
    windows = {w: (t - span) for w, span in EXACT.items()}
    windows |= {w: _ceil_hour(t - span) for w, span in BUCKETED.items()}
    for w, lo in windows.items():
        out[f"txn_count_{w}"], out[f"amount_sum_{w}"], out[f"amount_avg_{w}"] = _totals(
            arrived, lo, t
        )
    for name, span, attr in (
        ("distinct_merchants_10m", 10 * MIN, "merchant_id"),
        ("distinct_merchants_24h", DAY, "merchant_id"),
        ("distinct_mccs_24h", DAY, "merchant_category"),
    ):
        out[name] = float(
            len({getattr(e, attr) for e in arrived if t - span < e.event_time_ms <= t})
        )
    previous = _previous(earlier, t, located=False)
    out["seconds_since_prev"] = (
        NO_PREVIOUS_S if previous is None else min((t - previous.event_time_ms) / 1000, 2_592_000)
    )
    inside = [e for e in arrived if windows["30d"] < e.event_time_ms <= t]
    total = sum((_amount(e) for e in inside), Decimal(0))
    out["amount_ratio_30d"] = float(_amount(txn) * len(inside) / total) if total else 0.0
    out["amount_zscore"] = _zscore(earlier, txn.amount)
    for name, attr in (
        ("new_device", "device_id"),
        ("new_merchant", "merchant_id"),
        ("new_mcc", "merchant_category"),
    ):
        value = getattr(txn, attr)
        seen = any(getattr(e, attr) == value and e.event_time_ms > t - 30 * DAY for e in earlier)
        out[name] = float(value is not None and not seen)
    out["speed_kmh"] = _oracle_speed(earlier, txn)
    local = dt.datetime.fromtimestamp(
        t / 1000, dt.timezone(dt.timedelta(minutes=txn.utc_offset_min))
    )
    out |= {
        "local_hour": float(local.hour),
        "local_weekend": float(local.weekday() >= 5),
        "local_night": float(local.hour < 6),
    }
    return out


def _oracle_speed(earlier: list[Transaction], txn: Transaction) -> float:
    previous = _previous(earlier, txn.event_time_ms, located=True)
    if previous is None or txn.lat is None or txn.lon is None:
        return 0.0
    elapsed_h = (txn.event_time_ms - previous.event_time_ms) / HOUR
    if elapsed_h == 0:
        return 0.0
    assert previous.lat is not None
    assert previous.lon is not None
    return haversine_km(previous.lat, previous.lon, txn.lat, txn.lon) / elapsed_h


_APPROXIMATE = {"amount_zscore", "speed_kmh"}  # float math in another order: 1e-9 relative


def _check(vector: tuple[float, ...], expected: dict[str, float], where: str) -> None:
    got = dict(zip(FEATURE_NAMES, vector, strict=True))
    assert set(got) == set(expected)
    for name, value in expected.items():
        if name in _APPROXIMATE:
            assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-9), (where, name)
        else:
            assert got[name] == value, (where, name, got[name], value)


def _run(
    stream: list[Transaction], params: FeatureParams = DEFAULT_PARAMS
) -> list[tuple[float, ...]]:
    states: dict[str, CardState] = {}
    vectors = []
    for txn in stream:
        state, vector = observe(states.get(txn.card_id), txn, params)
        states[txn.card_id] = state
        vectors.append(vector)
    return vectors


@settings(max_examples=300, deadline=None)
@given(st.one_of(_steps, _edge_steps))
def test_features_equal_oracle_on_out_of_order_streams(steps: list[Step]) -> None:
    stream = _stream(steps)
    for i, (txn, vector) in enumerate(zip(stream, _run(stream), strict=True)):
        arrived = [e for e in stream[: i + 1] if e.card_id == txn.card_id]
        _check(vector, _oracle(arrived), f"event {i}")


@settings(max_examples=100, deadline=None)
@given(st.one_of(_steps, _edge_steps))
def test_bucketed_windows_stay_within_the_documented_bound(steps: list[Step]) -> None:
    stream = _stream(steps)
    for i, (txn, vector) in enumerate(zip(stream, _run(stream), strict=True)):
        arrived = [e for e in stream[: i + 1] if e.card_id == txn.card_id]
        got = dict(zip(FEATURE_NAMES, vector, strict=True))
        t = txn.event_time_ms
        for w, span in BUCKETED.items():
            inner, outer = _totals(arrived, t - span + HOUR, t), _totals(arrived, t - span, t)
            assert inner[0] <= got[f"txn_count_{w}"] <= outer[0]
            assert inner[1] <= got[f"amount_sum_{w}"] <= outer[1]


@settings(max_examples=100, deadline=None)
@given(_steps)
def test_replay_is_deterministic_and_states_survive_encoding(steps: list[Step]) -> None:
    stream = _stream(steps)
    first, second = _run(stream), _run(stream)
    assert [tuple(map(float.hex, v)) for v in first] == [tuple(map(float.hex, v)) for v in second]
    states: dict[str, CardState] = {}
    for txn in stream:
        state, _ = observe(states.get(txn.card_id), txn)
        states[txn.card_id] = state
        assert decode_state(encode_state(state)) == state
        times, hours = state.exact.times, state.buckets.hours
        assert times == sorted(times)
        assert all(t > state.newest_ms - DEFAULT_PARAMS.horizon_ms for t in times)
        assert hours == sorted(set(hours))


def test_window_edges_are_half_open() -> None:
    steps: list[Step] = [(0, 0, 0, 100, 1, 2, None, None, 0), (MIN, 0, 0, 100, 2, 2, None, None, 0)]
    second = dict(zip(FEATURE_NAMES, _run(_stream(steps))[1], strict=True))
    assert second["txn_count_60s"] == 1.0  # (t - 60 s, t]: the first one is out
    assert second["distinct_merchants_10m"] == 2.0


def test_bucketed_window_misses_at_most_its_first_partial_hour() -> None:
    base: Step = (0, 0, 0, 100, 1, 2, None, None, 0)
    early, late = 20 * MIN, 50 * MIN  # into the first hour
    stream = [
        _txn(0, T0 + early, base),
        _txn(1, T0 + late, base),
        _txn(2, T0 + 7 * DAY + 30 * MIN, base),  # t - 7 d = T0 + 30 min, rounded up to T0 + 1 h
    ]
    got = dict(zip(FEATURE_NAMES, _run(stream)[2], strict=True))
    assert got["txn_count_7d"] == 1.0  # the true window also holds the one at T0 + 50 min
    assert got["txn_count_30d"] == 3.0


def test_event_after_the_current_one_in_time_is_not_counted() -> None:
    base: Step = (0, 0, 0, 100, 1, 2, None, None, 0)
    stream = [_txn(0, T0 + 3_000, base), _txn(1, T0, (0, 0, 0, 250, 2, 2, None, None, 0))]
    got = dict(zip(FEATURE_NAMES, _run(stream)[1], strict=True))
    assert (got["txn_count_60s"], got["amount_sum_60s"], got["txn_count_30d"]) == (1.0, 2.5, 1.0)
    assert got["seconds_since_prev"] == NO_PREVIOUS_S  # the earlier arrival happened later
    assert got["new_merchant"] == 1.0


def test_a_first_transaction() -> None:
    step: Step = (0, 0, 0, 1234, 1, 2, 1, 0, 60)  # Paris, UTC+1
    got = dict(zip(FEATURE_NAMES, _run([_txn(0, T0 + 5 * HOUR, step)])[0], strict=True))
    assert got["seconds_since_prev"] == NO_PREVIOUS_S == 2_592_000.0
    assert (got["amount_ratio_30d"], got["amount_zscore"], got["speed_kmh"]) == (1.0, 0.0, 0.0)
    assert (got["new_device"], got["new_merchant"], got["new_mcc"]) == (1.0, 1.0, 1.0)
    assert (got["local_hour"], got["local_weekend"], got["local_night"]) == (6.0, 0.0, 0.0)


def test_impossible_travel_shows_as_speed() -> None:
    paris: Step = (0, 0, 0, 100, 1, 2, None, 0, 60)
    new_york: Step = (0, 0, 0, 100, 2, 2, None, 2, -300)
    stream = [_txn(0, T0, paris), _txn(1, T0 + HOUR, new_york)]
    speed = dict(zip(FEATURE_NAMES, _run(stream)[1], strict=True))["speed_kmh"]
    assert 5_800 < speed < 5_900  # ~5,837 km in one hour


def test_caps_bound_the_state() -> None:
    params = FeatureParams(max_events=16, max_remembered=8)
    state: CardState | None = None
    for i in range(2_000):
        step: Step = (0, 0, 0, 100, i % 50, 2, i % 30, None, 0)
        txn = _txn(i, T0 + i * 30 * MIN, step)  # 2,000 half-hours: ~42 days
        state, _ = observe(state, txn, params)
    assert state is not None
    assert len(state.exact.times) == 16
    assert state.exact.times[0] == T0 + 1_984 * 30 * MIN  # the oldest were dropped
    assert len(state.seen_devices) == len(state.seen_merchants) == 8
    assert len(state.buckets.hours) <= 30 * 24 + 2
    assert state.exact.dropped_ms == T0 + 1_983 * 30 * MIN


def test_remembered_values_over_the_cap_drop_the_least_recent() -> None:
    params = FeatureParams(max_remembered=2)
    state: CardState | None = None
    for i, merchant in enumerate((1, 2, 3, 1)):
        step: Step = (0, 0, 0, 100, merchant, 2, None, None, 0)
        state, vector = observe(state, _txn(i, T0 + i * MIN, step), params)
    assert state is not None
    assert dict(zip(FEATURE_NAMES, vector, strict=True))["new_merchant"] == 1.0  # m1 forgotten
    assert set(state.seen_merchants) == {"m3", "m1"}


def test_events_older_than_the_horizon_are_scored_but_not_stored() -> None:
    base: Step = (0, 0, 0, 100, 1, 2, None, None, 0)
    state, _ = observe(None, _txn(0, T0 + DAY + 10 * MIN, base))
    state, vector = observe(state, _txn(1, T0, base))
    assert len(state.exact.times) == 1
    assert state.exact.dropped_ms == T0
    assert dict(zip(FEATURE_NAMES, vector, strict=True))["txn_count_60s"] == 0.0


def _counts(times: list[int]) -> dict[str, float]:
    base: Step = (0, 0, 0, 100, 1, 2, None, None, 0)
    vector = _run([_txn(i, t, base) for i, t in enumerate(times)])[-1]
    return {k: v for k, v in zip(FEATURE_NAMES, vector, strict=True) if k.startswith("txn_")}


def test_state_horizons_are_just_long_enough_for_arrivals_within_the_bound() -> None:
    # the newest is at T0 + 24 h + OOO; an arrival OOO - 1 ms late still sees T0 + 2 in 24 h
    late = _counts([T0 + 2, T0 + DAY + OOO, T0 + DAY + 1])
    assert (late["txn_count_24h"], late["txn_count_30d"]) == (2.0, 2.0)
    # the same for the 30-day buckets: T0 + 1 is in the bucket (T0, T0 + 1 h]
    late = _counts([T0 + 1, T0 + 30 * DAY + OOO, T0 + 30 * DAY])
    assert (late["txn_count_7d"], late["txn_count_30d"]) == (1.0, 2.0)


def test_the_exact_and_bucketed_parts_meet_without_gap_or_overlap() -> None:
    # at t = T0 + 24 h the cut is T0: T0 + 1 is exact, T0 itself is in a bucket, T0 - 1 too
    counts = _counts([T0 - 1, T0, T0 + 1, T0 + DAY])
    assert (counts["txn_count_24h"], counts["txn_count_7d"], counts["txn_count_30d"]) == (
        2.0,
        4.0,
        4.0,
    )
