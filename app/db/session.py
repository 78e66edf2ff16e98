"""Sessions of the registry commands: on a database at this build's schema revision only.

Kept apart from :mod:`app.db.engine` so that a worker, which only reads, does not import
Alembic.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from app.db.engine import create_db_engine, database_errors
from app.db.migration import require_current
from app.settings import FraudscoreSettings


@contextmanager
def registry_session(settings: FraudscoreSettings) -> Iterator[Session]:
    """A session on the registry database, committed at the end of the block (rolled back on
    error); refused unless the schema is at this build's head revision."""
    engine = create_db_engine(settings)
    try:
        with checked_session(engine) as session:
            yield session
    finally:
        engine.dispose()


@contextmanager
def checked_session(engine: Engine, head: str | None = None) -> Iterator[Session]:
    """A session on ``engine``, committed at the end of the block (rolled back on error),
    refused unless the schema is at ``head`` (None: this build's head revision); database
    failures become :class:`app.db.errors.DatabaseError`."""
    with database_errors(engine):
        require_current(engine, head)
        with Session(engine) as session, session.begin():
            yield session
