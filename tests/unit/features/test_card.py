"""Card features against a brute-force oracle over random, out-of-order, multi-card streams.

The oracle (``tests/support/oracle.py``) recomputes every feature from the list of
transactions that have arrived for the card. Exact windows must match exactly. Bucketed
windows (7 d, 30 d) must equal the oracle over ``(ceil_1h(t - W), t]`` exactly, which is the
documented bound: they lie between the exact values over ``(t - W + 1 h, t]`` and
``(t - W, t]``, and no further. Streams within ``max_out_of_orderness`` test the definitions
proper; streams with later arrivals test what the state still covers for them.
"""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from features.card import (
    CARD_FEATURE_NAMES,
    DEFAULT_PARAMS,
    NO_PREVIOUS_S,
    CardState,
    FeatureParams,
    decode_state,
    delivered_before,
    encode_state,
    observe,
)
from features.transaction import Transaction
from tests.support.oracle import (
    BUCKETED,
    DAY,
    HOUR,
    MIN,
    PLACES,
    T0,
    Arrival,
    Step,
    card_features,
    check,
    stream_of,
    totals,
    txn_of,
)
from tests.support.streams import step

OOO = DEFAULT_PARAMS.max_out_of_orderness_ms
EDGES = [0, 1, MIN - 1, MIN, MIN + 1, 10 * MIN, HOUR - 1, HOUR, HOUR + 1, DAY - 1, DAY]
LONG_EDGES = [7 * DAY - 1, 7 * DAY, 7 * DAY + HOUR // 2, 30 * DAY - 1, 30 * DAY, 30 * DAY + 1]

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


def _check_against_oracle(stream: list[Transaction]) -> None:
    arrivals: dict[str, list[Arrival]] = {}
    for i, (txn, vector) in enumerate(zip(stream, _run(stream), strict=True)):
        prior = arrivals.setdefault(txn.card_id, [])
        expected, arrival = card_features(prior, txn, DEFAULT_PARAMS)
        check(vector, expected, f"event {i}")
        prior.append(arrival)


@settings(max_examples=300, deadline=None)
@given(st.one_of(_steps, _edge_steps))
def test_features_equal_oracle_on_out_of_order_streams(steps: list[Step]) -> None:
    _check_against_oracle(stream_of(steps))


@settings(max_examples=300, deadline=None)
@given(st.lists(step, min_size=1, max_size=50))  # arrivals far later than the bound, too
def test_late_arrivals_use_and_change_only_what_the_state_covers(steps: list[Step]) -> None:
    _check_against_oracle(stream_of(steps))


@settings(max_examples=100, deadline=None)
@given(st.one_of(_steps, _edge_steps))
def test_bucketed_windows_stay_within_the_documented_bound(steps: list[Step]) -> None:
    stream = stream_of(steps)
    for i, (txn, vector) in enumerate(zip(stream, _run(stream), strict=True)):
        arrived = [e for e in stream[: i + 1] if e.card_id == txn.card_id]
        got = dict(zip(CARD_FEATURE_NAMES, vector, strict=True))
        t = txn.event_time_ms
        for w, span in BUCKETED.items():
            inner, outer = totals(arrived, t - span + HOUR, t), totals(arrived, t - span, t)
            assert inner[0] <= got[f"txn_count_{w}"] <= outer[0]
            assert inner[1] <= got[f"amount_sum_{w}"] <= outer[1]


@settings(max_examples=100, deadline=None)
@given(_steps)
def test_replay_is_deterministic_and_states_survive_encoding(steps: list[Step]) -> None:
    stream = stream_of(steps)
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
    second = dict(zip(CARD_FEATURE_NAMES, _run(stream_of(steps))[1], strict=True))
    assert second["txn_count_60s"] == 1.0  # (t - 60 s, t]: the first one is out
    assert second["distinct_merchants_10m"] == 2.0


def test_bucketed_window_misses_at_most_its_first_partial_hour() -> None:
    base: Step = (0, 0, 0, 100, 1, 2, None, None, 0)
    early, late = 20 * MIN, 50 * MIN  # into the first hour
    stream = [
        txn_of(0, T0 + early, base),
        txn_of(1, T0 + late, base),
        txn_of(2, T0 + 7 * DAY + 30 * MIN, base),  # t - 7 d = T0 + 30 min, rounded up to T0 + 1 h
    ]
    got = dict(zip(CARD_FEATURE_NAMES, _run(stream)[2], strict=True))
    assert got["txn_count_7d"] == 1.0  # the true window also holds the one at T0 + 50 min
    assert got["txn_count_30d"] == 3.0


def test_event_after_the_current_one_in_time_is_not_counted() -> None:
    base: Step = (0, 0, 0, 100, 1, 2, None, None, 0)
    stream = [txn_of(0, T0 + 3_000, base), txn_of(1, T0, (0, 0, 0, 250, 2, 2, None, None, 0))]
    got = dict(zip(CARD_FEATURE_NAMES, _run(stream)[1], strict=True))
    assert (got["txn_count_60s"], got["amount_sum_60s"], got["txn_count_30d"]) == (1.0, 2.5, 1.0)
    assert got["seconds_since_prev"] == NO_PREVIOUS_S  # the earlier arrival happened later
    assert got["new_merchant"] == 1.0


def test_a_first_transaction() -> None:
    step: Step = (0, 0, 0, 1234, 1, 2, 1, 0, 60)  # Paris, UTC+1
    got = dict(zip(CARD_FEATURE_NAMES, _run([txn_of(0, T0 + 5 * HOUR, step)])[0], strict=True))
    assert got["seconds_since_prev"] == NO_PREVIOUS_S == 2_592_000.0
    assert (got["amount_ratio_30d"], got["amount_zscore"], got["speed_kmh"]) == (1.0, 0.0, 0.0)
    assert (got["new_device"], got["new_merchant"], got["new_mcc"]) == (1.0, 1.0, 1.0)
    assert (got["local_hour"], got["local_weekend"], got["local_night"]) == (6.0, 0.0, 0.0)


def test_impossible_travel_shows_as_speed() -> None:
    paris: Step = (0, 0, 0, 100, 1, 2, None, 0, 60)
    new_york: Step = (0, 0, 0, 100, 2, 2, None, 2, -300)
    stream = [txn_of(0, T0, paris), txn_of(1, T0 + HOUR, new_york)]
    speed = dict(zip(CARD_FEATURE_NAMES, _run(stream)[1], strict=True))["speed_kmh"]
    assert 5_800 < speed < 5_900  # ~5,837 km in one hour


def test_caps_bound_the_state() -> None:
    params = FeatureParams(max_events=16, max_remembered=8)
    state: CardState | None = None
    for i in range(2_000):
        step: Step = (0, 0, 0, 100, i % 50, 2, i % 30, None, 0)
        txn = txn_of(i, T0 + i * 30 * MIN, step)  # 2,000 half-hours: ~42 days
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
        state, vector = observe(state, txn_of(i, T0 + i * MIN, step), params)
    assert state is not None
    assert dict(zip(CARD_FEATURE_NAMES, vector, strict=True))["new_merchant"] == 1.0  # m1 forgotten
    assert set(state.seen_merchants) == {"m3", "m1"}


def test_events_older_than_the_horizon_are_scored_but_change_nothing_but_the_ids() -> None:
    base: Step = (0, 0, 0, 100, 1, 2, None, None, 0)
    state, _ = observe(None, txn_of(0, T0 + DAY + 10 * MIN, base))
    before = encode_state(state)
    state, vector = observe(state, txn_of(1, T0, (0, 0, 0, 250, 2, 2, 1, 0, 0)))
    got = dict(zip(CARD_FEATURE_NAMES, vector, strict=True))
    assert (got["txn_count_60s"], got["txn_count_30d"]) == (0.0, 0.0)  # itself not included
    assert (got["new_merchant"], got["new_device"]) == (1.0, 1.0)
    assert (state.ids, state.id_marks) == (["t0", "t1"], [T0 + DAY + 10 * MIN] * 2)
    unchanged = msgspec.structs.replace(state, ids=["t0"], id_marks=[T0 + DAY + 10 * MIN])
    assert encode_state(unchanged) == before


def test_values_are_forgotten_30_days_and_the_bound_behind_the_newest_even_when_late() -> None:
    state, _ = observe(None, txn_of(0, T0 + HOUR, (0, 0, 0, 100, 1, 2, 1, None, 0)))  # device d1
    day_30, no_device = T0 + 30 * DAY, (0, 0, 0, 100, 1, 2, None, None, 0)  # T0: a midnight
    state, _ = observe(state, txn_of(1, day_30 + 30 * MIN, no_device))
    state, _ = observe(state, txn_of(2, day_30 + HOUR + OOO + MIN, no_device))
    assert "d1" in state.seen_devices  # past 30 days + the bound, but not swept out yet
    _, vector = observe(state, txn_of(3, T0 + 2 * HOUR, (0, 0, 0, 100, 1, 2, 1, None, 0)))
    got = dict(zip(CARD_FEATURE_NAMES, vector, strict=True))
    assert got["new_device"] == 1.0  # seen within 30 days of this late one, but forgotten
    state, _ = observe(state, txn_of(4, day_30 + DAY, no_device))
    assert "d1" not in state.seen_devices  # a new day swept the forgotten one out


def test_ids_are_remembered_until_the_horizon_passes_their_mark() -> None:
    base: Step = (0, 0, 0, 100, 1, 2, None, None, 0)
    state, _ = observe(None, txn_of(0, T0, base))
    state, _ = observe(state, txn_of(1, T0 + DAY + OOO, base))  # T0 is at the horizon: gone
    assert state.ids == ["t1"]
    assert delivered_before(state, "t1")
    assert not delivered_before(state, "t0")
    params = FeatureParams(max_events=2)
    for i in range(2, 5):
        state, _ = observe(state, txn_of(i, T0 + DAY + OOO + i, base), params)
    assert state.ids == ["t3", "t4"]  # over the cap the oldest go


def _counts(times: list[int]) -> dict[str, float]:
    base: Step = (0, 0, 0, 100, 1, 2, None, None, 0)
    vector = _run([txn_of(i, t, base) for i, t in enumerate(times)])[-1]
    return {k: v for k, v in zip(CARD_FEATURE_NAMES, vector, strict=True) if k.startswith("txn_")}


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
