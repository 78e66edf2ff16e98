"""``fraudscore demo``: start Kafka and a worker, feed traffic, watch decisions arrive."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from app.broker import LocalBroker
from app.cli.authorizer import result_table
from app.cli.console import catch_errors, console, stdout
from app.demo import DemoSummary, demo_log, run_demo
from app.settings import get_settings

_STYLE = {"APPROVE": "green", "REVIEW": "yellow", "DECLINE": "bold red"}


class _LiveView:
    """Progress bars plus the latest decisions, redrawn by rich.Live."""

    def __init__(self, count: int, malformed: int) -> None:
        self.progress = Progress(
            TextColumn("{task.description:>10}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
        )
        self._sent = self.progress.add_task("sent", total=count + malformed)
        self._decided = self.progress.add_task("decided", total=count)
        self._dlq = self.progress.add_task("DLQ", total=malformed)
        self.recent: deque[dict[str, object]] = deque(maxlen=12)

    def sent(self, n: int) -> None:
        self.progress.advance(self._sent, n)

    def decided(self, decision: dict[str, object]) -> None:
        self.progress.advance(self._decided)
        self.recent.append(decision)

    def dead_lettered(self, reason: str) -> None:
        self.progress.advance(self._dlq)

    def __rich__(self) -> Group:
        table = Table(
            "transaction",
            "card",
            "amount",
            "score",
            "decision",
            "reasons",
            title="latest decisions (read_committed)",
            expand=True,
        )
        for d in self.recent:
            outcome = str(d["decision"])
            table.add_row(
                str(d["transaction_id"]),
                str(d["card_id"]),
                f"{d['amount']} {d['currency']}",
                f"{float(str(d['score'])):.3f}",
                f"[{_STYLE[outcome]}]{outcome}",
                ", ".join(map(str, d["reasons"])),  # type: ignore[call-overload]
            )
        return Group(self.progress, table)


def _print_summary(summary: DemoSummary) -> None:
    table = Table(title="demo summary", show_header=False)
    sent = summary.loadgen
    if sent is not None:
        table.add_row(
            "sent",
            f"{sent.valid:,} transactions ({sent.fraud:,} fraudulent) + {sent.malformed} malformed",
        )
    table.add_row("decided", f"{summary.decided:,} in {summary.elapsed_s:.1f}s")
    for outcome in ("APPROVE", "REVIEW", "DECLINE"):
        table.add_row(f"  {outcome}", f"{summary.outcomes[outcome]:,}")
    caught = summary.fraud_outcomes
    table.add_row(
        "fraud caught",
        f"{caught['DECLINE']:,} declined, {caught['REVIEW']:,} reviewed, "
        f"{caught['APPROVE']:,} approved",
    )
    table.add_row("top reasons", ", ".join(f"{r} x{n}" for r, n in summary.reasons.most_common(4)))
    table.add_row(
        "dead letters", ", ".join(f"{r} x{n}" for r, n in sorted(summary.dead_letters.items()))
    )
    snapshots = ", ".join(f"{v} x{n:,}" for v, n in sorted(summary.merchant_snapshots.items()))
    table.add_row(
        "merchant risk",
        f"{summary.history_labels:,} history labels aggregated; snapshots used: {snapshots}; "
        f"{summary.known_merchants:,} decisions at merchants with labels in the last 30 days",
    )
    stdout.print(table)


def demo(
    *,
    count: Annotated[int, typer.Option(help="Valid transactions to generate", min=1)] = 20_000,
    rate: Annotated[
        float, typer.Option(help="Records per second (0 = as fast as possible)")
    ] = 2_000,
    cards: Annotated[int, typer.Option(help="Distinct cards in the traffic", min=1)] = 50_000,
    malformed: Annotated[int, typer.Option(help="Malformed records mixed in (go to the DLQ)")] = 25,
    seed: Annotated[int, typer.Option(help="Seed of the generated traffic")] = 1,
    authorized: Annotated[
        int,
        typer.Option(
            min=0,
            help="Of the transactions, the last this many are sent by the authorizer, one by "
            "one, each waiting for its decision (see `fraudscore authorizer`)",
        ),
    ] = 500,
    authorized_rate: Annotated[
        float,
        typer.Option(
            min=0,
            help="Transactions per second the authorizer sends (0 = at once): a rate one "
            "worker on a small machine decides within the authorization window",
        ),
    ] = 250,
) -> None:
    """Start the local Kafka, the merchant-risk aggregator and a worker, feed generated
    traffic, and watch decisions live.

    Everything runs on the embedded defaults (Kafka on 127.0.0.1:9092, state under ./var).
    The broker keeps running afterwards; stop it with `fraudscore kafka down`.
    """
    settings = get_settings()
    if authorized > count:
        raise typer.BadParameter(f"at most --count ({count})", param_hint="--authorized")
    with catch_errors():
        broker = LocalBroker(settings)
        with console.status(
            "Starting the local Kafka broker (the first run fetches it with Maven)…"
        ):
            broker.fetch()
            broker.ensure_running(60.0)
        view = _LiveView(count, malformed)
        with Live(view, console=stdout, refresh_per_second=4):
            summary = asyncio.run(
                run_demo(
                    settings,
                    view,
                    count=count,
                    rate=rate,
                    cards=cards,
                    seed=seed,
                    malformed=malformed,
                    authorized=authorized,
                    authorized_rate=authorized_rate,
                )
            )
    _print_summary(summary)
    if summary.authorizer is not None:
        stdout.print(result_table(summary.authorizer, title="the authorizer's view"))
    console.print(
        f"logs: {demo_log(settings)}, {demo_log(settings, 'merchant-risk')}; "
        "broker still running (`fraudscore kafka down`)"
    )
