"""``fraudscore loadgen``: produce synthetic card traffic to the input topic, with progress.

A thin Typer command over :func:`app.loadgen.produce`; register it with
``app.command()(loadgen)``.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from aiokafka.errors import KafkaError
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from app.cli.console import catch_errors, console, stdout
from app.errors import BrokerError
from app.loadgen import LoadgenResult, produce
from app.settings import FraudscoreSettings, get_settings
from models.synthetic import DEFAULT_CARDS


class _RateColumn(ProgressColumn):
    """Records per second, as measured by the progress bar."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("? rec/s" if speed is None else f"{speed:,.0f} rec/s", style="cyan")


def loadgen(
    *,
    rate: Annotated[
        float,
        typer.Option(min=0, help="Records per second of wall-clock time; 0 = as fast as possible"),
    ] = 1000.0,
    count: Annotated[int, typer.Option(min=0, help="Synthetic transactions to produce")] = 100_000,
    cards: Annotated[
        int,
        typer.Option(
            min=1,
            help="Distinct cards. Each card's activity is 200 events/s of event time divided by "
            "this, so keep it in the tens of thousands for realistic velocity features",
        ),
    ] = DEFAULT_CARDS,
    seed: Annotated[int, typer.Option(help="Seed: the same seed produces the same records")] = 1,
    malformed: Annotated[
        int,
        typer.Option(
            min=0, help="Malformed records to interleave at deterministic positions (for the DLQ)"
        ),
    ] = 0,
    topic: Annotated[
        str | None,
        typer.Option(help="Topic to produce to (default: the input topic, FRAUDSCORE_INPUT_TOPIC)"),
    ] = None,
) -> None:
    """Produce synthetic card transactions, keyed by card token, to the input topic."""
    settings = get_settings()
    with catch_errors():
        try:
            result = asyncio.run(
                _run(
                    settings,
                    count=count,
                    cards=cards,
                    seed=seed,
                    rate=rate,
                    malformed=malformed,
                    topic=topic,
                )
            )
        except KafkaError as exc:
            raise BrokerError(
                f"cannot produce to Kafka at {settings.kafka_bootstrap}: {exc}; "
                "is it running? (`fraudscore kafka up`)"
            ) from exc
    stdout.print(_summary(result), highlight=False, soft_wrap=True)


async def _run(
    settings: FraudscoreSettings,
    *,
    count: int,
    cards: int,
    seed: int,
    rate: float,
    malformed: int,
    topic: str | None,
) -> LoadgenResult:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console) as progress:
        task = progress.add_task(
            f"producing to {topic or settings.input_topic}", total=count + malformed
        )
        return await produce(
            settings,
            count=count,
            cards=cards,
            seed=seed,
            rate=rate,
            malformed=malformed,
            topic=topic,
            on_progress=lambda n: progress.advance(task, n),
        )


def _summary(result: LoadgenResult) -> str:
    return (
        f"produced {result.sent:,} records to {result.topic} in {result.elapsed_s:.1f} s "
        f"({result.rate:,.0f}/s): {result.valid:,} transactions ({result.fraud:,} fraud), "
        f"{result.malformed:,} malformed"
    )
