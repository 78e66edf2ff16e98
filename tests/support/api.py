"""The API under test: settings with a test secret, a migrated SQLite registry, tokens."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jwt
from pydantic import SecretStr

from app.api.auth import Role
from app.db.engine import create_db_engine
from app.db.migration import upgrade
from app.settings import FraudscoreSettings

SECRET = "test-secret-of-the-api-at-least-32-bytes"  # noqa: S105
OTHER_SECRET = "another-secret-the-api-does-not-know-32"  # noqa: S105
ISSUER = "https://issuer.test"
AUDIENCE = "fraudscore-test"


def api_settings(var_dir: Path, **overrides: Any) -> FraudscoreSettings:
    """Settings of a test API: its own registry file, the test secret, no broker."""
    values: dict[str, Any] = {
        "environment": "test",
        "var_dir": var_dir,
        "database_url": SecretStr(f"sqlite:///{var_dir / 'registry.db'}"),
        "api_jwt_secret": SecretStr(SECRET),
        "api_jwt_issuer": ISSUER,
        "api_jwt_audience": AUDIENCE,
        "kafka_bootstrap": "127.0.0.1:1",  # nothing listens there
        **overrides,
    }
    return FraudscoreSettings(**values)


def migrate(settings: FraudscoreSettings) -> None:
    """``alembic upgrade head`` on the settings' registry database."""
    engine = create_db_engine(settings)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


def token(
    *roles: Role | str,
    subject: str = "alice",
    secret: str = SECRET,
    issuer: str = ISSUER,
    audience: str = AUDIENCE,
    expires_in_s: int = 7200,  # test modules mint theirs at import: outlive the whole suite
    omit: Iterable[str] = (),
) -> str:
    now = int(time.time())
    claims = {
        "iss": issuer,
        "aud": audience,
        "sub": subject,
        "roles": [str(r) for r in roles],
        "iat": now,
        "exp": now + expires_in_s,
    }
    for name in omit:
        del claims[name]
    return jwt.encode(claims, secret, algorithm="HS256")


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}
