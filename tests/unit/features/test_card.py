"""Card features against a brute-force oracle over random, out-of-order streams."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from features.card import (
    DEFAULT_PARAMS,
    FEATURE_NAMES,
    CardState,
    FeatureParams,
    decode_state,
    encode_state,
    observe,
)
from features.transaction import Transaction

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
OOO = DEFAULT_PARAMS.max_out_of_orderness_ms


def _txn(i: int, t: int, amount_minor: int, merchant: int, scale: int = 2) -> Transaction:
    return Transaction(
        transaction_id=f"t{i}",
        card_id="tok_card",
        amount_minor=amount_minor,
        amount_scale=scale,
        currency="USD" if scale == 2 else "JPY",
        merchant_id=f"m{merchant}",
        merchant_category="5411",
        event_time_ms=t,
    )


# (gap to the previous "true" time, how late it arrives within the bound, amount, merchant)
_steps = st.lists(
    st.tuples(
        st.one_of(
            st.integers(0, 90_000),
            st.sampled_from([0, 1, 30_000, 59_999, 60_000, 299_999, 300_000]),
        ),
        st.one_of(st.integers(0, OOO), st.sampled_from([0, OOO])),
        st.integers(0, 500_000),
        st.integers(0, 12),
        st.sampled_from([0, 2, 3]),
    ),
    min_size=1,
    max_size=80,
)


def _stream(steps: list[tuple[int, int, int, int, int]]) -> list[Transaction]:
    base, out = T0, []
    for i, (gap, late, amount, merchant, scale) in enumerate(steps):
        base += gap
        out.append(_txn(i, base - late, amount, merchant, scale))
    return out


def _oracle(arrived: list[Transaction], txn: Transaction) -> tuple[float, ...]:
    t = txn.event_time_ms
    last_60s = [e for e in arrived if t - 60_000 < e.event_time_ms <= t]
    last_10m = [e for e in arrived if t - 600_000 < e.event_time_ms <= t]
    total = sum((Decimal(e.amount_minor).scaleb(-e.amount_scale) for e in last_60s), Decimal(0))
    return (
        float(Decimal(txn.amount_minor).scaleb(-txn.amount_scale)),
        float(len(last_60s)),
        float(total),
        float(len({e.merchant_id for e in last_10m})),
    )


@settings(max_examples=300, deadline=None)
@given(_steps)
def test_features_equal_oracle_on_out_of_order_streams(
    steps: list[tuple[int, int, int, int, int]],
) -> None:
    stream = _stream(steps)
    state: CardState | None = None
    for i, txn in enumerate(stream):
        state, vector = observe(state, txn)
        assert vector == _oracle(stream[: i + 1], txn), f"event {i}"
        assert len(vector) == len(FEATURE_NAMES)


@settings(max_examples=100, deadline=None)
@given(_steps)
def test_state_survives_encoding_and_stays_sorted(
    steps: list[tuple[int, int, int, int, int]],
) -> None:
    state: CardState | None = None
    for txn in _stream(steps):
        state, _ = observe(state, txn)
        assert decode_state(encode_state(state)) == state
        times = [event[0] for event in state.events]
        assert times == sorted(times)
        assert all(t > state.newest_ms - DEFAULT_PARAMS.horizon_ms for t in times)


def test_window_edges_are_half_open() -> None:
    first = _txn(0, T0, 100, 1)
    state, _ = observe(None, first)
    _, exactly_60s_later = observe(state, _txn(1, T0 + 60_000, 100, 2))
    assert exactly_60s_later[1] == 1.0  # (t - 60 s, t]: the first one is out
    assert exactly_60s_later[3] == 2.0  # both merchants within 10 minutes


def test_event_after_the_current_one_in_time_is_not_counted() -> None:
    state, _ = observe(None, _txn(0, T0 + 3_000, 100, 1))
    _, vector = observe(state, _txn(1, T0, 250, 2))  # arrives later, happened earlier
    assert vector[1:] == (1.0, 2.5, 1.0)


def test_cap_bounds_state_size() -> None:
    params = FeatureParams(max_events=16)
    state: CardState | None = None
    for i in range(100):
        state, _ = observe(state, _txn(i, T0 + i, 1, i), params)
    assert state is not None
    assert len(state.events) == 16
    assert state.events[0][0] == T0 + 84  # the oldest were dropped


def test_events_older_than_the_horizon_are_scored_but_not_stored() -> None:
    state, _ = observe(None, _txn(0, T0 + 700_000, 100, 1))
    late = _txn(1, T0, 100, 2)
    state, vector = observe(state, late)
    assert len(state.events) == 1
    assert vector[1] == 0.0
