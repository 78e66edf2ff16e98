"""``fraudscore audit reproduce`` with a real audit table (SQLite catalog), a real registry
(SQLite, migrated by Alembic) and a real trained model registered in it."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from app.cli import app
from app.process import settings_env
from app.reproduction import reproduce
from app.settings import FraudscoreSettings
from tests.support.artefact import make_artefact
from tests.support.reproduction import audit_rows, decide_and_audit
from tests.support.settings import migrated_registry


@pytest.fixture
def settings(tmp_path: Path) -> Iterator[FraudscoreSettings]:
    settings = FraudscoreSettings(
        var_dir=tmp_path / "var",
        database_url=SecretStr(f"sqlite:///{tmp_path / 'registry.db'}"),
    )
    with migrated_registry(settings):
        yield settings


def _reproduce(settings: FraudscoreSettings, *args: str) -> Result:
    env = {**settings_env(settings), "COLUMNS": "200"}
    return CliRunner().invoke(app, ["audit", "reproduce", *args], env=env)


@pytest.fixture(scope="module")
def artefact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_artefact(tmp_path_factory.mktemp("artefacts") / "m1", "m1", 20)


def test_recorded_decisions_are_reproduced_bit_for_bit(
    settings: FraudscoreSettings, artefact: Path
) -> None:
    decisions = decide_and_audit(settings, artefact)
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
    decisions = decide_and_audit(settings, artefact)
    original = next(d for d in decisions if d.decision != "APPROVE")
    nudged = msgspec.structs.replace(
        original, transaction_id="tampered-score", score=math.nextafter(original.score, 1.0)
    )
    approved = msgspec.structs.replace(
        original, transaction_id="tampered-decision", decision="APPROVE", reasons=()
    )
    audit_rows(settings, [nudged, approved])

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
    decisions = decide_and_audit(settings, artefact)
    unknown_model = msgspec.structs.replace(
        decisions[0], transaction_id="unknown-model", model_version="m7"
    )
    unknown_policy = msgspec.structs.replace(
        decisions[1], transaction_id="unknown-policy", policy_version="policy-9"
    )
    audit_rows(settings, [unknown_model, unknown_policy])
    for transaction_id, message in (
        ("unknown-model", "model 'm7' is not in the registry (registered: m1)"),
        ("unknown-policy", "policy 'policy-9' is not in the registry database"),
        ("no-such-transaction", "is not in the audit table"),
    ):
        result = _reproduce(settings, transaction_id)
        assert result.exit_code == 1, result.output
        assert message in result.output
        assert "NOT REPRODUCED" not in result.output
