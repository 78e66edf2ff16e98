"""``fraudscore savepoint ...``: take a savepoint of a stopped deployment, or show one.

Thin Typer commands over :mod:`app.savepoint`; the import side is ``fraudscore worker
--from-savepoint DIR``. The format and the procedure are in docs/SAVEPOINTS.md.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from app.cli.console import catch_errors, console, stdout
from app.errors import BrokerError
from app.savepoint import Manifest, create_savepoint, encode_manifest, verify_savepoint
from app.savepoint import Progress as ProgressCallback
from app.settings import FraudscoreSettings, get_settings

app = typer.Typer(
    help="Portable snapshots of all card state and the committed input offsets",
    no_args_is_help=True,
)


@contextmanager
def partition_progress(verb: str) -> Iterator[ProgressCallback]:
    """A progress bar per partition, fed by the (partition, completed, total) callback."""
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bars:
        tasks: dict[int, TaskID] = {}

        def report(partition: int, completed: int, total: int) -> None:
            if partition not in tasks:
                tasks[partition] = bars.add_task(f"{verb} partition {partition}", total=total)
            bars.update(tasks[partition], completed=completed, total=total)

        yield report


@contextmanager
def broker_errors(settings: FraudscoreSettings) -> Iterator[None]:
    """Turn an unexpected Kafka error into a one-line CLI error."""
    try:
        yield
    except KafkaError as exc:
        raise BrokerError(f"Kafka at {settings.kafka_bootstrap} failed: {exc!r}") from exc


@app.command()
def create(
    directory: Annotated[
        Path, typer.Argument(help="New (or empty) directory to write the savepoint to")
    ],
    wait: Annotated[
        float,
        typer.Option(min=0, help="Seconds to wait for the consumer group to have no members"),
    ] = 0.0,
) -> None:
    """Snapshot all card state and the committed input offsets into DIRECTORY.

    Reads FRAUDSCORE_GROUP_ID's committed offsets on FRAUDSCORE_INPUT_TOPIC and the changelog
    FRAUDSCORE_CHANGELOG_TOPIC. Stop the workers first (SIGTERM: they checkpoint and leave the
    group); the command refuses while the group has members.
    """
    settings = get_settings()
    with catch_errors(), broker_errors(settings), partition_progress("saving") as progress:
        manifest = asyncio.run(
            create_savepoint(settings, directory, progress=progress, wait_s=wait)
        )
    console.print(
        f"[green]savepoint written[/green] to {directory}: {manifest.cards:,} cards in "
        f"{manifest.partition_count} partitions of {manifest.input_topic}",
        soft_wrap=True,
    )


@app.command()
def show(
    directory: Annotated[Path, typer.Argument(help="Savepoint directory")],
    as_json: Annotated[bool, typer.Option("--json", help="Print manifest.json as it is")] = False,
) -> None:
    """Print a savepoint's manifest, after checking its files (checksums, decoding)."""
    with catch_errors():
        manifest = verify_savepoint(directory)
    if as_json:
        stdout.out(encode_manifest(manifest).decode(), end="", highlight=False)
        return
    stdout.print(_describe(manifest), highlight=False)
    stdout.print(_partitions_table(manifest))
    stdout.print("[green]all data files match their checksums[/green]")


def _describe(manifest: Manifest) -> str:
    return "\n".join(
        [
            f"format            {manifest.format} v{manifest.format_version}",
            f"created at        {manifest.created_at} by fraudscore {manifest.fraudscore_version}",
            f"service           {manifest.service_name}",
            f"input topic       {manifest.input_topic} ({manifest.partition_count} partitions)",
            f"consumer group    {manifest.group_id}",
            f"changelog topic   {manifest.changelog_topic}",
            f"state version     {manifest.state_version} "
            f"(feature schema {manifest.feature_schema_version})",
            f"cards             {manifest.cards:,}",
        ]
    )


def _partitions_table(manifest: Manifest) -> Table:
    table = Table("partition", "input offset", "cards", "file", "sha256")
    for column in table.columns[:3]:
        column.justify = "right"
    for column in table.columns[3:]:
        column.no_wrap = True
    for snapshot in manifest.partitions:
        offset = snapshot.committed_offset
        table.add_row(
            str(snapshot.partition),
            "none" if offset is None else f"{offset:,}",
            f"{snapshot.cards:,}",
            snapshot.file,
            snapshot.sha256[:12] + "…",
        )
    return table
