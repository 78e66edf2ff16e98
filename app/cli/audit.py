"""``fraudscore audit-sink`` and ``fraudscore audit ...``: write and query the audit trail.

Thin Typer commands over :mod:`app.audit`; the table and its guarantees are described in
docs/AUDIT.md. :mod:`app.audit` (pyiceberg, pyarrow, SQLAlchemy) is imported inside the
commands: importing it here would add seconds to every ``fraudscore worker`` start.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated

import msgspec
import typer
from rich.table import Table

from app.cli.console import OutputFormat, catch_errors, console, stdout
from app.logs import configure_logging
from app.settings import get_settings
from sinks.errors import AuditError

if TYPE_CHECKING:
    from sinks.iceberg import AuditRow

app = typer.Typer(
    help="Query and maintain the audit trail (the Iceberg table of every decision)",
    no_args_is_help=True,
)


def audit_sink(
    log_level: str = typer.Option("INFO", help="Log level: DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Append every committed decision to the audit table, exactly once, until SIGTERM.

    Reads FRAUDSCORE_DECISIONS_TOPIC with read_committed from where the audit table says it
    stopped, and commits to FRAUDSCORE_AUDIT_TABLE every FRAUDSCORE_AUDIT_CHECKPOINT_INTERVAL_MS
    or FRAUDSCORE_AUDIT_CHECKPOINT_MAX_RECORDS decisions, and once more on SIGTERM.
    """
    from app.audit import serve  # noqa: PLC0415 - see the module docstring

    configure_logging(log_level)
    settings = get_settings()
    console.print(
        f"audit sink on [bold]{settings.kafka_bootstrap}[/bold]: "
        f"{settings.decisions_topic} → {settings.audit_table}"
    )
    with catch_errors():
        asyncio.run(serve(settings))


def _moment(text: str | None) -> datetime | None:
    """ISO 8601 / RFC 3339; without an offset, UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not an ISO 8601 timestamp") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"{text!r} is not a date (YYYY-MM-DD)") from exc


@app.command()
def show(
    transaction_id: Annotated[str, typer.Argument(help="The transaction's id")],
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of",
            help="Only what the audit table held at this time (ISO 8601, UTC if no offset); "
            "keeps working after snapshots expire",
        ),
    ] = None,
    snapshot: Annotated[
        int | None, typer.Option("--snapshot", help="Read this Iceberg snapshot (time travel)")
    ] = None,
    day: Annotated[
        str | None,
        typer.Option(help="The transaction's event date YYYY-MM-DD (UTC): reads only that day"),
    ] = None,
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Output format")
    ] = OutputFormat.text,
) -> None:
    """Show the audit record of one transaction: decision, score, reasons, versions, features."""
    from app.audit import find_transaction  # noqa: PLC0415 - see the module docstring

    if as_of is not None and snapshot is not None:
        raise typer.BadParameter("give --as-of or --snapshot, not both")
    with catch_errors():
        rows = find_transaction(
            get_settings(),
            transaction_id,
            snapshot_id=snapshot,
            as_of=_moment(as_of),
            day=_day(day),
        )
        if not rows:
            raise AuditError(f"transaction {transaction_id!r} is not in the audit table")
    if output is OutputFormat.json:
        typer.echo(msgspec.json.encode(rows).decode())
        return
    for row in rows:
        stdout.print(_row_table(row))


@app.command()
def maintain(
    keep: Annotated[
        int, typer.Option(min=1, help="Snapshots of the main line to keep, newest first")
    ] = 100,
    min_age_minutes: Annotated[
        float, typer.Option(min=0, help="Never expire a snapshot younger than this")
    ] = 60.0,
    compact: Annotated[
        bool,
        typer.Option(help="First rewrite each day before today (UTC) that has several files"),
    ] = False,
    orphans_older_than_hours: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="Last, delete the files no snapshot references that are older than this "
            "(a safety age: a writer's files exist before its commit references them)",
        ),
    ] = None,
) -> None:
    """Compact closed days (with --compact), expire old snapshots of the audit table, and
    remove orphan files (with --orphans-older-than-hours); safe while the sink is writing.

    Commit latency grows with every retained snapshot, so expire every few minutes; compact
    once a day. The newest snapshot that records the sink's offsets is always kept, and so
    are branch and tag heads. Rows stay: expiry only forgets old versions of the table (and
    their time travel). Removing orphans once a day with a safety age of days is enough.
    """
    from app.audit import (  # noqa: PLC0415 - see the module docstring
        compact_closed_days,
        expire_snapshots,
        remove_orphan_files,
    )

    now = datetime.now(UTC)
    older_than = now - timedelta(minutes=min_age_minutes)
    settings = get_settings()
    with catch_errors():
        compacted = compact_closed_days(settings, now.date()) if compact else {}
        expired = expire_snapshots(settings, older_than, keep)
        removed = (
            None
            if orphans_older_than_hours is None
            else remove_orphan_files(settings, now - timedelta(hours=orphans_older_than_hours))
        )
    for day, files in compacted.items():
        console.print(f"compacted {day}: {files} files rewritten as one commit")
    console.print(f"expired {expired} snapshot(s) older than {older_than.isoformat()}")
    if removed is not None:
        console.print(f"removed {removed} orphan file(s)")


def _row_table(row: AuditRow) -> Table:
    committed = row.committed
    d = committed.decision
    shadow = "-" if d.shadow_score is None else f"{d.shadow_score:.6f} ({d.shadow_model_version})"
    table = Table(show_header=False, box=None, title=f"transaction {d.transaction_id}")
    for key, value in (
        ("decision", f"[bold]{d.decision}[/bold] (score {d.score:.6f})"),
        ("reasons", ", ".join(d.reasons) or "-"),
        ("card", d.card_id),
        ("amount", f"{d.amount} {d.currency}"),
        ("merchant", d.merchant_id),
        ("event time", d.event_time),
        ("model", d.model_version),
        ("policy", d.policy_version),
        ("shadow score", shadow),
        ("merchant snapshot", d.merchant_risk_version or "-"),
        ("input record", f"{d.source.topic}/{d.source.partition}@{d.source.offset}"),
        ("decision record", f"{committed.topic}/{committed.partition}@{committed.offset}"),
        ("decided at", "-" if committed.decided_at is None else committed.decided_at.isoformat()),
        ("audit checkpoint", f"{row.checkpoint_id}, ingested {row.ingested_at.isoformat()}"),
        (f"features (schema {d.feature_schema_version})", _features(d.features)),
    ):
        table.add_row(f"[bold]{key}[/bold]", value)
    return table


def _features(features: dict[str, float]) -> str:
    return "\n".join(f"{name} = {value:g}" for name, value in features.items())
