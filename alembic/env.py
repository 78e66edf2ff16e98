"""Alembic's entry point: migrations run against the service's own database settings.

``fraudscore db upgrade`` (``app/db/migration.py``) passes its engine in
``config.attributes["engine"]``; the ``alembic`` command line builds one from the settings
(``FRAUDSCORE_DATABASE_URL``, default SQLite under the var dir). Types are compared when
autogenerating, and SQLite alterations go through batch mode.
"""

from __future__ import annotations

from alembic import context

from app.db.engine import create_db_engine
from app.db.tables import Base
from app.settings import get_settings

config = context.config
engine = config.attributes.get("engine") or create_db_engine(get_settings())

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
