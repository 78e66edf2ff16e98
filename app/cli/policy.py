"""``fraudscore policy show|set``: the active decision policy, and new versions of it.

Thin Typer commands over :mod:`app.db.registry`. ``set`` makes a new version from the active
policy (or, when the registry has none, the configured thresholds and default rules) with the
options given, and makes it the one active policy; running workers pick it up within
``FRAUDSCORE_REGISTRY_POLL_MS``.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Annotated, Any

import typer
from rich.table import Table

from app.cli.console import OutputFormat, stdout
from app.cli.model import Actor, Output, actor_name, changed, registry_command
from app.db import registry
from app.live_pipeline import configured_policy
from app.settings import get_settings

app = typer.Typer(help="The decision policy: thresholds and hard rules", no_args_is_help=True)

_MEANING = {
    "review_threshold": "score at which to REVIEW",
    "decline_threshold": "score at which to DECLINE",
    "velocity_count_above": "velocity rule: more than this many transactions in 60 s ...",
    "velocity_amount_above": "... totalling more than this amount: at least REVIEW",
    "many_merchants_10m": "reason MANY_MERCHANTS_10M from this many merchants in 10 min",
    "high_amount": "reason HIGH_AMOUNT from this amount",
}


@app.command()
def show(output: Output = OutputFormat.text) -> None:
    """The policy workers apply: the registry's active one, else the configured one."""
    settings = get_settings()
    with registry_command() as session:
        row = registry.active_policy(session)
        policy = configured_policy(settings) if row is None else registry.policy_of(row)
        origin = (
            "configured (FRAUDSCORE_REVIEW_THRESHOLD, FRAUDSCORE_DECLINE_THRESHOLD)"
            if row is None
            else f"set {row.created_at:%Y-%m-%d %H:%M} by {row.created_by}"
        )
    if output is OutputFormat.json:
        typer.echo(json.dumps(dataclasses.asdict(policy)))
        return
    table = Table(title=f"policy {policy.version}", caption=origin)
    for column in ("field", "value", "meaning"):
        table.add_column(column)
    for name, meaning in _MEANING.items():
        table.add_row(name, f"{getattr(policy, name):g}", meaning)
    stdout.print(table)


def _option(name: str, low: float, high: float | None = None) -> Any:
    return typer.Option(min=low, max=high, help=f"New {_MEANING[name]}", show_default=False)


def set_(
    *,
    review_threshold: Annotated[float | None, _option("review_threshold", 0, 1)] = None,
    decline_threshold: Annotated[float | None, _option("decline_threshold", 0, 1)] = None,
    velocity_count_above: Annotated[int | None, _option("velocity_count_above", 0)] = None,
    velocity_amount_above: Annotated[float | None, _option("velocity_amount_above", 0)] = None,
    many_merchants_10m: Annotated[int | None, _option("many_merchants_10m", 1)] = None,
    high_amount: Annotated[float | None, _option("high_amount", 0)] = None,
    actor: Actor = None,
) -> None:
    """Make a new policy version from the active one with these changes, and activate it.

    Options not given keep the active policy's value. Example: fraudscore policy set
    --review-threshold 0.4 --decline-threshold 0.8
    """
    changes = {
        name: value
        for name, value in {
            "review_threshold": review_threshold,
            "decline_threshold": decline_threshold,
            "velocity_count_above": velocity_count_above,
            "velocity_amount_above": velocity_amount_above,
            "many_merchants_10m": many_merchants_10m,
            "high_amount": high_amount,
        }.items()
        if value is not None
    }
    if not changes:
        raise typer.BadParameter("give at least one value to change (see --help)")
    configured = configured_policy(get_settings())
    with registry_command() as session:
        row = registry.set_policy(session, actor_name(actor), configured, changes)
        changed(f"policy [bold]{row.version}[/bold] is active ({_listed(changes)})")


def _listed(changes: dict[str, float | int]) -> str:
    return ", ".join(f"{name} {value:g}" for name, value in changes.items())


app.command("set")(set_)
