"""``fraudscore worker``: run one scoring worker in the foreground."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from app.cli.console import announce, catch_errors, console
from app.cli.savepoint import broker_errors, partition_progress
from app.logs import configure_logging
from app.savepoint import import_savepoint
from app.settings import FraudscoreSettings, get_settings
from app.worker import serve


def worker(
    log_level: str = typer.Option("INFO", help="Log level: DEBUG, INFO, WARNING or ERROR."),
    from_savepoint: Annotated[
        Path | None,
        typer.Option(
            "--from-savepoint",
            help="Start a NEW deployment (new FRAUDSCORE_GROUP_ID and empty "
            "FRAUDSCORE_CHANGELOG_TOPIC) from this savepoint, then serve as usual.",
        ),
    ] = None,
) -> None:
    """Consume transactions, score them and publish decisions, exactly once.

    Joins the consumer group FRAUDSCORE_GROUP_ID on FRAUDSCORE_INPUT_TOPIC (creating the
    service's topics if missing), restores each assigned partition's state from its changelog,
    and runs until SIGTERM or Ctrl-C, when it checkpoints and leaves the group. Start more
    workers with the same settings to share the partitions.

    With --from-savepoint DIR it first publishes the savepoint's card states and input offsets
    to the new deployment's changelog and group (see docs/SAVEPOINTS.md); run that once, on
    one worker, and start the others without the option.
    """
    settings = get_settings()
    configure_logging(log_level, settings, "worker")
    announce(
        f"worker on [bold]{settings.kafka_bootstrap}[/bold]: "
        f"{settings.input_topic} → {settings.decisions_topic} (group {settings.group_id})"
    )
    with catch_errors():
        if from_savepoint is not None:
            _import(settings, from_savepoint)
        serve(settings)


def _import(settings: FraudscoreSettings, directory: Path) -> None:
    with broker_errors(settings), partition_progress("importing") as progress:
        manifest = asyncio.run(import_savepoint(settings, directory, progress=progress))
    console.print(
        f"imported savepoint {directory} ({manifest.created_at}): {manifest.cards:,} cards "
        f"into {settings.changelog_topic}, offsets into group {settings.group_id}",
        soft_wrap=True,
    )
