"""Engines and sessions for the registry database named by the settings.

The URL comes from ``FRAUDSCORE_DATABASE_URL`` (a secret: it may hold a password) or defaults
to an SQLite file under the var dir. Log and print it only through :func:`safe_url`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, inspect, make_url
from sqlalchemy.exc import SQLAlchemyError

from app.db.errors import DatabaseError
from app.settings import FraudscoreSettings

_SQLITE_BUSY_TIMEOUT_S = 30.0  # writers wait for each other instead of failing at once


def safe_url(url: str) -> str:
    """``url`` with its password masked, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def create_db_engine(settings: FraudscoreSettings) -> Engine:
    """An engine for the registry database (SQLite: its directory is created if missing,
    foreign keys are enforced)."""
    url = make_url(settings.sql_url)
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
