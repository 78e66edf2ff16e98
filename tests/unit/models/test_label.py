"""The labels topic's records: validated like transactions, one reason code per problem, no
card number echoed; and a decision's merchant features come from its day's snapshot."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from features.merchant import MERCHANT_FEATURE_NAMES, LabelFact, MemorySnapshots, snapshot
from features.schema import FEATURE_NAMES
from features.stream import MemoryCardStore
from features.validation import Rejection
from features.windows import DAY_MS
from models.label import FRAUD, LabelRecord, decode_label
from models.pipeline import Pipeline, SourceRecord
from models.policy import Policy
from models.scorer import Scorer

GOOD: dict[str, Any] = {
    "transaction_id": "tx_1",
    "card_id": "tok_abc",
    "merchant_id": "m_shop",
    "label": "fraud",
    "event_time": "2026-01-01T09:30:00.000Z",
    "reported_at": 1_768_000_000_000,
}


def _decode(key: bytes | None = b"tok_abc", **changes: Any) -> LabelRecord | Rejection:
    record = {k: v for k, v in {**GOOD, **changes}.items() if v is not None}
    return decode_label(msgspec.json.encode(record), key, max_bytes=8192)


def test_a_valid_label() -> None:
    assert _decode() == LabelRecord(
        "tx_1", "tok_abc", "m_shop", FRAUD, 1_767_259_800_000, 1_768_000_000_000
    )
    label = _decode(label="genuine")
    assert isinstance(label, LabelRecord)
    assert label.fact() == LabelFact("tx_1", "m_shop", False, 1_767_259_800_000, 1_768_000_000_000)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"label": "chargeback"}, "invalid_field"),
        ({"label": None}, "missing_field"),
        ({"merchant_id": ""}, "invalid_field"),
        ({"card_id": "4111111111111111"}, "pan_detected"),
        ({"transaction_id": "x4111111111111111"}, "pan_detected"),
        ({"event_time": "yesterday"}, "invalid_event_time"),
        ({"reported_at": "2026-01-01T00:00:00"}, "invalid_event_time"),
        ({"reported_at": "2025-12-31T00:00:00Z"}, "invalid_field"),  # before the event
    ],
)
def test_invalid_labels_are_rejected_with_a_reason(changes: dict[str, Any], reason: str) -> None:
    rejected = _decode(**changes)
    assert isinstance(rejected, Rejection)
    assert rejected.reason == reason
    assert "4111111111111111" not in rejected.detail


def test_malformed_oversized_and_mis_keyed_labels_are_rejected() -> None:
    malformed = decode_label(b"not json", b"k", max_bytes=8192)
    assert isinstance(malformed, Rejection)
    assert malformed.reason == "malformed_json"
    big = decode_label(b" " * 9000, b"k", max_bytes=8192)
    assert isinstance(big, Rejection)
    assert big.reason == "oversized"
    other = _decode(key=b"tok_other")
    assert isinstance(other, Rejection)
    assert other.reason == "key_mismatch"


def test_decisions_carry_their_merchants_risk_and_the_snapshot_version() -> None:
    day = 1_767_259_800_000 // DAY_MS
    labels = [
        LabelFact(f"old{i}", "m_shop", i < 2, (day - 8) * DAY_MS, (day - 3) * DAY_MS)
        for i in range(4)
    ]
    merchants = MemorySnapshots([snapshot(labels, day)])
    x = np.zeros((2, len(FEATURE_NAMES)))
    scorer = Scorer(DummyClassifier().fit(x, [0, 1]), "dummy", FEATURE_NAMES)
    pipeline = Pipeline(scorer, Policy(), 8192, merchants=merchants)

    def decided(merchant: str, event_time: str) -> Any:
        value = {
            "transaction_id": f"t-{merchant}-{event_time}",
            "card_id": "tok_abc",
            "amount": "10.00",
            "currency": "USD",
            "merchant_id": merchant,
            "merchant_category": "5411",
            "event_time": event_time,
        }
        record = SourceRecord("tx", 0, 0, b"tok_abc", msgspec.json.encode(value))
        [(_, decision)] = pipeline.run([record], MemoryCardStore()).decisions
        return decision

    risky = decided("m_shop", "2026-01-01T09:30:00.000Z")
    assert risky.merchant_risk_version == "2026-01-01/d7"
    got = {name: risky.features[name] for name in MERCHANT_FEATURE_NAMES}
    assert got == {
        "merchant_labelled_1d": 4.0,
        "merchant_fraud_share_1d": 0.5,
        "merchant_labelled_7d": 4.0,
        "merchant_fraud_share_7d": 0.5,
        "merchant_labelled_30d": 4.0,
        "merchant_fraud_share_30d": 0.5,
    }
    unknown = decided("m_other", "2026-01-01T10:00:00.000Z")
    assert unknown.merchant_risk_version == "2026-01-01/d7"
    assert all(unknown.features[name] == 0.0 for name in MERCHANT_FEATURE_NAMES)
    before = decided("m_shop", "2025-12-31T10:00:00.000Z")  # no snapshot that old
    assert before.merchant_risk_version is None
    assert all(before.features[name] == 0.0 for name in MERCHANT_FEATURE_NAMES)
