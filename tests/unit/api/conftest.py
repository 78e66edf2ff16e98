"""An API on a migrated SQLite registry in tmp_path, with no broker (see tests/support/api.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.application import create_app
from app.settings import FraudscoreSettings
from tests.support.api import api_settings, migrate


@pytest.fixture
def settings(tmp_path: Path) -> FraudscoreSettings:
    settings = api_settings(tmp_path / "var")
    migrate(settings)
    return settings


@pytest.fixture
def client(settings: FraudscoreSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client
