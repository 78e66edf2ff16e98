"""The peers' features (:mod:`app.bench.peer_pipeline`) against fraudscore's own
(:func:`features.card.observe`) on generated traffic: the windows fraudscore computes exactly
must agree exactly; the peers' decisions carry one record per transaction with its id."""

from __future__ import annotations

import msgspec
import pytest

from app.bench.peer_pipeline import CONSTANT_FEATURES, CardEvents, PeerDecider, observe
from app.model_cache import cached_default_model
from app.settings import get_settings
from features import card
from features.card import CARD_FEATURE_NAMES, CardState
from features.transaction import Transaction
from features.validation import decode_transaction
from models.pipeline import SourceRecord
from models.synthetic import encode_record, generate

# exact in fraudscore (7d/30d are hourly buckets there, exact here)
EXACT = [
    name
    for name in CARD_FEATURE_NAMES
    if not name.endswith(("_7d", "_30d")) and name not in CONSTANT_FEATURES
]


def _traffic(count: int) -> list[Transaction]:
    txns = []
    for synthetic in generate(count, cards=20, seed=5):
        txn = decode_transaction(encode_record(synthetic.record), max_bytes=8192)
        assert isinstance(txn, Transaction)
        txns.append(txn)
    return txns


def test_exact_features_agree_with_fraudscore() -> None:
    peers: dict[str, CardEvents] = {}
    ours: dict[str, CardState] = {}
    compared = 0
    for txn in _traffic(600):
        events, values = observe(peers.get(txn.card_id, []), txn)
        peers[txn.card_id] = events
        state, vector = card.observe(ours.get(txn.card_id), txn)
        ours[txn.card_id] = state
        expected = dict(zip(CARD_FEATURE_NAMES, vector, strict=True))
        assert {n: values[n] for n in EXACT} == pytest.approx({n: expected[n] for n in EXACT})
        compared += 1
    assert compared == 600
    assert any(len(events) > 3 for events in peers.values())  # windows did hold history


def test_old_events_leave_the_state() -> None:
    first, *_ = _traffic(1)
    month_later = msgspec.structs.replace(
        first, event_time_ms=first.event_time_ms + 31 * 86_400_000, transaction_id="later"
    )
    events, _ = observe([], first)
    events, values = observe(events, month_later)
    assert [e[0] for e in events] == [month_later.event_time_ms]
    assert values["txn_count_30d"] == 1.0
    assert values["seconds_since_prev"] == card.NO_PREVIOUS_S


def test_decision_record_names_the_transaction() -> None:
    # the default model the worker uses, from the cache every worker test shares
    decider = PeerDecider(cached_default_model(get_settings().model_cache_dir))
    txn = _traffic(1)[0]
    _, values = observe([], txn)
    raw = decider.decide(txn, values, SourceRecord("in", 2, 17, None, b"{}"))
    decided = msgspec.json.decode(raw)
    assert decided["transaction_id"] == txn.transaction_id
    assert decided["decision"] in {"APPROVE", "REVIEW", "DECLINE"}
    assert decided["source"] == {"topic": "in", "partition": 2, "offset": 17}
    assert decided["features"]["amount_zscore"] == 0.0
