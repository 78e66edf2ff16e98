"""The deployed stack's settings on real servers: the audit table in an S3-compatible object
store (moto's HTTP server) with its catalog on PostgreSQL, passwords given apart from the
URLs, and no secret in any start-up log (sink at DEBUG, worker at INFO)."""

from __future__ import annotations

import secrets
from pathlib import Path

import pytest
from pydantic import SecretStr
from sqlalchemy import make_url

from app.db.engine import create_db_engine
from app.db.migration import upgrade
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from tests.support.audit import assert_audit_equals_decisions, start_sink, wait_for_rows
from tests.support.decisions import decisions_of, publish
from tests.support.s3 import ACCESS_KEY_ID, S3Server
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration

# test secrets, looked for in the logs
CATALOG_PASSWORD, DATABASE_PASSWORD = secrets.token_hex(12), secrets.token_hex(12)


def _without_password(url: str) -> str:
    return make_url(url).set(password=None).render_as_string(hide_password=False)


def _secrets(settings: FraudscoreSettings) -> list[str]:
    values = [
        settings.audit_catalog_password,
        settings.database_password,
        settings.audit_s3_secret_access_key,
    ]
    return [value.get_secret_value() for value in values if value is not None]


def _assert_no_secret_in(log_path: Path, settings: FraudscoreSettings) -> None:
    log = log_path.read_text(errors="replace")
    leaked = [secret for secret in _secrets(settings) if secret in log]
    assert not leaked, f"secrets in {log_path.name}: {leaked}"


@pytest.fixture
def settings(
    kafka_bootstrap: str, unique: str, tmp_path: Path, s3: S3Server, postgres_url: str
) -> FraudscoreSettings:
    bucket = f"audit-{unique}"
    s3.create_bucket(bucket)
    # the local PostgreSQL trusts local users: the password is carried, not checked
    return isolated_settings(
        kafka_bootstrap,
        unique,
        tmp_path / "var",
        audit_catalog_uri=_without_password(postgres_url),
        audit_catalog_password=SecretStr(CATALOG_PASSWORD),
        audit_warehouse=f"s3://{bucket}/warehouse",
        audit_s3_endpoint=s3.endpoint,
        audit_s3_access_key_id=ACCESS_KEY_ID,
        audit_s3_secret_access_key=SecretStr(s3.secret_access_key),
        database_url=SecretStr(_without_password(postgres_url)),
        database_password=SecretStr(DATABASE_PASSWORD),
    )


async def test_the_audit_table_lives_in_the_object_store_and_no_secret_is_logged(
    settings: FraudscoreSettings, tmp_path: Path, s3: S3Server
) -> None:
    count = 1200
    sink = start_sink(
        settings,
        tmp_path / "sink.log",
        audit_checkpoint_interval_ms=300,
        audit_checkpoint_max_records=500,
    )
    try:
        await publish(settings, decisions_of(count, seed=61))
        await wait_for_rows(settings, count, sink)
    finally:
        assert sink.stop() == 0, sink.log_tail()
    rows = await assert_audit_equals_decisions(settings)
    assert len(rows) == count

    assert settings.audit_warehouse is not None
    bucket_path = settings.audit_warehouse.removeprefix("s3://")
    from pyarrow.fs import FileSelector  # noqa: PLC0415 - only this test needs it

    stored = s3.filesystem().get_file_info(FileSelector(bucket_path, recursive=True))
    names = [info.path for info in stored]
    assert any(name.endswith(".parquet") for name in names), names
    assert any(name.endswith(".metadata.json") for name in names), names
    assert not (settings.audit_dir / "warehouse").exists()  # nothing fell back to local disk
    _assert_no_secret_in(sink.log_path, settings)


async def test_a_worker_reaches_its_registry_with_the_separate_password_and_logs_no_secret(
    settings: FraudscoreSettings, tmp_path: Path
) -> None:
    upgrade(create_db_engine(settings))
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        assert await worker.wait_for_log("ready at offset"), worker.log_tail()
    finally:
        assert worker.stop() == 0, worker.log_tail()
    _assert_no_secret_in(worker.log_path, settings)
