"""Running the Alembic migrations of ``alembic/`` (at the repository root) from our own code.

``fraudscore db upgrade`` and the tests call :func:`upgrade`; the registry commands call
:func:`require_current` first, so that a database whose schema is behind (or ahead of) this
build gets a message that says what to run instead of an SQL error.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from app.db.errors import DatabaseError

ROOT = Path(__file__).resolve().parents[2]


def alembic_config(engine: Engine) -> Config:
    """Alembic's configuration for ``engine`` (``alembic/env.py`` uses its connection)."""
    ini = ROOT / "alembic.ini"
    if not ini.is_file():
        raise DatabaseError(
            f"no Alembic migrations at {ROOT}: run fraudscore from its source checkout "
            "(`pip install -e .`), where alembic/ lives"
        )
    config = Config(str(ini))
    config.set_main_option("script_location", str(ROOT / "alembic"))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def head_revision(engine: Engine) -> str | None:
    return ScriptDirectory.from_config(alembic_config(engine)).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None: never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current(engine: Engine, head: str | None = None) -> None:
    """Refuse a database whose schema is not this build's head revision (``head``: that
    revision, known already; None: read it from the migration scripts)."""
    head = head_revision(engine) if head is None else head
    current = current_revision(engine)
    if current != head:
        where = engine.url.render_as_string(hide_password=True)
        raise DatabaseError(
            f"the registry database {where} is at schema revision {current or 'none'}, this "
            f"build needs {head}: run `fraudscore db upgrade`"
        )
