"""``fraudscore audit-sink``: write the audit trail.

Thin Typer commands over :mod:`app.audit`; the table and its guarantees are described in
docs/AUDIT.md.
"""

from __future__ import annotations

import asyncio

import typer

from app.audit import serve
from app.cli.console import catch_errors, console
from app.logs import configure_logging
from app.settings import get_settings


def audit_sink(
    log_level: str = typer.Option("INFO", help="Log level: DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Append every committed decision to the audit table, exactly once, until SIGTERM.

    Reads FRAUDSCORE_DECISIONS_TOPIC with read_committed from where the audit table says it
    stopped, and commits to FRAUDSCORE_AUDIT_TABLE every FRAUDSCORE_AUDIT_CHECKPOINT_INTERVAL_MS
    or FRAUDSCORE_AUDIT_CHECKPOINT_MAX_RECORDS decisions, and once more on SIGTERM.
    """
    configure_logging(log_level)
    settings = get_settings()
    console.print(
        f"audit sink on [bold]{settings.kafka_bootstrap}[/bold]: "
        f"{settings.decisions_topic} → {settings.audit_table}"
    )
    with catch_errors():
        asyncio.run(serve(settings))
