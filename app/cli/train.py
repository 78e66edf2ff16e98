"""``fraudscore train``: train, evaluate out of time, write the artefact and the report.

A thin Typer command over :func:`app.training.train_from_dataset`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.cli.console import catch_errors, console, stdout
from app.settings import get_settings
from models.policy import Policy

if TYPE_CHECKING:  # the command imports them when run: pyarrow and scikit-learn cost every
    # other command's start (3-4 s)
    from app.training import TrainResult


def train(
    data: Annotated[
        Path, typer.Argument(help="Dataset directory written by `fraudscore generate`")
    ],
    *,
    out: Annotated[Path, typer.Option(help="Directory under which each run gets its own")] = Path(
        "var/models"
    ),
    version: Annotated[
        str | None, typer.Option(help="Model version (default: gbt-<UTC time of the run>)")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the trees and the calibration split")] = 1,
    warmup_days: Annotated[
        float, typer.Option(min=0, help="First days: build card state only, no training rows")
    ] = 28,
    gap_days: Annotated[
        float, typer.Option(min=0, help="Days between training and test, for labels to arrive")
    ] = 14,
    test_days: Annotated[float, typer.Option(min=1, help="Last days: the test period")] = 28,
    max_iter: Annotated[int, typer.Option(min=1, help="Boosting iterations (trees)")] = 200,
) -> None:
    """Train a model on a generated dataset, evaluate it out of time, write artefact + report."""
    from app.training import train_from_dataset  # noqa: PLC0415 - pyarrow, see above
    from models.training import TrainingConfig  # noqa: PLC0415 - scikit-learn, see above

    settings = get_settings()
    config = TrainingConfig(
        warmup_days=warmup_days,
        gap_days=gap_days,
        test_days=test_days,
        max_iter=max_iter,
        seed=seed,
    )
    policy = Policy(
        review_threshold=settings.review_threshold, decline_threshold=settings.decline_threshold
    )
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with catch_errors(), Progress(*columns, console=console) as progress:
        task = progress.add_task("reading", total=None)

        def report(stage: str, completed: int, total: int) -> None:
            progress.update(task, description=stage, completed=completed, total=total)

        result = train_from_dataset(
            data,
            out,
            config,
            policy=policy,
            max_record_bytes=settings.max_record_bytes,
            merchant_params=settings.merchant_params,
            version=version,
            on_progress=report,
        )
    stdout.print(_summary(result))


def _summary(result: TrainResult) -> Table:
    e = result.run.evaluation
    table = Table(title=f"model {result.run.scorer.version}: test period")
    table.add_column("metric")
    table.add_column("model", justify="right")
    table.add_column("velocity rule", justify="right")
    for key, value in e.model.as_dict().items():
        table.add_row(key, f"{value:.4f}", f"{e.baseline.as_dict()[key]:.4f}")
    table.caption = f"artefact and report: {result.directory} (report.md)"
    return table
