"""Comparing recorded decisions with replayed ones (``fraudscore replay``'s pure part)."""

from __future__ import annotations

import math

import msgspec

from models.comparison import HISTORY_TRUNCATED, Difference, Kind, compare, fields_of
from models.pipeline import DecisionRecord, Source


def _decision(transaction_id: str, offset: int, **changes: object) -> DecisionRecord:
    record = DecisionRecord(
        transaction_id=transaction_id,
        card_id="tok_a",
        amount="12.34",
        currency="USD",
        merchant_id="m_1",
        event_time="2026-01-01T09:30:00.000Z",
        score=0.125,
        decision="APPROVE",
        reasons=(),
        model_version="m1",
        policy_version="p1",
        feature_schema_version=3,
        features={"amount": 12.34, "count_1h": 2.0},
        merchant_risk_version=None,
        late=False,
        source=Source("tx", 0, offset),
    )
    return msgspec.structs.replace(record, **changes)


def test_identical_records_have_no_differences() -> None:
    records = [_decision("t1", 0), _decision("t2", 1)]
    result = compare(records, list(records))
    assert result.identical_all
    assert result.counts() == {
        "replayed": 2,
        "compared": 2,
        "identical": 2,
        "different": 0,
        "unproven": 0,
        "missing_in_audit": 0,
        "missing_in_replay": 0,
        "duplicates": 0,
    }


def test_each_differing_field_is_listed_with_both_values() -> None:
    recorded = _decision("t1", 0)
    replayed = _decision(
        "t1",
        0,
        score=math.nextafter(0.125, 1.0),  # one ulp: still a difference
        decision="REVIEW",
        reasons=("velocity", "amount"),
        features={"amount": 12.34, "count_1h": 3.0},
        source=Source("tx", 0, 7),
    )
    result = compare([recorded], [replayed])
    assert (result.different, result.identical) == (1, 0)
    assert [(d.field, d.recorded, d.replayed) for d in result.differences] == [
        ("score", "0.125", repr(math.nextafter(0.125, 1.0))),
        ("decision", "APPROVE", "REVIEW"),
        ("reasons", "", "velocity,amount"),
        ("source", "tx/0@0", "tx/0@7"),
        ("features.count_1h", "2.0", "3.0"),
    ]
    assert {d.kind for d in result.differences} == {Kind.DIFFERENT}


def test_a_feature_or_snapshot_on_one_side_only_is_a_difference() -> None:
    recorded = _decision("t1", 0, merchant_risk_version="2026-01-01/d7")
    replayed = _decision("t1", 0, features={"amount": 12.34})
    diffs = compare([recorded], [replayed]).differences
    assert [(d.field, d.recorded, d.replayed) for d in diffs] == [
        ("merchant_risk_version", "2026-01-01/d7", None),
        ("features.count_1h", "2.0", None),
    ]


def test_missing_and_duplicated_transactions_are_counted_and_listed() -> None:
    recorded = [_decision("only-audited", 0), _decision("twice", 1), _decision("twice", 1)]
    replayed = [_decision("only-replayed", 2), _decision("twice", 1)]
    result = compare(recorded, replayed)
    assert (result.missing_in_audit, result.missing_in_replay, result.duplicates) == (1, 1, 1)
    assert (result.compared, result.replayed) == (0, 2)
    assert not result.identical_all
    assert result.differences == (
        Difference(
            "only-audited", Kind.MISSING_IN_REPLAY, "decision", "APPROVE (0.125), tx/0@0", "-"
        ),
        Difference(
            "only-replayed", Kind.MISSING_IN_AUDIT, "decision", "-", "APPROVE (0.125), tx/0@2"
        ),
        Difference("twice", Kind.DUPLICATE, "records", "2", "1"),
    )


def test_a_caveat_turns_a_mismatch_into_an_unproven_difference_not_a_match() -> None:
    recorded = [_decision("t1", 0), _decision("t2", 1)]
    replayed = [_decision("t1", 0, score=0.5), _decision("t2", 1)]
    caveats = {"t1": HISTORY_TRUNCATED, "t2": HISTORY_TRUNCATED}
    result = compare(recorded, replayed, caveats)
    assert (result.different, result.unproven, result.identical) == (0, 1, 1)
    assert [(d.kind, d.field) for d in result.differences] == [(HISTORY_TRUNCATED, "score")]
    assert not result.identical_all


def test_fields_are_flat_texts() -> None:
    fields = fields_of(_decision("t1", 3, late=True, reasons=("a", "b")))
    assert fields["late"] == "true"
    assert fields["reasons"] == "a,b"
    assert fields["source"] == "tx/0@3"
    assert fields["features.amount"] == "12.34"
    assert fields["shadow_score"] is None


def test_a_caveat_excuses_a_missing_record_but_not_a_duplicate() -> None:
    recorded = [_decision("deleted-input", 0), _decision("twice", 1), _decision("twice", 1)]
    caveats = dict.fromkeys(("deleted-input", "twice"), HISTORY_TRUNCATED)
    result = compare(recorded, [_decision("twice", 1)], caveats)
    assert (result.unproven, result.missing_in_replay, result.duplicates) == (1, 0, 1)
    assert [d.kind for d in result.differences] == [HISTORY_TRUNCATED, Kind.DUPLICATE]
