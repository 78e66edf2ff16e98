"""The API served by a real uvicorn on a free loopback port, on the session's broker, a
registry database created by ``alembic upgrade head`` and an audit table in tmp_path."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from pydantic import SecretStr

from app.api.application import create_app
from app.audit import open_audit_table
from app.process import free_port
from app.settings import FraudscoreSettings
from tests.support.api import AUDIENCE, ISSUER, SECRET, migrate
from tests.support.settings import isolated_settings


@dataclass(frozen=True, slots=True)
class ServedApi:
    url: str
    settings: FraudscoreSettings


@pytest.fixture
def api_settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> FraudscoreSettings:
    var_dir = tmp_path / "var"
    settings = isolated_settings(
        kafka_bootstrap,
        unique,
        var_dir,
        environment="test",
        database_url=SecretStr(f"sqlite:///{var_dir / 'registry.db'}"),
        api_jwt_secret=SecretStr(SECRET),
        api_jwt_issuer=ISSUER,
        api_jwt_audience=AUDIENCE,
        api_port=free_port(),
    )
    migrate(settings)
    open_audit_table(settings)  # created empty, as the audit sink does at its start
    return settings


@pytest.fixture
def served_api(api_settings: FraudscoreSettings) -> Iterator[ServedApi]:
    config = uvicorn.Config(
        create_app(api_settings),
        host="127.0.0.1",
        port=api_settings.api_port,
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="api", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:  # a state, not a duration
        assert thread.is_alive(), "the API stopped at its start"
        assert time.monotonic() < deadline, "the API did not start within 30 s"
        time.sleep(0.05)
    try:
        yield ServedApi(f"http://127.0.0.1:{api_settings.api_port}", api_settings)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
