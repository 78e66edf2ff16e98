"""``fraudscore replay``: re-run the pipeline over the input log for an event-time range and
compare every decision with the audit table (:mod:`app.replay`; docs/AUDIT.md, "Replay").

The report goes to stdout through :func:`app.cli.output.emit_sections`; progress, warnings
and the verdict go to stderr. Exit code 1 on any difference.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli.audit import Output, moment
from app.cli.console import catch_errors, console
from app.cli.output import QueryOutput, emit_sections
from app.cli.savepoint import partition_progress
from app.errors import BrokerError
from app.settings import FraudscoreSettings, get_settings

if TYPE_CHECKING:
    import pyarrow as pa

    from app.replay import ReplayReport


def replay(
    start: Annotated[
        str,
        typer.Option(
            "--from",
            help="Replay decisions with event times from this moment on "
            "(ISO 8601, UTC if no offset)",
        ),
    ],
    end: Annotated[
        str,
        typer.Option("--to", help="...and before this moment (ISO 8601, UTC if no offset)"),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Directory for the replayed decisions (decisions.jsonl); default "
            "<FRAUDSCORE_VAR_DIR>/replay"
        ),
    ] = None,
    output: Output = QueryOutput.text,
) -> None:
    """Re-run the feature pipeline over the input log for [--from, --to) and compare every
    feature vector and decision with the audit table; exit 1 on any difference.

    Reads every input partition from its log start (card history and stream time need it)
    with a read_committed consumer that commits nothing, and decides each transaction with
    the model, policy and merchant snapshot its audit row records. Nothing is written to
    Kafka: the replayed decisions go to --out. Run it once the audit sink has caught up.
    """
    from app.replay import replay as run  # noqa: PLC0415 - pyiceberg, sklearn: see app/cli/audit.py

    first, until = moment(start), moment(end)
    assert first is not None
    assert until is not None
    if first >= until:
        raise typer.BadParameter("--from must be before --to")
    settings = get_settings()
    with catch_errors(), kafka_errors(settings), partition_progress("replaying") as progress:
        report = run(settings, first, until, out or settings.var_dir / "replay", progress=progress)
    _warn(report)
    emit_sections(_sections(report), output, csv_section="differences")
    _verdict(report)


@contextmanager
def kafka_errors(settings: FraudscoreSettings) -> Iterator[None]:
    """A Kafka client's failure as a one-line CLI error."""
    from confluent_kafka import KafkaException  # noqa: PLC0415 - see the module docstring

    try:
        yield
    except KafkaException as exc:
        raise BrokerError(
            f"Kafka at {settings.kafka_bootstrap} failed: {exc}; is the broker up "
            "(`fraudscore kafka status`)?"
        ) from exc


def _sections(report: ReplayReport) -> dict[str, pa.Table]:
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring

    differences = [
        {
            "transaction_id": d.transaction_id,
            "kind": d.kind,
            "field": d.field,
            "recorded": d.recorded,
            "replayed": d.replayed,
        }
        for d in report.comparison.differences
    ]
    partitions = [
        {
            "partition": p.partition,
            "log_start": p.log_start,
            "read_to": p.next_offset,
            "log_end": p.log_end,
            "history_truncated": p.truncated,
        }
        for p in report.partitions
    ]
    return {
        "counts": pa.Table.from_pylist([report.comparison.counts()]),
        "partitions": pa.Table.from_pylist(partitions, schema=_partition_schema()),
        "differences": pa.Table.from_pylist(differences, schema=_difference_schema()),
    }


def _partition_schema() -> pa.Schema:
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring

    return pa.schema(
        [
            ("partition", pa.int32()),
            ("log_start", pa.int64()),
            ("read_to", pa.int64()),
            ("log_end", pa.int64()),
            ("history_truncated", pa.bool_()),
        ]
    )


def _difference_schema() -> pa.Schema:
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring

    return pa.schema(
        [
            (name, pa.string())
            for name in ("transaction_id", "kind", "field", "recorded", "replayed")
        ]
    )


def _warn(report: ReplayReport) -> None:
    for read in report.partitions:
        if read.truncated:
            console.print(
                f"[yellow]partition {read.partition}: the log starts at offset "
                f"{read.log_start}, not 0[/yellow]: retention deleted older input, so cards "
                "may lack history there; its differences are listed as 'history truncated'",
                soft_wrap=True,
            )
    for version in report.snapshots_unavailable:
        console.print(
            f"[yellow]merchant snapshot {version} is not in the registry database[/yellow]: "
            "decisions that used it are replayed with the snapshot a worker would use now, "
            f"and their differences are listed as 'merchant snapshot {version} unavailable'",
            soft_wrap=True,
        )
    console.print(f"replayed decisions: {report.decisions_path}", soft_wrap=True)


def _verdict(report: ReplayReport) -> None:
    comparison = report.comparison
    if comparison.identical_all:
        if comparison.compared == 0:
            console.print("[yellow]no decisions in this range, replayed or audited[/yellow]")
        else:
            console.print(f"identical: all {comparison.compared} decisions, field for field")
        return
    counts = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in comparison.counts().items())
    console.print(
        f"[bold red]DIFFERENCES:[/bold red] {counts}. 'missing in audit' right after a "
        "decision was made: the audit sink may not have caught up yet",
        soft_wrap=True,
    )
    raise typer.Exit(code=1)
