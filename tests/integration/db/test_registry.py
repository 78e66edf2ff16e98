"""The registry's state machine (app/db/registry.py) on SQLite and PostgreSQL: promote,
shadow, unshadow, rollback and policy versions; what a worker reads; the audit log."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import Engine

from app.db import migration, registry
from app.db.errors import RegistryError
from app.db.registry import ArtefactRef
from app.db.session import registry_session
from app.settings import FraudscoreSettings
from models.artefact import METADATA_FILE
from models.errors import ArtefactError
from models.policy import Policy

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(db_settings: FraudscoreSettings, engine: Engine) -> FraudscoreSettings:
    migration.upgrade(engine)
    return db_settings


@pytest.fixture
def registered(settings: FraudscoreSettings, artefacts: dict[str, Path]) -> None:
    with registry_session(settings) as session:
        for version in ("m1", "m2", "m3"):
            registry.register_model(session, artefacts[version], "alice")


def _statuses(settings: FraudscoreSettings) -> dict[str, str]:
    with registry_session(settings) as session:
        return {row.version: row.status.value for row in registry.models(session)}


def _selection(settings: FraudscoreSettings) -> tuple[str | None, str | None, str | None]:
    with registry_session(settings) as session:
        s = registry.read_selection(session)
    model, shadow = (None if ref is None else ref.version for ref in (s.model, s.shadow))
    return model, shadow, None if s.policy is None else s.policy.version


def _register(settings: FraudscoreSettings, directory: Path) -> None:
    with registry_session(settings) as session:
        registry.register_model(session, directory, "bob")


def _do(settings: FraudscoreSettings, change: str, *args: str) -> None:
    with registry_session(settings) as session:
        getattr(registry, change)(session, *args, "bob")


@pytest.mark.usefixtures("registered")
def test_promote_shadow_and_roll_back(settings: FraudscoreSettings) -> None:
    assert _statuses(settings) == {"m1": "candidate", "m2": "candidate", "m3": "candidate"}
    assert _selection(settings) == (None, None, None)
    _do(settings, "promote", "m1")
    _do(settings, "shadow", "m2")
    assert _statuses(settings) == {"m1": "active", "m2": "shadow", "m3": "candidate"}
    assert _selection(settings) == ("m1", "m2", None)
    _do(settings, "shadow", "m3")  # replaces the shadow: m2 is a candidate again
    assert _statuses(settings) == {"m1": "active", "m2": "candidate", "m3": "shadow"}
    _do(settings, "promote", "m3")  # the shadow goes live; no shadow left
    assert _statuses(settings) == {"m1": "retired", "m2": "candidate", "m3": "active"}
    _do(settings, "promote", "m2")
    assert _selection(settings) == ("m2", None, None)
    _do(settings, "rollback")  # m2 undone: m3 is back
    assert _statuses(settings) == {"m1": "retired", "m2": "retired", "m3": "active"}
    _do(settings, "rollback")  # m3 undone: m1 is back
    assert _statuses(settings) == {"m1": "active", "m2": "retired", "m3": "retired"}
    with pytest.raises(RegistryError, match="first model promoted"):
        _do(settings, "rollback")
    _do(settings, "promote", "m3")  # a retired model can come back
    _do(settings, "rollback")
    assert _selection(settings) == ("m1", None, None)


@pytest.mark.usefixtures("registered")
@pytest.mark.parametrize(
    ("steps", "change", "error"),
    [
        ([], ("promote", "m9"), "no model 'm9' in the registry .registered: m1, m2, m3"),
        ([], ("rollback",), "nothing to roll back"),
        ([], ("unshadow",), "no model is in shadow"),
        ([("promote", "m1")], ("promote", "m1"), "already active"),
        ([("promote", "m1")], ("shadow", "m1"), "is active: a shadow model is scored beside"),
        ([("shadow", "m2")], ("shadow", "m2"), "already the shadow model"),
    ],
)
def test_changes_that_are_refused_say_why_and_change_nothing(
    settings: FraudscoreSettings,
    steps: list[tuple[str, ...]],
    change: tuple[str, ...],
    error: str,
) -> None:
    for step in steps:
        _do(settings, *step)
    before = _statuses(settings)
    with pytest.raises(RegistryError, match=error):
        _do(settings, *change)
    assert _statuses(settings) == before


def test_register_refuses_a_duplicate_version_and_other_features(
    settings: FraudscoreSettings, artefacts: dict[str, Path], tmp_path: Path
) -> None:
    with registry_session(settings) as session:
        row = registry.register_model(session, artefacts["m1"], "alice")
        assert (row.status.value, row.registered_by, row.metrics["model"]["auc_roc"]) == (
            "candidate",
            "alice",
            0.9,
        )
    with pytest.raises(RegistryError, match="already registered"):
        _register(settings, artefacts["m1"])
    other = tmp_path / "other-features"
    other.mkdir()
    metadata = json.loads((artefacts["m2"] / METADATA_FILE).read_text())
    (other / METADATA_FILE).write_text(json.dumps(metadata | {"feature_schema_version": 1}))
    with pytest.raises(ArtefactError, match="trained on feature schema v1"):
        _register(settings, other)
    assert _statuses(settings) == {"m1": "candidate"}


@pytest.mark.usefixtures("registered")
def test_promote_refuses_an_artefact_changed_since_registration(
    settings: FraudscoreSettings, artefacts: dict[str, Path], tmp_path: Path
) -> None:
    ref = ArtefactRef("m2", artefacts["m2"], "f" * 64)
    with pytest.raises(ArtefactError, match="no longer the model 'm2'"):
        registry.load_registered(ref)
    moved = tmp_path / "m3-moved"
    artefacts["m3"].rename(moved)
    try:
        with pytest.raises(ArtefactError, match="no model artefact at"):
            _do(settings, "promote", "m3")
    finally:
        moved.rename(artefacts["m3"])
    assert _statuses(settings)["m3"] == "candidate"


def test_policy_versions_one_active(settings: FraudscoreSettings) -> None:
    configured = Policy(review_threshold=0.6, decline_threshold=0.9)
    with registry_session(settings) as session:
        first = registry.set_policy(session, "carol", configured, {"review_threshold": 0.4})
        assert first.version == "policy-1"
    with registry_session(settings) as session:
        second = registry.set_policy(
            session, "dave", configured, {"decline_threshold": 0.8, "velocity_count_above": 5}
        )
        assert second.version == "policy-2"
    with registry_session(settings) as session:
        active = registry.active_policy(session)
        assert active is not None
        assert registry.policy_of(active) == Policy(
            version="policy-2",
            review_threshold=0.4,  # kept from policy-1, not the configured 0.6
            decline_threshold=0.8,
            velocity_count_above=5,
        )
    for change, error in (
        ({"review_threshold": 0.95}, "review_threshold <= decline_threshold"),
        ({"review_threshold": 0.4}, "already has these values"),
    ):
        with pytest.raises(RegistryError, match=error), registry_session(settings) as session:
            registry.set_policy(session, "eve", configured, change)
    assert _selection(settings) == (None, None, "policy-2")


@pytest.mark.usefixtures("registered")
def test_every_change_is_in_the_admin_log(settings: FraudscoreSettings) -> None:
    _do(settings, "promote", "m1")
    _do(settings, "shadow", "m2")
    _do(settings, "promote", "m2")
    _do(settings, "rollback")
    with registry_session(settings) as session:
        registry.set_policy(session, "carol", Policy(), {"high_amount": 500.0})
        log = [
            (a.actor, a.action, a.model_version, a.policy_version, a.detail)
            for a in reversed(registry.admin_log(session, limit=100))
        ]
    assert [entry[:4] for entry in log] == [
        ("alice", "model.register", "m1", None),
        ("alice", "model.register", "m2", None),
        ("alice", "model.register", "m3", None),
        ("bob", "model.promote", "m1", None),
        ("bob", "model.shadow", "m2", None),
        ("bob", "model.promote", "m2", None),
        ("bob", "model.rollback", "m1", None),
        ("carol", "policy.set", None, "policy-1"),
    ]
    assert log[5][4] == {"replaced": "m1"}
    assert log[6][4] == {"rolled_back": "m2"}
    assert log[7][4] == {"replaced": "default-1", "high_amount": 500.0}
