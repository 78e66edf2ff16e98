"""``fraudscore worker``: run one scoring worker in the foreground."""

from __future__ import annotations

import asyncio

import typer

from app.cli.console import catch_errors, console
from app.logs import configure_logging
from app.settings import get_settings
from app.worker import serve


def worker(
    log_level: str = typer.Option("INFO", help="Log level: DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Consume transactions, score them and publish decisions, exactly once.

    Joins the consumer group FRAUDSCORE_GROUP_ID on FRAUDSCORE_INPUT_TOPIC (creating the
    service's topics if missing), restores each assigned partition's state from its changelog,
    and runs until SIGTERM or Ctrl-C, when it checkpoints and leaves the group. Start more
    workers with the same settings to share the partitions.
    """
    configure_logging(log_level)
    settings = get_settings()
    console.print(
        f"worker on [bold]{settings.kafka_bootstrap}[/bold]: "
        f"{settings.input_topic} → {settings.decisions_topic} (group {settings.group_id})"
    )
    with catch_errors():
        asyncio.run(serve(settings))
