"""The card summary (``GET /v1/cards/{card_id}/features``) equals the brute-force oracle: the
window values a transaction at the partition's stream time would see, minus its own."""

from __future__ import annotations

import pytest
from hypothesis import given, settings

from features.card import empty_state
from features.card_summary import SUMMARY_NAMES, SUMMARY_WINDOWS, is_expired, summarize
from features.stream import MemoryCardStore, StreamParams, process
from features.transaction import Transaction
from tests.support.oracle import DAY, PartitionOracle, Step, card_features
from tests.support.streams import OOO, TTL, log_items, log_of

PARAMS = StreamParams(card_state_ttl_ms=TTL)


def _probe(card_id: str, t: int) -> Transaction:
    """A transaction of amount 0 at ``t`` with a merchant and MCC no card has seen."""
    return Transaction(
        transaction_id="probe",
        card_id=card_id,
        amount_minor=0,
        amount_scale=2,
        currency="USD",
        merchant_id="probe-merchant",
        merchant_category="0000",
        event_time_ms=t,
    )


def _expected(oracle: PartitionOracle, card_id: str, as_of: int) -> dict[str, float]:
    """The oracle's features of a probe at ``as_of``, its own contribution taken out."""
    probe, _ = card_features(oracle.cards[card_id], _probe(card_id, as_of), PARAMS.features)
    out: dict[str, float] = {}
    for w in SUMMARY_WINDOWS:
        count, total = probe[f"txn_count_{w}"] - 1, probe[f"amount_sum_{w}"]
        out |= {f"txn_count_{w}": count, f"amount_sum_{w}": total}
        out[f"amount_avg_{w}"] = total / count if count else 0.0
    for name in ("distinct_merchants_10m", "distinct_merchants_24h", "distinct_mccs_24h"):
        out[name] = probe[name] - 1
    newest = max(a.txn.event_time_ms for a in oracle.cards[card_id] if a.applied)
    out["seconds_since_newest"] = (as_of - newest) / 1000
    return out


@settings(max_examples=300, deadline=None)
@given(log_items)
def test_summaries_equal_the_oracle(items: list[Step | int]) -> None:
    store, oracle = MemoryCardStore(), PartitionOracle(PARAMS)
    for txn in log_of(items):
        process(store, txn, PARAMS)
        oracle.step(txn)
    assert store.partition is not None
    assert store.partition.stream_time_ms is not None
    as_of = store.partition.stream_time_ms
    expired_through = as_of - OOO - TTL
    for card_id, state in store.states.items():
        newest = max(a.txn.event_time_ms for a in oracle.cards[card_id])
        assert is_expired(state, as_of, PARAMS) == (newest <= expired_through), card_id
        if is_expired(state, as_of, PARAMS):
            continue
        got, expected = summarize(state, as_of), _expected(oracle, card_id, as_of)
        assert list(got.values) == list(SUMMARY_NAMES)
        assert got.newest_ms == newest
        for name in SUMMARY_NAMES:
            assert got.values[name] == pytest.approx(expected[name], rel=1e-12), name


def test_a_time_before_the_cards_newest_event_is_refused() -> None:
    with pytest.raises(ValueError, match="before the card's newest"):
        summarize(empty_state(DAY), DAY - 1)


def test_an_empty_window_has_average_zero() -> None:
    values = summarize(empty_state(DAY), 2 * DAY).values
    assert values["txn_count_24h"] == 0.0
    assert values["amount_avg_24h"] == 0.0
    assert values["seconds_since_newest"] == DAY / 1000
