"""``fraudscore db|model|policy`` round trips through the real CLI, on SQLite and PostgreSQL:
what an operator types, what they read back, and the errors they get."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from app.cli import app
from app.settings import FraudscoreSettings, get_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def cli(db_settings: FraudscoreSettings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    assert db_settings.database_url is not None
    monkeypatch.setenv("FRAUDSCORE_DATABASE_URL", db_settings.database_url.get_secret_value())
    monkeypatch.setenv("FRAUDSCORE_VAR_DIR", str(db_settings.var_dir))
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def _ok(cli: CliRunner, *args: str) -> str:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def _fails(cli: CliRunner, *args: str) -> Result:
    result = cli.invoke(app, list(args))
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    return result


def _models(cli: CliRunner) -> dict[str, dict[str, Any]]:
    return {m["version"]: m for m in json.loads(_ok(cli, "model", "list", "-o", "json"))}


def test_model_round_trip(cli: CliRunner, artefacts: dict[str, Path]) -> None:
    error = _fails(cli, "model", "list").stderr
    assert "run `fraudscore db upgrade`" in error
    _ok(cli, "db", "upgrade")
    for version in ("m1", "m2"):
        assert f"registered model {version}" in _ok(
            cli, "model", "register", str(artefacts[version]), "--actor", "alice"
        )
    assert "already registered" in _fails(cli, "model", "register", str(artefacts["m1"])).stderr
    assert "is active" in _ok(cli, "model", "promote", "m1", "--actor", "bob")
    assert "in shadow" in _ok(cli, "model", "shadow", "m2")
    models = _models(cli)
    assert {v: m["status"] for v, m in models.items()} == {"m1": "active", "m2": "shadow"}
    assert models["m1"]["registered_by"] == "alice"
    assert models["m1"]["status_changed_by"] == "bob"
    assert models["m2"]["artefact_path"] == str(artefacts["m2"].resolve())
    assert "replaces m1, now retired" in _ok(cli, "model", "promote", "m2")
    assert "rolled back m2: model m1 is back" in _ok(cli, "model", "rollback")
    assert {v: m["status"] for v, m in _models(cli).items()} == {"m1": "active", "m2": "retired"}
    assert "no model 'm7' in the registry (registered: m1, m2)" in (
        _fails(cli, "model", "promote", "m7").stderr
    )
    table = _ok(cli, "model", "list")
    for text in ("m1", "active", "by alice", "AUC ROC"):
        assert text in table
    log = json.loads(_ok(cli, "db", "log", "-o", "json"))
    assert [entry["action"] for entry in log][:2] == ["model.rollback", "model.promote"]


def test_policy_round_trip(cli: CliRunner) -> None:
    _ok(cli, "db", "upgrade")
    configured = json.loads(_ok(cli, "policy", "show", "-o", "json"))
    assert configured["version"] == "default-1"
    assert "policy policy-1 is active" in _ok(
        cli, "policy", "set", "--review-threshold", "0.3", "--velocity-count-above", "4"
    )
    shown = json.loads(_ok(cli, "policy", "show", "-o", "json"))
    assert shown == configured | {
        "version": "policy-1",
        "review_threshold": 0.3,
        "velocity_count_above": 4,
    }
    refused = _fails(cli, "policy", "set", "--decline-threshold", "0.2").stderr
    assert "refusing the policy: need 0 <= review_threshold <= decline_threshold" in refused
    nothing = cli.invoke(app, ["policy", "set"])
    assert nothing.exit_code == 2
    assert "give at least one value" in nothing.output
    assert "policy-1" in _ok(cli, "policy", "show")
