"""``fraudscore authorizer``: the reference authorization-service client, with a progress bar
and a summary (a table, or JSON for scripts). The logic is :mod:`app.authorizer`."""

from __future__ import annotations

import asyncio
from typing import Annotated

import msgspec
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.authorizer import DEFAULT_TIMEOUT_MS, AuthorizerResult, authorize, single
from app.cli.console import OutputFormat, catch_errors, console, stdout
from app.cli.savepoint import broker_errors
from app.latency import LatencySummary
from app.pacer import paced_records
from app.settings import get_settings
from models.policy import Outcome
from models.synthetic import DEFAULT_CARDS


class _Bars:
    """sent / answered bars, the fallbacks in the answered bar's text."""

    def __init__(self, progress: Progress, total: int) -> None:
        self.progress = progress
        self._sent = progress.add_task("sent", total=total, note="")
        self._answered = progress.add_task("answered", total=total, note="")
        self._fell_back = 0

    def sent(self, n: int) -> None:
        self.progress.advance(self._sent, n)

    def answered(self, outcome: str, *, fell_back: bool) -> None:
        self._fell_back += fell_back
        note = f"{self._fell_back:,} fell back" if self._fell_back else ""
        self.progress.update(self._answered, advance=1, note=note)


def authorizer(
    *,
    count: Annotated[int, typer.Option(min=1, help="Generated transactions to send")] = 1000,
    rate: Annotated[
        float, typer.Option(min=0, help="Transactions per second, one by one; 0 = at once")
    ] = 100.0,
    cards: Annotated[int, typer.Option(min=1, help="Distinct cards")] = DEFAULT_CARDS,
    seed: Annotated[int, typer.Option(help="Seed of the generated traffic (as loadgen)")] = 1,
    skip: Annotated[
        int,
        typer.Option(
            min=0,
            help="Send the seed's transactions from this one on (those before it were sent "
            "by loadgen: a transaction id sent twice is a duplicate, dead-lettered)",
        ),
    ] = 0,
    transaction: Annotated[
        str | None,
        typer.Option(help="Send this one transaction (JSON, the input format) instead"),
    ] = None,
    timeout_ms: Annotated[
        int, typer.Option(min=1, help="The authorization window: longest wait for a decision")
    ] = DEFAULT_TIMEOUT_MS,
    fallback: Annotated[
        Outcome, typer.Option(help="The answer when no decision arrives in time")
    ] = Outcome.APPROVE,
    output: Annotated[OutputFormat, typer.Option(help="text or json")] = OutputFormat.text,
) -> None:
    """Send transactions as an authorization service would and wait for each decision.

    Each transaction goes to FRAUDSCORE_INPUT_TOPIC; its decision is awaited on
    FRAUDSCORE_DECISIONS_TOPIC with read_committed. When none arrives within --timeout-ms the
    --fallback answer is given instead. Prints the latency percentiles (send → decision) and
    the counts: decided, fell back, and answers by outcome.
    """
    settings = get_settings()
    with catch_errors():
        if transaction is not None:
            records = [single(settings, transaction)]
        else:
            records = paced_records(count, cards, seed, skip=skip)
        progress = Progress(
            TextColumn("{task.description:>9}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}", style="yellow"),
            console=console,
        )
        with broker_errors(settings), progress:
            result = asyncio.run(
                authorize(
                    settings,
                    records,
                    rate=rate,
                    timeout_ms=timeout_ms,
                    fallback=fallback,
                    view=_Bars(progress, len(records)),
                )
            )
    if output is OutputFormat.json:
        typer.echo(msgspec.json.encode(result.as_dict()).decode())
    else:
        stdout.print(result_table(result))


def _ms(summary: LatencySummary) -> str:
    if not summary.count:
        return "-"
    return (
        f"p50 {summary.p50:.1f}  p99 {summary.p99:.1f}  p99.9 {summary.p999:.1f}  "
        f"max {summary.max:.1f}"
    )


def result_table(result: AuthorizerResult, title: str = "authorizer") -> Table:
    """The authorizer's summary for people (also shown by ``fraudscore demo``)."""
    table = Table(title=title, show_header=False)
    table.add_row("sent", f"{result.sent:,} at {result.rate:,.0f}/s")
    table.add_row("decided in time", f"{result.decided:,}")
    table.add_row(
        "fell back",
        f"{result.fell_back:,} ({result.fallback} after {result.timeout_ms} ms)"
        + (f", {result.late:,} decisions came later" if result.late else ""),
    )
    table.add_row(
        "answers", ", ".join(f"{outcome} {n:,}" for outcome, n in result.outcomes.items())
    )
    table.add_row("decision latency ms", _ms(result.latency))
    table.add_row("answer time ms", _ms(result.answer))
    return table
