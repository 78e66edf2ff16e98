"""``fraudscore generate``: weeks of synthetic traffic and late labels to Parquet (and Kafka).

A thin Typer command over :func:`app.generate.generate_dataset`.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from app.cli.console import catch_errors, console, stdout
from app.cli.savepoint import broker_errors
from app.settings import get_settings
from models.synthetic import DAY_MS, DEFAULT_START_MS

if TYPE_CHECKING:  # the command imports it when run: pyarrow costs every other command's start
    from app.generate import GenerateResult


def generate(
    *,
    out: Annotated[Path, typer.Option(help="Dataset directory to write the Parquet files to")],
    cards: Annotated[int, typer.Option(min=1, help="Distinct cards")] = 10_000,
    days: Annotated[float, typer.Option(min=0.01, help="Days of event time, from 2026-01-01")] = 91,
    seed: Annotated[int, typer.Option(help="Seed: the same seed writes the same records")] = 1,
    fraud_rate: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="Long-run share of fraudulent transactions")
    ] = 0.005,
    per_card_daily: Annotated[
        float, typer.Option(min=0.01, help="Mean purchases per card and day (before follow-ups)")
    ] = 1.5,
    kafka: Annotated[
        bool,
        typer.Option(
            help="Also produce the transactions to the input topic and the labels to the labels "
            "topic (FRAUDSCORE_INPUT_TOPIC, FRAUDSCORE_LABELS_TOPIC)"
        ),
    ] = False,
) -> None:
    """Generate card traffic with labelled fraud scenarios and late labels, for training."""
    from app.generate import DatasetSpec, generate_dataset  # noqa: PLC0415 - pyarrow, see above

    settings = get_settings()
    spec = DatasetSpec(
        cards=cards, days=days, seed=seed, fraud_rate=fraud_rate, per_card_daily=per_card_daily
    )
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("day {task.completed:.1f} of {task.total:g}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with catch_errors(), Progress(*columns, console=console) as progress:
        task = progress.add_task(f"generating {out}", total=days)

        def advance(newest_ms: int) -> None:
            progress.update(task, completed=(newest_ms - DEFAULT_START_MS) / DAY_MS)

        with broker_errors(settings):
            result = asyncio.run(
                generate_dataset(settings, spec, out, kafka=kafka, on_progress=advance)
            )
    stdout.print(_summary(result), highlight=False, soft_wrap=True)


def _summary(result: GenerateResult) -> str:
    sent = "" if result.topics is None else " and to topics {} and {}".format(*result.topics)
    return (
        f"wrote {result.transactions:,} transactions ({result.fraud:,} fraud) and "
        f"{result.labels:,} labels ({result.fraud_labels:,} fraud) to {result.directory}{sent}"
    )
