"""The bench's output verifier: complete, unique, missing, duplicated and unexpected ids."""

from __future__ import annotations

from app.bench.verify import transaction_id, verdict

EXPECTED = [f"tx_{i}" for i in range(5)]


def test_exactly_one_record_per_id_is_complete_and_unique() -> None:
    result = verdict(EXPECTED, reversed(EXPECTED))
    assert (result.complete, result.unique, result.exact) == (True, True, True)
    assert (result.expected, result.total, result.distinct) == (5, 5, 5)
    assert str(result) == "complete, unique (5)"


def test_missing_ids_are_counted() -> None:
    result = verdict(EXPECTED, ["tx_0", "tx_2"])
    assert not result.complete
    assert result.unique
    assert (result.missing, result.distinct) == (3, 2)
    assert str(result) == "incomplete: 3 missing"


def test_duplicates_count_ids_and_extra_copies() -> None:
    result = verdict(EXPECTED, [*EXPECTED, "tx_1", "tx_1", "tx_3"])
    assert result.complete
    assert not result.unique
    assert (result.duplicated_ids, result.extra_copies, result.total) == (2, 3, 8)
    assert str(result) == "duplicated: 2 dup ids (+3 copies)"


def test_unexpected_and_unidentified_records_are_not_exact() -> None:
    result = verdict(EXPECTED, [*EXPECTED, "tx_99", None])
    assert result.complete
    assert not result.unique
    assert result.unexpected == 2
    assert str(result) == "duplicated: 2 unexpected"


def test_missing_and_duplicated_together() -> None:
    result = verdict(EXPECTED, ["tx_0", "tx_0", "tx_1"])
    assert str(result) == "incomplete+duplicated: 3 missing, 1 dup ids (+1 copies)"


def test_transaction_id_reads_decisions_and_copied_transactions() -> None:
    assert transaction_id(b'{"transaction_id":"tx_7","decision":"APPROVE"}') == "tx_7"
    assert transaction_id(b'{"card_id":"tok","transaction_id":"tx_8","amount":"1.00"}') == "tx_8"
    assert transaction_id(b"not json") is None
    assert transaction_id(b'{"decision":"APPROVE"}') is None
    assert transaction_id(None) is None
