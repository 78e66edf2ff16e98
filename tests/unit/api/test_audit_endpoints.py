"""The analyst's audit endpoints over a real audit table in tmp_path: a card's decisions,
a day's counts, SQL and reproduction, each "as of" a time, a tag or a snapshot."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import pytest
from fastapi.testclient import TestClient

from app.api.application import create_app
from app.api.auth import Role
from app.audit import open_audit_table
from app.audit_query import run_sql
from app.settings import FraudscoreSettings
from models.pipeline import DecisionRecord
from sinks.errors import AuditQueryError
from sinks.iceberg import CommittedDecision
from tests.support.api import bearer, token
from tests.support.artefact import make_artefact
from tests.support.decisions import decisions_of
from tests.support.reproduction import decide_and_audit

ANALYST = bearer(token(Role.ANALYST, subject="ann"))
INGESTED = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def decisions(settings: FraudscoreSettings) -> list[DecisionRecord]:
    """200 decisions in the audit table, ingested at INGESTED in one checkpoint."""
    made = decisions_of(200, seed=5, cards=40, partitions=1)
    table = open_audit_table(settings)
    staged = table.stage(
        [CommittedDecision(d, "decisions", 0, i, None) for i, d in enumerate(made)], INGESTED
    )
    assert staged is not None
    assert table.commit(staged) is not None
    return made


def test_a_cards_decisions_oldest_first_and_as_of_before_they_were_ingested(
    client: TestClient, decisions: list[DecisionRecord]
) -> None:
    card, count = Counter(d.card_id for d in decisions).most_common(1)[0]
    assert count > 1
    url = f"/v1/audit/cards/{card}/decisions"
    body = client.get(url, headers=ANALYST).json()
    got = [msgspec.convert(d["decision"], DecisionRecord) for d in body["decisions"]]
    wanted = sorted((d for d in decisions if d.card_id == card), key=lambda d: d.event_time)
    assert [d.transaction_id for d in got] == [d.transaction_id for d in wanted]
    assert got == wanted
    before = (INGESTED - timedelta(seconds=1)).isoformat()
    earlier = client.get(url, params={"as_of": before}, headers=ANALYST)
    assert earlier.status_code == 200
    assert earlier.json()["decisions"] == []
    at = client.get(url, params={"as_of": INGESTED.isoformat()}, headers=ANALYST).json()
    assert len(at["decisions"]) == count


def test_a_cards_decisions_page_by_page_on_the_snapshot_the_first_page_read(
    client: TestClient, settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    card, count = Counter(d.card_id for d in decisions).most_common(1)[0]
    assert count > 4
    wanted = sorted(
        (d for d in decisions if d.card_id == card), key=lambda d: (d.event_time, d.transaction_id)
    )
    url = f"/v1/audit/cards/{card}/decisions"
    first = client.get(url, params={"limit": 2}, headers=ANALYST).json()
    # appended meanwhile, interleaved with the rows already paged: must not shift the pages
    more = [msgspec.structs.replace(d, transaction_id=f"{d.transaction_id}-b") for d in wanted]
    table = open_audit_table(settings)
    staged = table.stage(
        [CommittedDecision(d, "decisions", 0, 1000 + i, None) for i, d in enumerate(more)],
        INGESTED + timedelta(hours=1),
    )
    assert staged is not None
    assert table.commit(staged) is not None
    pages, body = [first], first
    while body["next_cursor"] is not None:
        params = {"limit": 2, "cursor": body["next_cursor"]}
        body = client.get(url, params=params, headers=ANALYST).json()
        pages.append(body)
    assert [len(p["decisions"]) for p in pages[:-1]] == [2] * (len(pages) - 1)
    got = [d["decision"]["transaction_id"] for p in pages for d in p["decisions"]]
    assert got == [d.transaction_id for d in wanted]
    again = client.get(url, params={"limit": 1000}, headers=ANALYST).json()  # a new question
    assert len(again["decisions"]) == 2 * count
    assert again["next_cursor"] is None

    other = client.get(
        f"/v1/audit/cards/{decisions[-1].card_id}x/decisions",
        params={"cursor": first["next_cursor"]},
        headers=ANALYST,
    )
    assert other.status_code == 422
    assert "another question" in other.json()["error"]["message"]
    forged = client.get(url, params={"cursor": "not-a-cursor"}, headers=ANALYST)
    assert forged.status_code == 422


def test_as_of_one_thing_only_and_an_unknown_tag_is_not_found(
    client: TestClient, decisions: list[DecisionRecord]
) -> None:
    url = f"/v1/audit/cards/{decisions[0].card_id}/decisions"
    both = client.get(
        url, params={"as_of": INGESTED.isoformat(), "tag": "day-2026-03-01"}, headers=ANALYST
    )
    assert both.status_code == 422
    assert both.json()["error"]["code"] == "invalid_request"
    unknown = client.get(url, params={"tag": "day-2020-01-01"}, headers=ANALYST)
    assert unknown.status_code == 404
    assert "audit maintain" in unknown.json()["error"]["message"]


def test_a_days_counts(client: TestClient, decisions: list[DecisionRecord]) -> None:
    day = decisions[0].event_time[:10]
    on_day = [d for d in decisions if d.event_time.startswith(day)]
    body = client.get(f"/v1/audit/days/{day}/stats", headers=ANALYST).json()
    counts = {(c["group"], c["value"]): c["count"] for c in body["counts"]}
    assert counts[("all", "decisions")] == len(on_day)
    for outcome, n in Counter(d.decision for d in on_day).items():
        assert counts[("decision", outcome)] == n


def test_sql_answers_read_only_queries_with_a_row_limit(
    client: TestClient, decisions: list[DecisionRecord]
) -> None:
    query = "SELECT decision, count(*) AS n, sum(amount) AS total FROM decisions GROUP BY 1"
    body = client.post("/v1/audit/sql", json={"query": query}, headers=ANALYST).json()
    assert body["columns"] == ["decision", "n", "total"]
    assert sum(row[1] for row in body["rows"]) == len(decisions)
    assert all(isinstance(row[2], str) for row in body["rows"])  # decimals as text
    limited = client.post(
        "/v1/audit/sql",
        json={"query": "SELECT transaction_id, event_time FROM decisions", "limit": 3},
        headers=ANALYST,
    ).json()
    assert len(limited["rows"]) == 3
    assert limited["truncated"] is True
    datetime.fromisoformat(limited["rows"][0][1])
    refused = client.post(
        "/v1/audit/sql", json={"query": "SELECT * FROM read_csv('/etc/passwd')"}, headers=ANALYST
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "invalid_query"


def test_a_recorded_decision_is_reproduced_with_its_registered_model(
    client: TestClient, settings: FraudscoreSettings, tmp_path: Path
) -> None:
    decisions = decide_and_audit(settings, make_artefact(tmp_path / "m1", "m1", 20))
    wanted = next(d for d in decisions if d.decision != "APPROVE")
    url = f"/v1/audit/transactions/{wanted.transaction_id}/reproduction"
    body = client.get(url, headers=ANALYST).json()
    assert body["identical"] is True, body
    assert (body["model_version"], body["policy_version"]) == ("m1", "policy-1")
    assert {f["field"]: f["recorded"] for f in body["fields"]}["score"] == repr(wanted.score)
    missing = client.get("/v1/audit/transactions/tx_unknown/reproduction", headers=ANALYST)
    assert missing.status_code == 404


def test_a_decision_whose_model_is_not_here_cannot_be_reproduced(
    client: TestClient, decisions: list[DecisionRecord]
) -> None:
    url = f"/v1/audit/transactions/{decisions[0].transaction_id}/reproduction"
    refused = client.get(url, headers=ANALYST)
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "cannot_reproduce"
    assert "model register" in refused.json()["error"]["message"]


ENDLESS = "SELECT count(*) FROM range(1000000000000) AS a(i) WHERE i % 7 = 3"


def test_a_request_past_its_deadline_is_answered_504_and_its_query_interrupted(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    hurried = settings.model_copy(update={"api_request_timeout_ms": 2000})
    with TestClient(create_app(hurried)) as client:
        slow = client.post(
            "/v1/audit/sql",
            json={"query": ENDLESS},
            headers={**ANALYST, "X-Request-ID": "slow-1"},
        )
        quick = client.post(
            "/v1/audit/sql", json={"query": "SELECT count(*) AS n FROM decisions"}, headers=ANALYST
        )
    assert slow.status_code == 504
    assert slow.json()["error"]["code"] == "timeout"
    assert slow.json()["error"]["request_id"] == "slow-1"
    assert slow.headers["X-Request-ID"] == "slow-1"
    assert quick.status_code == 200
    assert quick.json()["rows"] == [[len(decisions)]]


def test_an_audit_query_past_its_time_is_interrupted(
    settings: FraudscoreSettings, decisions: list[DecisionRecord]
) -> None:
    with pytest.raises(AuditQueryError, match=r"(?i)interrupt"):
        run_sql(settings, ENDLESS, timeout_s=0.2)


@pytest.mark.parametrize("as_of", ["0.0", "1700000000", "-1e3"])
def test_as_of_is_a_time_never_a_number_read_as_unix_time(
    client: TestClient, decisions: list[DecisionRecord], as_of: str
) -> None:
    url = f"/v1/audit/days/{decisions[0].event_time[:10]}/stats"
    refused = client.get(url, params={"as_of": as_of}, headers=ANALYST)
    assert refused.status_code == 422
    assert refused.json()["error"]["details"][0]["loc"][-1] == "as_of"
    body = {"query": "SELECT 1 AS one", "as_of": float(as_of)}
    assert client.post("/v1/audit/sql", json=body, headers=ANALYST).status_code == 422
