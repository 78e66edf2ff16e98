"""``fraudscore model ...``: register model artefacts, shadow, promote and roll them back.

Thin Typer commands over :mod:`app.db.registry`; the states and their rules are in
docs/REGISTRY.md. Running workers pick a change up within ``FRAUDSCORE_REGISTRY_POLL_MS``.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from sqlalchemy.orm import Session

from app.cli.console import OutputFormat, catch_errors, stdout
from app.db import registry
from app.db.session import registry_session
from app.db.tables import ModelVersion
from app.settings import get_settings

app = typer.Typer(
    help="The model registry: register artefacts, shadow, promote, roll back",
    no_args_is_help=True,
)

Actor = Annotated[
    str | None,
    typer.Option(help="Who makes the change, for the audit log (default: your OS user name)"),
]
Output = Annotated[OutputFormat, typer.Option("--output", "-o", help="Output format")]


def actor_name(actor: str | None) -> str:
    return actor or getpass.getuser()


@contextmanager
def registry_command() -> Iterator[Session]:
    """The registry session of one command: committed at its end; a registry, database or
    artefact error becomes one line on stderr and exit code 1."""
    with catch_errors(), registry_session(get_settings()) as session:
        yield session


def changed(message: str) -> None:
    """Report a change that running workers will pick up."""
    stdout.print(
        f"{message}; running workers switch within {get_settings().registry_poll_ms} ms",
        soft_wrap=True,
    )


@app.command()
def register(
    artefact_dir: Annotated[
        Path, typer.Argument(help="Model artefact directory written by `fraudscore train`")
    ],
    actor: Actor = None,
) -> None:
    """Register a trained model artefact as a candidate (checked as a worker would load it)."""
    with registry_command() as session:
        row = registry.register_model(session, artefact_dir, actor_name(actor))
        stdout.print(
            f"registered model [bold]{row.version}[/bold] as a candidate, from {row.artefact_path}",
            soft_wrap=True,
        )


def _metric(row: ModelVersion, name: str) -> str:
    value = row.metrics.get("model", {}).get(name)
    return "-" if value is None else f"{value:.4f}"


def _as_dict(row: ModelVersion) -> dict[str, Any]:
    return {
        "version": row.version,
        "status": row.status.value,
        "artefact_path": row.artefact_path,
        "model_sha256": row.model_sha256,
        "feature_schema_version": row.feature_schema_version,
        "metrics": row.metrics,
        "registered_by": row.registered_by,
        "registered_at": row.registered_at.isoformat(),
        "status_changed_by": row.status_changed_by,
        "status_changed_at": row.status_changed_at.isoformat(),
    }


@app.command("list")
def list_models(output: Output = OutputFormat.text) -> None:
    """Every registered model: status, test metrics, who registered and last moved it."""
    with registry_command() as session:
        rows = registry.models(session)
        if output is OutputFormat.json:
            typer.echo(json.dumps([_as_dict(row) for row in rows]))
            return
        table = Table(title="registered models")
        for column in ("version", "status", "AUC ROC", "avg precision", "registered", "changed"):
            table.add_column(column, justify="right" if " " in column else "left")
        for row in rows:
            table.add_row(
                row.version,
                row.status.value,
                _metric(row, "auc_roc"),
                _metric(row, "average_precision"),
                f"{row.registered_at:%Y-%m-%d %H:%M} by {row.registered_by}",
                f"{row.status_changed_at:%Y-%m-%d %H:%M} by {row.status_changed_by}",
            )
        table.caption = None if rows else "none: `fraudscore model register ARTEFACT_DIR`"
        stdout.print(table)


@app.command()
def promote(
    version: Annotated[str, typer.Argument(help="Registered model version to make active")],
    actor: Actor = None,
) -> None:
    """Make a model the active one: it decides; the model active before is retired."""
    with registry_command() as session:
        previous = registry.promote(session, version, actor_name(actor))
        replaced = "" if previous is None else f" (replaces {previous.version}, now retired)"
        changed(f"model [bold]{version}[/bold] is active{replaced}")


@app.command()
def rollback(actor: Actor = None) -> None:
    """Undo the newest promotion: its model is retired, the one active before it is back."""
    with registry_command() as session:
        undone, restored = registry.rollback(session, actor_name(actor))
        changed(f"rolled back {undone.version}: model [bold]{restored.version}[/bold] is back")


@app.command()
def shadow(
    version: Annotated[str, typer.Argument(help="Registered model version to score in shadow")],
    actor: Actor = None,
) -> None:
    """Score a model beside the active one: its score is recorded, it never decides."""
    with registry_command() as session:
        previous = registry.shadow(session, version, actor_name(actor))
        replaced = "" if previous is None else f" (instead of {previous.version})"
        changed(f"model [bold]{version}[/bold] is in shadow{replaced}")


@app.command()
def unshadow(actor: Actor = None) -> None:
    """Stop shadow scoring: the shadow model becomes a candidate again."""
    with registry_command() as session:
        row = registry.unshadow(session, actor_name(actor))
        changed(f"model {row.version} is no longer in shadow")
