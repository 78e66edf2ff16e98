"""The worker's side of the registry (app/live_pipeline.py), on SQLite and PostgreSQL: what
it runs at start, the pipelines it offers after a change, and what it does with an artefact
it must refuse or a registry it cannot read. (The real worker on the real broker:
tests/integration/test_hot_swap.py.)"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, create_engine

from app.db import migration, registry
from app.db.engine import create_db_engine
from app.db.session import registry_session
from app.live_pipeline import LivePipeline
from app.settings import FraudscoreSettings
from models.artefact import METADATA_FILE
from models.pipeline import Pipeline
from models.policy import Policy

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(
    db_settings: FraudscoreSettings, engine: Engine, artefacts: dict[str, Path], tmp_path: Path
) -> FraudscoreSettings:
    """A migrated registry with m1 to m3 registered (copies: tests may damage them); the
    configured model is m1's artefact, so nothing trains the default model."""
    migration.upgrade(engine)
    with registry_session(db_settings) as session:
        for version, source in artefacts.items():
            registry.register_model(session, shutil.copytree(source, tmp_path / version), "t")
    return db_settings.model_copy(
        update={"model_path": artefacts["m1"], "review_threshold": 0.3, "registry_poll_ms": 50}
    )


def _change(settings: FraudscoreSettings, change: str, *args: str) -> None:
    with registry_session(settings) as session:
        getattr(registry, change)(session, *args, "t")


def _versions(pipeline: Pipeline) -> tuple[str, str | None, str]:
    shadow = None if pipeline.shadow is None else pipeline.shadow.version
    return pipeline.scorer.version, shadow, pipeline.policy.version


def _poll(live: LivePipeline) -> Pipeline | None:
    live.poll()
    return live.take()


def test_follows_promotions_shadows_and_policies(settings: FraudscoreSettings) -> None:
    live = LivePipeline(settings, create_db_engine(settings))
    try:
        assert _versions(live.current) == ("m1", None, "default-1")  # nothing in the registry
        assert live.current.policy.review_threshold == 0.3  # the configured thresholds
        assert _poll(live) is None
        _change(settings, "promote", "m2")
        _change(settings, "shadow", "m3")
        swapped = _poll(live)
        assert swapped is not None
        assert _versions(swapped) == _versions(live.current) == ("m2", "m3", "default-1")
        assert _poll(live) is None  # offered once
        with registry_session(settings) as session:
            registry.set_policy(session, "t", Policy(), {"decline_threshold": 0.7})
        after_policy = _poll(live)
        assert after_policy is not None
        assert _versions(after_policy) == ("m2", "m3", "policy-1")
        assert after_policy.scorer is swapped.scorer  # not loaded again
        shadow = swapped.shadow
        _change(settings, "promote", "m3")
        promoted = _poll(live)
        assert promoted is not None
        assert _versions(promoted) == ("m3", None, "policy-1")
        assert promoted.scorer is shadow  # the shadow's loaded model goes live as it is
        _change(settings, "rollback")
        rolled_back = _poll(live)
        assert rolled_back is not None
        assert _versions(rolled_back) == ("m2", None, "policy-1")
    finally:
        live.close()


def test_starts_with_the_registry_selection(settings: FraudscoreSettings) -> None:
    _change(settings, "promote", "m3")
    _change(settings, "shadow", "m2")
    live = LivePipeline(settings, create_db_engine(settings))
    live.close()
    assert _versions(live.current) == ("m3", "m2", "default-1")


def test_keeps_its_model_when_the_promoted_artefact_is_refused(
    settings: FraudscoreSettings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _change(settings, "promote", "m2")
    live = LivePipeline(settings, create_db_engine(settings))
    try:
        _change(settings, "promote", "m3")
        # as if a worker of another feature schema read the registry
        metadata = tmp_path / "m3" / METADATA_FILE
        metadata.write_text(json.dumps(json.loads(metadata.read_text()) | {"feature_names": []}))
        with caplog.at_level(logging.ERROR, logger="app.live_pipeline"):
            assert _poll(live) is None
            assert _poll(live) is None  # refused once, not reloaded every poll
        assert _versions(live.current) == ("m2", None, "default-1")
        refusals = [r.getMessage() for r in caplog.records]
        assert len(refusals) == 1
        assert "refusing the registry's active model m3, keeping the one in use" in refusals[0]
        assert "was trained on feature schema" in refusals[0]
        _change(settings, "shadow", "m1")  # the registry moves on: still m2 decides
        shadowed = _poll(live)
        assert shadowed is not None
        assert _versions(shadowed) == ("m2", "m1", "default-1")
    finally:
        live.close()


@pytest.mark.parametrize(
    ("database", "level"),
    [
        ("never-migrated.db", logging.INFO),  # the zero-setup default: nothing is wrong
        ("not-a-directory/registry.db", logging.WARNING),  # a fault: say so
    ],
)
def test_an_unreadable_registry_leaves_the_configured_model(
    settings: FraudscoreSettings,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    database: str,
    level: int,
) -> None:
    (tmp_path / "not-a-directory").write_text("a file where a directory should be")
    unreadable = settings.model_copy(
        update={"database_url": SecretStr(f"sqlite:///{tmp_path / database}")}
    )
    engine = create_engine(unreadable.sql_url)  # create_db_engine would make the directory
    with caplog.at_level(logging.INFO, logger="app.live_pipeline"):
        live = LivePipeline(unreadable, engine)
        try:
            assert _poll(live) is None
        finally:
            live.close()
    assert _versions(live.current) == ("m1", None, "default-1")
    said = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert len(said) == 1  # said once, not at every poll
    assert said[0][0] == level
    assert "cannot read the model registry" in said[0][1]
    assert "fraudscore db upgrade" in said[0][1]


def test_the_watcher_thread_delivers_a_promotion(settings: FraudscoreSettings) -> None:
    live = LivePipeline(settings, create_db_engine(settings))
    live.start()
    try:
        _change(settings, "promote", "m2")
        for _ in range(200):
            swapped = live.take()
            if swapped is not None:
                break
            time.sleep(0.05)
        assert swapped is not None
        assert _versions(swapped) == ("m2", None, "default-1")
    finally:
        live.close()
