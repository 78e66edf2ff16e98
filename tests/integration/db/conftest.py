"""Every registry test runs on SQLite (a file in ``tmp_path``) and on PostgreSQL (a database
of its own on the session's server): ``db_settings`` is parametrized over both."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine

from app.db.engine import create_db_engine
from app.settings import FraudscoreSettings
from tests.support.artefact import make_artefact


@pytest.fixture(params=["sqlite", "postgresql"])
def db_settings(request: pytest.FixtureRequest, tmp_path: Path) -> FraudscoreSettings:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
    else:
        url = f"sqlite:///{tmp_path / 'registry.db'}"
    return FraudscoreSettings(database_url=SecretStr(url), var_dir=tmp_path / "var")


@pytest.fixture
def engine(db_settings: FraudscoreSettings) -> Iterator[Engine]:
    engine = create_db_engine(db_settings)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def artefacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three registrable models, m1 to m3."""
    root = tmp_path_factory.mktemp("artefacts")
    return {
        v: make_artefact(root / v, v, trees) for v, trees in (("m1", 5), ("m2", 20), ("m3", 40))
    }
