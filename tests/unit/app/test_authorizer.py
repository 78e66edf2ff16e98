"""The authorizer's bookkeeping, input checks and report, with no broker."""

from __future__ import annotations

import math

import msgspec
import pytest

from app.authorizer import Answer, AuthorizerResult, Ledger, single
from app.errors import AuthorizerError
from app.latency import LatencySummary, percentile
from app.pacer import paced_records
from app.settings import FraudscoreSettings
from models.policy import Outcome

TIMEOUT_S = 0.2


def _ledger() -> Ledger:
    return Ledger(TIMEOUT_S, Outcome.REVIEW)


def test_a_decision_in_time_is_the_answer_and_its_latency_is_recorded() -> None:
    ledger = _ledger()
    ledger.sent("t1", 10.0)
    assert ledger.seen("t1", "DECLINE", 10.012) == Answer("DECLINE", fell_back=False)
    assert (ledger.decided, ledger.fell_back, ledger.waiting) == (1, 0, 0)
    assert ledger.latencies_ms == [pytest.approx(12.0)]
    assert ledger.outcomes == {"DECLINE": 1}


def test_no_decision_in_the_window_gives_the_fallback_once_the_window_closed() -> None:
    ledger = _ledger()
    ledger.sent("t1", 10.0)
    ledger.sent("t2", 10.1)
    assert ledger.expire(10.2) == []  # t1's window closes at 10.2: not before
    assert ledger.expire(10.25) == [Answer("REVIEW", fell_back=True)]
    assert ledger.waiting == 1
    assert ledger.seen("t2", "APPROVE", 10.29) == Answer("APPROVE", fell_back=False)
    assert (ledger.decided, ledger.fell_back, ledger.late) == (1, 1, 0)
    assert ledger.outcomes == {"REVIEW": 1, "APPROVE": 1}
    assert ledger.answer_times_ms() == [pytest.approx(190.0), pytest.approx(200.0)]


def test_a_decision_after_the_window_is_late_and_the_fallback_stands() -> None:
    ledger = _ledger()
    ledger.sent("t1", 10.0)
    ledger.sent("t2", 10.0)
    # t1's decision is fetched after its window, before expire() noticed
    assert ledger.seen("t1", "DECLINE", 10.3) == Answer("REVIEW", fell_back=True)
    assert ledger.expire(10.3) == [Answer("REVIEW", fell_back=True)]
    assert ledger.seen("t2", "APPROVE", 10.4) is None  # fallback given already
    assert (ledger.decided, ledger.fell_back, ledger.late, ledger.waiting) == (0, 2, 2, 0)
    assert ledger.latencies_ms == []
    assert ledger.outcomes == {"REVIEW": 2}


def test_decisions_of_other_clients_are_ignored() -> None:
    ledger = _ledger()
    ledger.sent("t1", 10.0)
    assert ledger.seen("someone-else", "APPROVE", 10.01) is None
    assert (ledger.decided, ledger.late, ledger.waiting) == (0, 0, 1)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 1001)]
    summary = LatencySummary.of(list(reversed(values)))
    assert (summary.count, summary.p50, summary.p99, summary.p999, summary.max) == (
        1000,
        500.0,
        990.0,
        999.0,
        1000.0,
    )
    assert percentile([3.0], 99.9) == 3.0
    empty = LatencySummary.of([])
    assert math.isnan(empty.p50)
    assert empty.as_dict() == {"p50": None, "p99": None, "p99.9": None, "max": None}


def test_the_json_report_has_counts_and_percentiles() -> None:
    result = AuthorizerResult(
        sent=3,
        decided=2,
        fell_back=1,
        late=0,
        outcomes={"APPROVE": 2, "REVIEW": 0, "DECLINE": 1},
        timeout_ms=200,
        fallback="APPROVE",
        latency=LatencySummary.of([5.0, 7.0]),
        answer=LatencySummary.of([5.0, 7.0, 200.0]),
        elapsed_s=0.03,
        rate=100.0,
        max_behind_ms=0.5,
    )
    report = msgspec.json.decode(msgspec.json.encode(result.as_dict()))
    assert report["fell_back"] == 1
    assert report["latency_ms"] == {"p50": 5.0, "p99": 7.0, "p99.9": 7.0, "max": 7.0}
    assert report["answer_ms"]["max"] == 200.0
    assert report["outcomes"]["DECLINE"] == 1


def test_generated_traffic_can_be_split_between_loadgen_and_the_authorizer() -> None:
    whole = paced_records(60, cards=20, seed=4)
    assert paced_records(20, cards=20, seed=4, skip=40) == whole[40:]
    assert whole[0].transaction_id == "tx_4_000000000"


def test_one_transaction_from_the_command_line_is_checked_like_the_worker_checks_it() -> None:
    settings = FraudscoreSettings()
    record = {
        "transaction_id": "tx_cli_1",
        "card_id": "tok_kuoedknqwbnpqzlyhxcu",
        "amount": "12.34",
        "currency": "USD",
        "merchant_id": "m_qzhbfj",
        "merchant_category": "5411",
        "event_time": "2026-01-01T09:30:00.000Z",
    }
    paced = single(settings, msgspec.json.encode(record).decode())
    assert (paced.transaction_id, paced.key) == ("tx_cli_1", b"tok_kuoedknqwbnpqzlyhxcu")
    with_pan = {**record, "device_id": "4111111111111111"}
    with pytest.raises(AuthorizerError, match="not a valid transaction") as refused:
        single(settings, msgspec.json.encode(with_pan).decode())
    assert "4111111111111111" not in str(refused.value)
    with pytest.raises(AuthorizerError, match="not a valid transaction"):
        single(settings, "{not json")
