"""The offline path over a list of transactions and over a pyarrow table: the same outcomes
as the worker's per-transaction step (``tests/unit/models/test_pipeline.py`` compares it with
the pipeline's decisions)."""

from __future__ import annotations

import msgspec
import pyarrow as pa

from features.card import CARD_FEATURE_NAMES
from features.offline import feature_rows, replay, replay_records
from features.stream import Outcome
from features.transaction import Transaction
from features.validation import decode_transaction
from models.pipeline import format_event_time
from tests.support.traffic import untidy


def _records() -> list[dict[str, object]]:
    records = [msgspec.json.decode(value) for _, value in untidy(1_500, cards=40, seed=3)]
    for record in records:  # one type per column: the RFC 3339 form of epoch milliseconds
        if isinstance(record["event_time"], int):
            record["event_time"] = format_event_time(record["event_time"])
    records.insert(100, {**records[99], "transaction_id": "bad", "currency": "ZZZ"})
    return records


def test_a_table_gives_one_row_per_record_with_the_records_outcome() -> None:
    records = _records()
    rows = feature_rows(pa.Table.from_pylist(records))
    outcomes = replay_records(records)
    assert [row["transaction_id"] for row in rows] == [r["transaction_id"] for r in records]
    assert rows[100]["rejected"] == "unknown_currency"
    assert rows[100]["amount"] is None
    valid = [r["transaction_id"] for r in records if r["transaction_id"] != "bad"]
    duplicates = sum(row["rejected"] == "duplicate_transaction" for row in rows)
    assert duplicates == len(valid) - len(set(valid)) > 0
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, Outcome) and outcome.vector is not None:
            assert tuple(row[name] for name in CARD_FEATURE_NAMES) == outcome.vector
            assert row["late"] == outcome.late
    assert any(row["late"] for row in rows)


def test_transactions_and_their_wire_records_give_the_same_outcomes() -> None:
    records = [r for r in _records() if r["transaction_id"] != "bad"]
    transactions = [decode_transaction(msgspec.json.encode(r), max_bytes=8192) for r in records]
    assert all(isinstance(txn, Transaction) for txn in transactions)
    assert replay(transactions) == replay_records(records)  # type: ignore[arg-type]
