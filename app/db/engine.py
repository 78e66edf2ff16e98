"""Engines and sessions for the registry database named by the settings.

The URL comes from ``FRAUDSCORE_DATABASE_URL`` (a secret: it may hold a password) or defaults
to an SQLite file under the var dir; the password is better kept out of it, in
``FRAUDSCORE_DATABASE_PASSWORD`` (:func:`with_password` puts it in). Log and print URLs only
through :func:`safe_url`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import URL, Engine, create_engine, event, inspect, make_url
from sqlalchemy.exc import SQLAlchemyError

from app.db.errors import DatabaseError
from app.settings import FraudscoreSettings

_SQLITE_BUSY_TIMEOUT_S = 30.0  # writers wait for each other instead of failing at once


def safe_url(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def with_password(url: str, password: SecretStr | None, setting: str) -> URL:
    """``url`` with ``password`` (the value of the setting ``setting``) as its user's password;
    refused if the URL names no user, or has a password of its own."""
    parsed = make_url(url)
    if password is None:
        return parsed
    if not parsed.username:
        raise DatabaseError(
            f"{setting} is set but the URL {safe_url(url)} names no user: add the user to the URL"
        )
    if parsed.password is not None:
        raise DatabaseError(
            f"{setting} is set but the URL {safe_url(url)} has a password too: remove it from "
            "the URL"
        )
    return parsed.set(password=password.get_secret_value())


def create_db_engine(settings: FraudscoreSettings) -> Engine:
    """An engine for the registry database (SQLite: its directory is created if missing,
    foreign keys are enforced)."""
    url = with_password(
        settings.sql_url, settings.database_password, "FRAUDSCORE_DATABASE_PASSWORD"
    )
    if url.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": _SQLITE_BUSY_TIMEOUT_S})
    event.listen(engine, "connect", _sqlite_foreign_keys)
    return engine


def _sqlite_foreign_keys(connection: Any, _record: object) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@contextmanager
def database_errors(engine: Engine) -> Iterator[None]:
    """Turn database failures into a :class:`DatabaseError` that names the (masked) URL."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise DatabaseError(
            f"registry database {engine.url.render_as_string(hide_password=True)}: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"
        ) from exc


def never_migrated(engine: Engine) -> bool:
    """Whether the database answers but ``fraudscore db upgrade`` never ran on it (no Alembic
    version table): the zero-setup default, not a fault. False if it does not answer."""
    try:
        return not inspect(engine).has_table("alembic_version")
    except SQLAlchemyError:
        return False
