"""``fraudscore kafka ...``: run the project's local Kafka broker (up, down, status, logs).

Thin Typer commands over :class:`app.broker.LocalBroker`; all process logic lives there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from app.broker import BrokerStatus, LocalBroker
from app.cli.console import OutputFormat, catch_errors, console, stdout
from app.errors import BrokerError
from app.settings import get_settings

app = typer.Typer(
    help="Run a local single-node Apache Kafka (KRaft) for development and tests",
    no_args_is_help=True,
)


def _broker() -> LocalBroker:
    return LocalBroker(get_settings())


@app.command()
def up(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait for the broker to answer", min=1)
    ] = 60.0,
) -> None:
    """Fetch Kafka if needed, start the broker, and wait until it answers (idempotent)."""
    with catch_errors():
        broker = _broker()
        if not broker.is_fetched:
            with console.status(f"Fetching Apache Kafka {broker.version} jars with Maven…"):
                broker.fetch()
        with console.status(f"Starting Kafka {broker.version} at {broker.bootstrap}…"):
            pid, started = broker.ensure_running(timeout)
    state = "started" if started else "already running"
    console.print(
        f"[green]Kafka {broker.version} {state}[/green] at {broker.bootstrap} (pid {pid}); "
        f"log: {broker.log_path}",
        soft_wrap=True,
    )


@app.command()
def down(
    timeout: Annotated[
        float, typer.Option(help="Seconds to wait after SIGTERM before SIGKILL", min=1)
    ] = 30.0,
) -> None:
    """Stop the broker started by `fraudscore kafka up` (idempotent)."""
    with catch_errors():
        broker = _broker()
        with console.status("Stopping Kafka…"):
            stopped = broker.down(timeout)
    console.print("[green]Kafka stopped[/green]" if stopped else "Kafka was not running")


@app.command()
def status(
    output: Annotated[
        OutputFormat, typer.Option("--output", "-o", help="Output format")
    ] = OutputFormat.text,
) -> None:
    """Show whether the broker runs, its PID, address, data and log."""
    with catch_errors():
        state = _broker().status()
    if output is OutputFormat.json:
        typer.echo(json.dumps(_status_dict(state)))
    else:
        stdout.print(_status_table(state))


def _status_dict(state: BrokerStatus) -> dict[str, object]:
    return {
        "running": state.running,
        "pid": state.pid,
        "bootstrap": state.bootstrap,
        "version": state.version,
        "data_dir": str(state.data_dir),
        "log_path": str(state.log_path),
    }


def _status_table(state: BrokerStatus) -> Table:
    table = Table(show_header=False, box=None)
    if state.running:
        running = f"[green]running[/green] (pid {state.pid})"
    elif state.pid is not None:
        running = f"[yellow]starting or not answering[/yellow] (pid {state.pid})"
    else:
        running = "[red]stopped[/red]"
    for key, value in (
        ("state", running),
        ("bootstrap", state.bootstrap),
        ("version", state.version),
        ("data", str(state.data_dir)),
        ("log", str(state.log_path)),
    ):
        table.add_row(f"[bold]{key}[/bold]", value)
    return table


@app.command()
def logs(
    lines: Annotated[int, typer.Option("--lines", "-n", help="Lines to show", min=0)] = 50,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines until Ctrl-C")
    ] = False,
) -> None:
    """Print the end of the broker's log, optionally following it like `tail -f`."""
    broker = _broker()
    path = broker.log_path
    with catch_errors():
        if not path.exists() and not follow:
            raise BrokerError(f"No broker log yet at {path}; start it with `fraudscore kafka up`")
    position = path.stat().st_size if path.exists() else 0
    text = broker.tail(lines)
    if text:
        typer.echo(text)
    if follow:
        _follow(path, position)


def _follow(path: Path, position: int) -> None:
    try:
        while True:
            position = _echo_new(path, position)
            time.sleep(0.25)
    except KeyboardInterrupt:
        pass


def _echo_new(path: Path, position: int) -> int:
    """Print what was appended to ``path`` after ``position``; return the new position."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size < position:  # truncated or replaced: start over
        position = 0
    if size > position:
        with path.open("rb") as f:
            f.seek(position)
            chunk = f.read(size - position)
        typer.echo(chunk.decode(errors="replace"), nl=False)
        position += len(chunk)
    return position
