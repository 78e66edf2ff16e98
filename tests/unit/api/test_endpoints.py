"""The endpoints' answers on a real registry (SQLite, migrated by Alembic) and a real audit
table (Iceberg, SQLite catalog) in tmp_path; nothing else running."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from app.api.auth import Role
from app.audit import open_audit_table
from app.db import registry
from app.db.engine import create_db_engine
from app.db.tables import MerchantRisk, MerchantRiskSnapshot
from app.settings import FraudscoreSettings
from models.pipeline import DecisionRecord
from sinks.iceberg import CommittedDecision
from tests.support.api import bearer, token
from tests.support.artefact import make_artefact
from tests.support.decisions import decisions_of

ANALYST = bearer(token(Role.ANALYST, subject="ann"))
ADMIN = bearer(token(Role.ADMIN, subject="adam"))
SERVICE = bearer(token(Role.SERVICE, subject="svc"))
NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)


def test_a_decision_comes_from_the_audit_table(
    client: TestClient, settings: FraudscoreSettings
) -> None:
    assert client.get("/v1/decisions/tx_1", headers=ANALYST).status_code == 503  # no table yet
    decisions = decisions_of(10, seed=3, partitions=1)
    table = open_audit_table(settings)
    read = [CommittedDecision(d, "decisions", 0, i, None) for i, d in enumerate(decisions)]
    staged = table.stage(read, NOW)
    assert staged is not None
    assert table.commit(staged) is not None
    wanted = decisions[7]
    response = client.get(f"/v1/decisions/{wanted.transaction_id}", headers=ANALYST)
    assert response.status_code == 200, response.text
    body = response.json()
    assert msgspec.convert(body["decision"], DecisionRecord) == wanted
    assert body["committed"] == {"topic": "decisions", "partition": 0, "offset": 7}
    assert datetime.fromisoformat(body["ingested_at"]) == NOW
    missing = client.get("/v1/decisions/tx_unknown", headers=ANALYST)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"


def _snapshot(session: Session, day: int, counts: dict[str, tuple[int, ...]]) -> None:
    row = MerchantRiskSnapshot(
        version=f"day-{day}/d7", day=day, delay_days=7, labels_reported_before=NOW,
        window_end=NOW, merchants=len(counts), created_at=NOW,
    )  # fmt: skip
    session.add(row)
    session.flush()
    for merchant, (n1, f1, n7, f7, n30, f30) in counts.items():
        session.add(
            MerchantRisk(
                snapshot_id=row.id, merchant_id=merchant, labelled_1d=n1, fraud_1d=f1,
                labelled_7d=n7, fraud_7d=f7, labelled_30d=n30, fraud_30d=f30,
            )
        )  # fmt: skip


def test_merchant_risk_is_from_the_newest_snapshot(
    client: TestClient, settings: FraudscoreSettings
) -> None:
    none_yet = client.get("/v1/merchants/m_1/risk", headers=SERVICE)
    assert none_yet.status_code == 404
    assert "no merchant-risk snapshot" in none_yet.json()["error"]["message"]
    engine = create_db_engine(settings)
    with Session(engine) as session, session.begin():
        _snapshot(session, 20_500, {"m_1": (9, 9, 9, 9, 9, 9), "m_2": (1, 1, 1, 1, 1, 1)})
        _snapshot(session, 20_501, {"m_1": (4, 1, 10, 5, 20, 5)})
    engine.dispose()
    response = client.get("/v1/merchants/m_1/risk", headers=ANALYST)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["snapshot_version"] == "day-20501/d7"
    assert body["counts"] == {
        "labelled_1d": 4, "fraud_1d": 1, "labelled_7d": 10, "fraud_7d": 5,
        "labelled_30d": 20, "fraud_30d": 5,
    }  # fmt: skip
    assert body["features"]["merchant_fraud_share_1d"] == 0.25
    assert body["features"]["merchant_labelled_30d"] == 20.0
    absent = client.get("/v1/merchants/m_2/risk", headers=SERVICE)  # only in the older one
    assert absent.status_code == 404
    assert "day-20501/d7" in absent.json()["error"]["message"]


def _admin_log(settings: FraudscoreSettings) -> list[tuple[str, str]]:
    engine = create_db_engine(settings)
    with Session(engine) as session:
        rows = [(a.actor, a.action) for a in registry.admin_log(session, 10)]
    engine.dispose()
    return rows


def test_models_are_listed_and_promoted_by_an_admin_in_the_admin_log(
    client: TestClient, settings: FraudscoreSettings, tmp_path: Path
) -> None:
    assert client.get("/v1/models", headers=ANALYST).json() == []
    engine = create_db_engine(settings)
    with Session(engine) as session, session.begin():
        for version in ("m1", "m2"):
            registry.register_model(session, make_artefact(tmp_path / version, version, 5), "t")
    engine.dispose()
    listed = client.get("/v1/models", headers=ADMIN).json()
    assert [(m["version"], m["status"]) for m in listed] == [
        ("m1", "candidate"), ("m2", "candidate"),
    ]  # fmt: skip
    assert client.post("/v1/models/m1/promote", headers=ADMIN).json() == {
        "active": "m1", "replaced": None,
    }  # fmt: skip
    assert client.post("/v1/models/m2/promote", headers=ADMIN).json() == {
        "active": "m2", "replaced": "m1",
    }  # fmt: skip
    assert client.get("/v1/models/m1", headers=ANALYST).json()["status"] == "retired"
    again = client.post("/v1/models/m2/promote", headers=ADMIN)
    assert (again.status_code, again.json()["error"]["code"]) == (409, "conflict")
    assert client.post("/v1/models/m9/promote", headers=ADMIN).status_code == 404
    assert client.get("/v1/models/m9", headers=ANALYST).status_code == 404
    assert _admin_log(settings)[:2] == [("adam", "model.promote"), ("adam", "model.promote")]


def test_an_admin_rolls_back_and_runs_a_shadow_model_in_the_admin_log(
    client: TestClient, settings: FraudscoreSettings, tmp_path: Path
) -> None:
    engine = create_db_engine(settings)
    with Session(engine) as session, session.begin():
        for version in ("m1", "m2", "m3"):
            registry.register_model(session, make_artefact(tmp_path / version, version, 5), "t")
    engine.dispose()
    nothing = client.post("/v1/models/rollback", headers=ADMIN)
    assert (nothing.status_code, nothing.json()["error"]["code"]) == (409, "conflict")
    for version in ("m1", "m2"):
        assert client.post(f"/v1/models/{version}/promote", headers=ADMIN).status_code == 200
    assert client.post("/v1/models/rollback", headers=ADMIN).json() == {
        "rolled_back": "m2", "active": "m1",
    }  # fmt: skip
    assert client.get("/v1/models/m1", headers=ANALYST).json()["status"] == "active"
    assert client.get("/v1/models/m2", headers=ANALYST).json()["status"] == "retired"

    assert client.post("/v1/models/m3/shadow", headers=ADMIN).json() == {
        "shadow": "m3", "replaced": None,
    }  # fmt: skip
    assert client.get("/v1/models/m3", headers=ANALYST).json()["status"] == "shadow"
    active = client.post("/v1/models/m1/shadow", headers=ADMIN)
    assert (active.status_code, active.json()["error"]["code"]) == (409, "conflict")
    assert client.post("/v1/models/m9/shadow", headers=ADMIN).status_code == 404
    assert client.post("/v1/models/unshadow", headers=ADMIN).json() == {
        "shadow": None, "replaced": "m3",
    }  # fmt: skip
    assert client.get("/v1/models/m3", headers=ANALYST).json()["status"] == "candidate"
    assert client.post("/v1/models/unshadow", headers=ADMIN).status_code == 409
    assert _admin_log(settings)[:5] == [
        ("adam", "model.unshadow"), ("adam", "model.shadow"), ("adam", "model.rollback"),
        ("adam", "model.promote"), ("adam", "model.promote"),
    ]  # fmt: skip


def test_policies_are_set_by_an_admin_in_the_admin_log(
    client: TestClient, settings: FraudscoreSettings
) -> None:
    assert client.get("/v1/policies", headers=ANALYST).json() == []
    created = client.post("/v1/policies", json={"review_threshold": 0.4}, headers=ADMIN)
    assert created.status_code == 201, created.text
    assert created.json()["version"] == "policy-1"
    assert created.json()["review_threshold"] == 0.4
    assert created.json()["created_by"] == "adam"
    assert client.get("/v1/policies/policy-1", headers=ANALYST).json()["active"] is True
    assert client.get("/v1/policies/policy-9", headers=ANALYST).status_code == 404
    inconsistent = {"review_threshold": 0.9, "decline_threshold": 0.5}
    refused = client.post("/v1/policies", json=inconsistent, headers=ADMIN)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "conflict")
    unchanged = client.post("/v1/policies", json={"review_threshold": 0.4}, headers=ADMIN)
    assert "nothing to set" in unchanged.json()["error"]["message"]
    assert client.post("/v1/policies", json={}, headers=ADMIN).status_code == 409
    assert _admin_log(settings) == [("adam", "policy.set")]


@pytest.mark.parametrize(
    "body",
    [
        {"review_threshold": "0.4"},  # strict: no number in a string
        {"review_threshold": 1.5},
        {"high_amount": 100, "surprise": 1},
    ],
)
def test_a_policy_change_is_validated(client: TestClient, body: dict[str, object]) -> None:
    response = client.post("/v1/policies", json=body, headers=ADMIN)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["details"]
    assert all(set(detail) == {"loc", "message", "type"} for detail in error["details"])
