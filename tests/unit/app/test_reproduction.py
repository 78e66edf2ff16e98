"""``fraudscore audit reproduce`` with a real audit table (SQLite catalog), a real registry
(SQLite, migrated by Alembic) and a real trained model registered in it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from app.audit import open_audit_table
from app.cli import app
from app.db import registry
from app.db.session import registry_session
from app.live_pipeline import configured_policy
from app.process import settings_env
from app.reproduction import reproduce
from app.settings import FraudscoreSettings
from features.stream import MemoryCardStore
from models.pipeline import DecisionRecord, Pipeline, SourceRecord
from models.synthetic import encode_record, generate
from sinks.iceberg import CommittedDecision
from tests.support.artefact import make_artefact
from tests.support.settings import migrated_registry

INGESTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[FraudscoreSettings]:
    settings = FraudscoreSettings(
        var_dir=tmp_path / "var",
        database_url=SecretStr(f"sqlite:///{tmp_path / 'registry.db'}"),
    )
    with migrated_registry(settings):
        yield settings


def _decide_and_audit(settings: FraudscoreSettings, artefact: Path) -> list[DecisionRecord]:
    """Register and promote the model, set a policy that flags often, decide generated
    traffic with them as a worker does, and append the decisions to the audit table."""
    with registry_session(settings) as session:
        registry.register_model(session, artefact, "alice")
        registry.promote(session, "m1", "alice")
        changes = {"review_threshold": 0.02, "decline_threshold": 0.2}
        registry.set_policy(session, "alice", configured_policy(settings), changes)
        selection = registry.read_selection(session)
    assert selection.model is not None
    assert selection.policy is not None
    pipeline = Pipeline(registry.load_registered(selection.model), selection.policy, 8192)
    items = generate(400, cards=40, seed=3)
    records = [
        SourceRecord("tx", 0, n, i.key, encode_record(i.record)) for n, i in enumerate(items)
    ]
    decisions = [d for _, d in pipeline.run(records, MemoryCardStore()).decisions]
    _audit_rows(settings, decisions)
    return decisions


def _audit_rows(settings: FraudscoreSettings, decisions: list[DecisionRecord]) -> None:
    table = open_audit_table(settings)
    start = table.position().next_offset("decisions", 0)
    read = [CommittedDecision(d, "decisions", 0, start + i, None) for i, d in enumerate(decisions)]
    staged = table.stage(read, INGESTED)
    assert staged is not None
    assert table.commit(staged) is not None


def _reproduce(settings: FraudscoreSettings, *args: str) -> Result:
    env = {**settings_env(settings), "COLUMNS": "200"}
    return CliRunner().invoke(app, ["audit", "reproduce", *args], env=env)


@pytest.fixture(scope="module")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_artefact(tmp_path_factory.mktemp("artefacts") / "m1", "m1", 20)


def test_recorded_decisions_are_reproduced_bit_for_bit(
    settings: FraudscoreSettings, artefact: Path
) -> None:
    decisions = _decide_and_audit(settings, artefact)
    flagged = [d for d in decisions if d.decision != "APPROVE" and len(d.reasons) > 1]
    approved = [d for d in decisions if d.decision == "APPROVE"]
    assert flagged, "the sample needs REVIEW or DECLINE decisions with model reasons"
    assert approved
    for decision in (flagged[0], approved[0]):
        result = reproduce(settings, decision.transaction_id)
        assert result.identical, result.comparison().to_pylist()
        assert result.reproduced.score.hex() == decision.score.hex()
        assert result.reproduced.reasons == decision.reasons
        assert (result.model_version, result.policy_version) == ("m1", "policy-1")
        assert str(artefact.resolve()) in result.model_source
    shown = _reproduce(settings, flagged[0].transaction_id, "--day", flagged[0].event_time[:10])
    assert shown.exit_code == 0, shown.output
    assert "reproduced: score (bit for bit), decision and reasons are identical" in shown.output
    assert repr(flagged[0].score) in shown.output
    as_json = _reproduce(settings, flagged[0].transaction_id, "-o", "json")
    assert {row["field"]: row["identical"] for row in json.loads(as_json.stdout)} == {
        "score": True,
        "decision": True,
        "reasons": True,
    }


def test_a_tampered_row_is_not_reproduced(settings: FraudscoreSettings, artefact: Path) -> None:
    decisions = _decide_and_audit(settings, artefact)
    original = next(d for d in decisions if d.decision != "APPROVE")
    nudged = msgspec.structs.replace(
        original, transaction_id="tampered-score", score=math.nextafter(original.score, 1.0)
    )
    approved = msgspec.structs.replace(
        original, transaction_id="tampered-decision", decision="APPROVE", reasons=()
    )
    _audit_rows(settings, [nudged, approved])

    score = reproduce(settings, "tampered-score")
    assert not score.identical
    assert score.differences() == ["score"]  # one bit apart: still caught
    result = _reproduce(settings, "tampered-score")
    assert result.exit_code == 1
    assert "NOT REPRODUCED: score differ" in result.output
    assert reproduce(settings, "tampered-decision").differences() == ["decision", "reasons"]


def test_a_version_that_cannot_be_found_is_an_error_not_a_verdict(
    settings: FraudscoreSettings, artefact: Path
) -> None:
    decisions = _decide_and_audit(settings, artefact)
    unknown_model = msgspec.structs.replace(
        decisions[0], transaction_id="unknown-model", model_version="m7"
    )
    unknown_policy = msgspec.structs.replace(
        decisions[1], transaction_id="unknown-policy", policy_version="policy-9"
    )
    _audit_rows(settings, [unknown_model, unknown_policy])
    for transaction_id, message in (
        ("unknown-model", "model 'm7' is not in the registry (registered: m1)"),
        ("unknown-policy", "policy 'policy-9' is not in the registry database"),
        ("no-such-transaction", "is not in the audit table"),
    ):
        result = _reproduce(settings, transaction_id)
        assert result.exit_code == 1, result.output
        assert message in result.output
        assert "NOT REPRODUCED" not in result.output
