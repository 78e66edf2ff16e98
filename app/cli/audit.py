"""``fraudscore audit-sink`` and ``fraudscore audit ...``: write, query and maintain the audit
trail.

Thin Typer commands over :mod:`app.audit` (the sink, maintenance), :mod:`app.audit_query`
(the queries, shared with the REST API) and :mod:`app.reproduction`; every result is written
by :func:`app.cli.output.emit`. The table and its guarantees are described in docs/AUDIT.md.
Those modules (pyiceberg, pyarrow, DuckDB, SQLAlchemy) are imported inside the commands:
importing them here would add seconds to every ``fraudscore worker`` start.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Group
from rich.table import Table

from app.cli.console import announce, catch_errors, console
from app.cli.output import QueryOutput, emit, table_of
from app.logs import configure_logging
from app.settings import get_settings
from sinks.errors import AuditError

if TYPE_CHECKING:
    import pyarrow as pa

    from sinks.iceberg import AuditRow

_CARD_COLUMNS = (
    "event_time",
    "transaction_id",
    "amount",
    "currency",
    "merchant_id",
    "decision",
    "score",
    "reasons",
    "model_version",
)

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

    settings = get_settings()
    configure_logging(log_level, settings, "audit-sink")
    announce(
        f"audit sink on [bold]{settings.kafka_bootstrap}[/bold]: "
        f"{settings.decisions_topic} → {settings.audit_table}"
    )
    with catch_errors():
        asyncio.run(serve(settings))


def moment(text: str | None) -> datetime | None:
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


AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        help="Only what the audit table held at this time (ISO 8601, UTC if no offset): by "
        "the rows' ingest time, so it keeps working after snapshots expire",
    ),
]
TagOption = Annotated[
    str | None,
    typer.Option(
        "--tag",
        help="Read the snapshot this tag names, e.g. day-2026-11-21: the table at the end of "
        "that UTC day (`audit maintain` tags each closed day; tags are never expired)",
    ),
]
SnapshotOption = Annotated[
    int | None, typer.Option("--snapshot", help="Read this Iceberg snapshot (time travel)")
]
DayOption = Annotated[
    str | None,
    typer.Option(help="The transaction's event date YYYY-MM-DD (UTC): reads only that day"),
]
FromOption = Annotated[
    str | None,
    typer.Option("--from", help="Event times from this moment on (ISO 8601, UTC if no offset)"),
]
ToOption = Annotated[
    str | None,
    typer.Option("--to", help="Event times before this moment (ISO 8601, UTC if no offset)"),
]
Output = Annotated[QueryOutput, typer.Option("--output", "-o", help="Output format")]


def _when(as_of: str | None, tag: str | None, snapshot: int | None) -> dict[str, Any]:
    """The "as of" keywords of :mod:`app.audit_query` from the options (one at most)."""
    if sum(option is not None for option in (as_of, tag, snapshot)) > 1:
        raise typer.BadParameter("give one of --as-of, --tag and --snapshot, not several")
    return {"as_of": moment(as_of), "tag": tag, "snapshot_id": snapshot}


@app.command()
def txn(
    transaction_id: Annotated[str, typer.Argument(help="The transaction's id")],
    *,
    day: DayOption = None,
    as_of: AsOfOption = None,
    tag: TagOption = None,
    snapshot: SnapshotOption = None,
    output: Output = QueryOutput.text,
) -> None:
    """Show the audit record of one transaction: decision, score, reasons, versions, features."""
    from app.audit_query import transaction_rows  # noqa: PLC0415 - see the module docstring

    when = _when(as_of, tag, snapshot)
    with catch_errors():
        rows = transaction_rows(get_settings(), transaction_id, day=_day(day), **when)
        if rows.num_rows == 0:
            raise AuditError(f"transaction {transaction_id!r} is not in the audit table")
    emit(rows, output, _records)


@app.command()
def card(
    card_id: Annotated[str, typer.Argument(help="The card's token (never a card number)")],
    *,
    start: FromOption = None,
    end: ToOption = None,
    as_of: AsOfOption = None,
    tag: TagOption = None,
    snapshot: SnapshotOption = None,
    output: Output = QueryOutput.text,
) -> None:
    """A card's decisions with event times in [--from, --to), oldest first."""
    from app.audit_query import card_history  # noqa: PLC0415 - see the module docstring

    when = _when(as_of, tag, snapshot)
    with catch_errors():
        rows = card_history(get_settings(), card_id, start=moment(start), end=moment(end), **when)
    emit(rows, output, lambda r: table_of(r.select(_CARD_COLUMNS), title=f"card {card_id}"))


@app.command()
def stats(
    day: Annotated[str, typer.Option(help="The event date YYYY-MM-DD (UTC) to count")],
    as_of: AsOfOption = None,
    tag: TagOption = None,
    snapshot: SnapshotOption = None,
    output: Output = QueryOutput.text,
) -> None:
    """Count one day's decisions by decision, model version and reason code."""
    from app.audit_query import day_stats  # noqa: PLC0415 - see the module docstring

    when = _when(as_of, tag, snapshot)
    event_day = _day(day)
    assert event_day is not None
    with catch_errors():
        rows = day_stats(get_settings(), event_day, **when)
    emit(rows, output, lambda r: table_of(r, title=f"decisions of {event_day}"))


