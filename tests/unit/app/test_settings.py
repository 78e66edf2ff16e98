"""Secrets in the settings: read from files, kept out of reprs and URLs, passed explicitly."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import make_url

from app.audit import catalog_properties
from app.db.engine import create_db_engine, with_password
from app.db.errors import DatabaseError
from app.errors import SettingsError
from app.settings import FraudscoreSettings, secret_fields

SECRETS = {
    "database_url": "postgresql+psycopg2://fraud@db/fraudscore",
    "database_password": "db-pw-0f1e2d",
    "audit_catalog_password": "cat-pw-3c4b5a",
    "audit_s3_secret_access_key": "s3-key-9a8b7c",
    "api_jwt_secret": "jwt-secret-6d5e4f-jwt-secret-6d5e4f",
    "kafka_sasl_password": "sasl-pw-1a2b3c",
    "kafka_ssl_key_password": "key-pw-4d5e6f",
}


def _with_secrets(tmp_path: Path) -> FraudscoreSettings:
    values: dict[str, Any] = {name: SecretStr(value) for name, value in SECRETS.items()}
    return FraudscoreSettings(
        var_dir=tmp_path,
        audit_catalog_uri="postgresql+psycopg2://fraud@db/catalog",
        audit_warehouse="s3://warehouse/audit",
        audit_s3_endpoint="http://minio:9000",
        audit_s3_access_key_id="fraudscore",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_username="fraudscore",
        **values,
    )


def test_every_secret_is_a_secret_field() -> None:
    assert set(secret_fields(FraudscoreSettings)) == set(SECRETS)


def test_no_secret_shows_in_the_settings_repr_or_str(tmp_path: Path) -> None:
    settings = _with_secrets(tmp_path)
    for text in (repr(settings), str(settings), repr(settings.model_dump())):
        for secret in SECRETS.values():
            assert secret not in text


def test_a_secret_is_read_from_its_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pw").write_text("from-a-file\n")
    monkeypatch.setenv("FRAUDSCORE_DATABASE_PASSWORD_FILE", str(tmp_path / "pw"))
    settings = FraudscoreSettings()
    assert settings.database_password is not None
    assert settings.database_password.get_secret_value() == "from-a-file"


def test_a_secret_in_both_the_variable_and_a_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "key").write_text("one")
    monkeypatch.setenv("FRAUDSCORE_AUDIT_S3_SECRET_ACCESS_KEY_FILE", str(tmp_path / "key"))
    monkeypatch.setenv("FRAUDSCORE_AUDIT_S3_SECRET_ACCESS_KEY", "two")
    with pytest.raises(SettingsError, match="not both"):
        FraudscoreSettings()


def test_an_unreadable_secret_file_is_refused_with_its_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FRAUDSCORE_API_JWT_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(SettingsError, match="FRAUDSCORE_API_JWT_SECRET_FILE names"):
        FraudscoreSettings()


def test_the_password_goes_into_the_url_and_nowhere_else() -> None:
    awkward = "p@ss/w:rd"  # characters a URL must escape
    url = with_password("postgresql+psycopg2://fraud@db/x", SecretStr(awkward), "SETTING")
    assert url.password == awkward
    assert "p@ss" not in str(url)  # SQLAlchemy masks it in str()
    rendered = url.render_as_string(hide_password=False)
    assert make_url(rendered).password == awkward  # escaped, so it survives a round trip


@pytest.mark.parametrize(
    ("url", "problem"),
    [("sqlite:///var/x.db", "names no user"), ("postgresql://u:pw@db/x", "has a password too")],
)
def test_a_password_the_url_cannot_take_is_refused(url: str, problem: str) -> None:
    with pytest.raises(DatabaseError, match=problem) as raised:
        with_password(url, SecretStr("secret-pw"), "FRAUDSCORE_DATABASE_PASSWORD")
    assert "FRAUDSCORE_DATABASE_PASSWORD" in str(raised.value)
    assert "secret-pw" not in str(raised.value)
    assert ":pw@" not in str(raised.value)


def test_the_registry_engine_gets_the_password(tmp_path: Path) -> None:
    engine = create_db_engine(_with_secrets(tmp_path))
    assert engine.url.password == SECRETS["database_password"]
    assert SECRETS["database_password"] not in repr(engine)


def test_the_catalog_gets_password_and_s3_settings_explicitly(tmp_path: Path) -> None:
    properties = catalog_properties(_with_secrets(tmp_path))
    assert make_url(properties["uri"]).password == SECRETS["audit_catalog_password"]
    assert properties["warehouse"] == "s3://warehouse/audit"
    assert properties["s3.endpoint"] == "http://minio:9000"
    assert properties["s3.region"] == "us-east-1"
    assert properties["s3.access-key-id"] == "fraudscore"
    assert properties["s3.secret-access-key"] == SECRETS["audit_s3_secret_access_key"]
    assert properties["s3.force-virtual-addressing"] == "false"  # path-style by default


def test_a_local_warehouse_needs_no_s3_credentials(tmp_path: Path) -> None:
    properties = catalog_properties(FraudscoreSettings(var_dir=tmp_path))
    assert properties["warehouse"].startswith("file://")
    assert "s3.secret-access-key" not in properties
    assert "s3.endpoint" not in properties
