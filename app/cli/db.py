"""``fraudscore db ...``: the registry database's schema, and its log of admin actions.

The schema changes only through the Alembic migrations in ``alembic/``; the URL comes from
``FRAUDSCORE_DATABASE_URL`` (default: SQLite ``<var_dir>/fraudscore.db``).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from app.cli.console import OutputFormat, catch_errors, console, stdout
from app.cli.model import Output, registry_command
from app.db import migration, registry
from app.db.engine import create_db_engine, database_errors, safe_url
from app.settings import get_settings

app = typer.Typer(
    help="The registry database: schema migrations and the admin audit log",
    no_args_is_help=True,
)


@app.command()
def upgrade(
    revision: Annotated[str, typer.Option(help="Alembic revision to upgrade to")] = "head",
) -> None:
    """Create the registry's tables, or bring them up to this build's schema (Alembic)."""
    settings = get_settings()
    engine = create_db_engine(settings)
    try:
        with catch_errors(), database_errors(engine):
            before = migration.current_revision(engine)
            migration.upgrade(engine, revision)
            after = migration.current_revision(engine)
    finally:
        engine.dispose()
    where = safe_url(settings.sql_url)
    if before == after:
        console.print(f"{where} is at revision {after}: nothing to do", soft_wrap=True)
    else:
        console.print(
            f"{where} upgraded from revision {before or 'none'} to {after}", soft_wrap=True
        )


@app.command()
def log(
    limit: Annotated[int, typer.Option(min=1, help="How many of the newest actions")] = 20,
    output: Output = OutputFormat.text,
) -> None:
    """Who changed which model or policy, and when (newest first)."""
    with registry_command() as session:
        actions = registry.admin_log(session, limit)
        rows = [
            {
                "at": a.at.isoformat(),
                "actor": a.actor,
                "action": a.action,
                "model_version": a.model_version,
                "policy_version": a.policy_version,
                "detail": a.detail,
            }
            for a in actions
        ]
    if output is OutputFormat.json:
        typer.echo(json.dumps(rows))
        return
    table = Table(title="admin actions, newest first")
    for column in ("at (UTC)", "actor", "action", "model", "policy", "detail"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row["at"])[:19],
            str(row["actor"]),
            str(row["action"]),
            str(row["model_version"] or ""),
            str(row["policy_version"] or ""),
            json.dumps(row["detail"]),
        )
    stdout.print(table)
