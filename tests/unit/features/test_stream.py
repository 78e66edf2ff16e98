"""One partition's event time against the oracle: random multi-card streams with out-of-order
and late arrivals, duplicate deliveries and cards that go dormant and expire.

Every transaction's outcome (duplicate or not, late or not, and every feature) must equal
the oracle's (``tests/support/oracle.py``), which recomputes from the list of arrived
transactions; the store must hold exactly the cards the oracle has not seen expire and swept.
"""

from __future__ import annotations

import msgspec
from hypothesis import example, given, settings
from hypothesis import strategies as st

from features.card import CARD_FEATURE_NAMES
from features.stream import (
    PARTITION_KEY,
    MemoryCardStore,
    Outcome,
    StreamParams,
    expiry_hour,
    process,
)
from features.transaction import Transaction
from features.validation import Rejection, decode_transaction
from tests.support.oracle import (
    HOUR,
    MIN,
    T0,
    PartitionOracle,
    Step,
    check,
    txn_of,
)
from tests.support.streams import OOO, TTL, log_items, log_of


def _params(allowed_lateness_ms: int, expire_limit: int = 16) -> StreamParams:
    return StreamParams(
        allowed_lateness_ms=allowed_lateness_ms,
        card_state_ttl_ms=TTL,
        expire_limit=expire_limit,
    )


_ON_TIME: Step = (0, 0, 0, 100, 1, 2, None, None, 0)
_AT_THE_WATERMARK: Step = (0, OOO + MIN, 1, 100, 1, 2, None, None, 0)


@settings(max_examples=400, deadline=None)
@given(log_items, st.sampled_from([0, MIN, HOUR]))
@example([_ON_TIME, _AT_THE_WATERMARK], MIN)  # exactly at watermark - lateness: not late
def test_outcomes_and_state_equal_the_oracle(items: list[Step | int], lateness: int) -> None:
    params = _params(lateness)
    store, oracle = MemoryCardStore(), PartitionOracle(params)
    for i, txn in enumerate(log_of(items)):
        outcome, expected = process(store, txn, params), oracle.step(txn)
        assert outcome.duplicate == (expected.features is None), f"event {i}"
        assert outcome.late == expected.late, f"event {i}"
        if outcome.vector is not None and expected.features is not None:
            check(outcome.vector, expected.features, f"event {i}")
    assert set(store.states) == oracle.stored_cards()
    partition = store.partition
    assert partition is not None
    assert (partition.stream_time_ms, partition.late, partition.duplicates) == (
        oracle.stream_time,
        oracle.late,
        oracle.duplicates,
    )


def _at(i: int, t: int, card: int = 0, merchant: int = 1) -> Transaction:
    return txn_of(i, t, (0, 0, card, 1000, merchant, 2, None, None, 0))


def _count_60s(outcome: Outcome) -> float:
    assert outcome.vector is not None
    return dict(zip(CARD_FEATURE_NAMES, outcome.vector, strict=True))["txn_count_60s"]


def test_a_duplicate_is_neither_scored_nor_counted_twice() -> None:
    store, first = MemoryCardStore(), _at(0, T0)
    assert _count_60s(process(store, first)) == 1.0
    assert process(store, first).duplicate
    assert _count_60s(process(store, _at(1, T0 + 1))) == 2.0
    assert store.partition is not None
    assert store.partition.duplicates == 1


def test_late_means_older_than_the_watermark_minus_the_allowed_lateness() -> None:
    params = StreamParams(allowed_lateness_ms=MIN)
    store = MemoryCardStore()
    process(store, _at(0, T0 + HOUR, card=1), params)  # the watermark is T0 + 1 h - OOO
    edge = T0 + HOUR - OOO - MIN
    assert not process(store, _at(1, edge), params).late
    assert process(store, _at(2, edge - 1), params).late
    assert store.partition is not None
    assert (store.partition.late, store.partition.stream_time_ms) == (1, T0 + HOUR)


def test_a_dormant_card_that_comes_back_starts_from_empty_state() -> None:
    params = _params(0)
    store = MemoryCardStore()
    process(store, _at(0, T0), params)
    process(store, _at(1, T0 + TTL + OOO - 1, card=1), params)  # not quite expired
    assert _count_60s(process(store, _at(2, T0 + 30_000), params)) == 2.0
    process(store, _at(3, T0 + 30_000 + TTL + OOO, card=1), params)  # now it is
    outcome = process(store, _at(4, T0 + 30_000 + TTL + OOO, merchant=1), params)
    assert outcome.vector is not None
    got = dict(zip(CARD_FEATURE_NAMES, outcome.vector, strict=True))
    assert (got["txn_count_30d"], got["new_merchant"]) == (1.0, 1.0)
    assert store.states["card0"].ids == ["t4"]


def test_a_transaction_older_than_the_ttl_of_a_card_without_state_is_not_kept() -> None:
    params = _params(0)
    store = MemoryCardStore()
    process(store, _at(0, T0 + 3 * TTL, card=1), params)
    assert not process(store, _at(1, T0, card=2), params).duplicate
    assert set(store.states) == {"card1"}


def test_expired_cards_are_removed_a_few_per_transaction_in_hour_then_card_order() -> None:
    params = _params(0, expire_limit=3)
    store = MemoryCardStore()
    for card in range(8):  # eight cards, last seen in two different hours
        process(store, _at(card, T0 + (card % 2) * HOUR + card, card=card), params)
    assert len(store.states) == 8
    later = T0 + 2 * HOUR + TTL + OOO  # both hours expired
    process(store, _at(8, later, card=100), params)
    assert set(store.states) == {"card1", "card3", "card5", "card6", "card7", "card100"}
    process(store, _at(9, later + 1, card=100), params)  # hour 0 first, then by card id
    assert set(store.states) == {"card5", "card7", "card100"}
    process(store, _at(10, later + 2, card=100), params)
    assert set(store.states) == {"card100"}
    assert store.partition is not None
    assert store.partition.expired_before_hour == expiry_hour(later - OOO - TTL)


def test_state_size_returns_to_near_zero_after_every_card_goes_dormant() -> None:
    params = _params(0)
    store = MemoryCardStore()
    t = T0
    for i in range(2_000):  # 2,000 transactions of 500 cards over ~3.5 days
        t += 150_000
        process(store, _at(i, t, card=i % 500, merchant=i % 7), params)
    assert len(store.states) == 500
    quiet = t + TTL + OOO + HOUR  # then one other card, after everyone else has expired
    for i in range(40):  # the sweep removes 16 cards per transaction at most
        process(store, _at(10_000 + i, quiet + i, card=9_999), params)
    assert set(store.states) == {"card9999"}


def test_the_partition_key_can_be_no_card_id() -> None:
    record = {
        "transaction_id": "t",
        "card_id": PARTITION_KEY,
        "amount": "1.00",
        "currency": "USD",
        "merchant_id": "m",
        "merchant_category": "5411",
        "event_time": T0,
    }
    rejected = decode_transaction(msgspec.json.encode(record), max_bytes=8192)
    assert isinstance(rejected, Rejection)
    assert rejected.detail.startswith("card_id")