@app.command()
def sql(
    query: Annotated[
        str, typer.Argument(help='e.g. "SELECT decision, count(*) FROM decisions GROUP BY 1"')
    ],
    *,
    start: FromOption = None,
    end: ToOption = None,
    as_of: AsOfOption = None,
    tag: TagOption = None,
    snapshot: SnapshotOption = None,
    output: Output = QueryOutput.text,
) -> None:
    """Run a DuckDB query over the audit rows, which it sees as the view `decisions`.

    The rows are read into memory first: name the event-time range with --from/--to (which
    also reads only those days' files). The query cannot reach files or the network.
    """
    from app.audit_query import run_sql  # noqa: PLC0415 - see the module docstring

    when = _when(as_of, tag, snapshot)
    with catch_errors():
        rows = run_sql(get_settings(), query, start=moment(start), end=moment(end), **when)
    emit(rows, output)


@app.command()
def reproduce(
    transaction_id: Annotated[str, typer.Argument(help="The transaction's id")],
    day: DayOption = None,
    output: Output = QueryOutput.text,
) -> None:
    """Recompute a recorded decision with its own model and policy versions; exit 1 if not
    identical.

    Shows that score (bit for bit), decision and reason codes are the recorded ones, and where
    the model and policy were loaded from (the registry, else the configured ones when their
    versions match). Exit code 1 if anything differs or a version cannot be found.
    """
    from app.reproduction import reproduce as recompute  # noqa: PLC0415 - see the docstring

    with catch_errors():
        result = recompute(get_settings(), transaction_id, day=_day(day))
    emit(result.comparison(), output, lambda r: table_of(r, title=f"transaction {transaction_id}"))
    console.print(f"model {result.model_version}: {result.model_source}", soft_wrap=True)
    console.print(f"policy {result.policy_version}: {result.policy_source}", soft_wrap=True)
    if not result.identical:
        console.print(
            f"[bold red]NOT REPRODUCED:[/bold red] {', '.join(result.differences())} "
            "differ from the audit row: the row was altered, or the model or policy is not "
            "the one that decided",
            soft_wrap=True,
        )
        raise typer.Exit(code=1)
    console.print("reproduced: score (bit for bit), decision and reasons are identical")


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
    """Compact, tag closed days, expire snapshots, remove orphans; safe while the sink writes.

    In that order: with --compact, rewrite each day before today (UTC) that has several files;
    tag the last snapshot of each closed UTC day (day-YYYY-MM-DD); expire old snapshots; with
    --orphans-older-than-hours, delete files no snapshot references.

    Commit latency grows with every retained snapshot, so expire every few minutes; compact
    once a day. The newest snapshot that records the sink's offsets is always kept, and so
    are tagged snapshots and branch heads. Rows stay: expiry only forgets old versions of the
    table (and their time travel). Removing orphans once a day with a safety age of days is enough.
    The audit sink runs the same maintenance itself (FRAUDSCORE_AUDIT_MAINTENANCE_INTERVAL_S,
    FRAUDSCORE_AUDIT_COMPACTION_INTERVAL_S); running this beside it is safe too.
    """
    from app.audit import load_audit_table  # noqa: PLC0415 - see the module docstring
    from app.audit_maintenance import MaintenancePlan, maintain  # noqa: PLC0415

    orphan_age = (
        None if orphans_older_than_hours is None else timedelta(hours=orphans_older_than_hours)
    )
    plan = MaintenancePlan(keep, timedelta(minutes=min_age_minutes), compact, orphan_age)
    now = datetime.now(UTC)
    with catch_errors():
        report = maintain(load_audit_table(get_settings()), now, plan)
    for day, files in report.compacted.items():
        console.print(f"compacted {day}: {files} files rewritten as one commit")
    for day, snapshot_id in report.tagged.items():
        console.print(f"tagged day-{day}: snapshot {snapshot_id}")
    console.print(
        f"expired {len(report.expired)} snapshot(s) older than {(now - plan.min_age).isoformat()}"
    )
    if report.orphans is not None:
        console.print(f"removed {len(report.orphans)} orphan file(s)")


def _records(rows: pa.Table) -> Group:
    """Each audit row as a record for a person."""
    from sinks.iceberg import rows_of  # noqa: PLC0415 - see the module docstring

    return Group(*(_row_table(row) for row in rows_of(rows)))


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
        ("worker checkpoint", committed.worker_checkpoint or "-"),
        ("audit checkpoint", f"{row.checkpoint_id}, ingested {row.ingested_at.isoformat()}"),
        (f"features (schema {d.feature_schema_version})", _features(d.features)),
    ):
        table.add_row(f"[bold]{key}[/bold]", value)
    return table


def _features(features: dict[str, float]) -> str:
    return "\n".join(f"{name} = {value:g}" for name, value in features.items())
