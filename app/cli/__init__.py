"""The ``fraudscore`` command line: the root Typer app and its sub-command groups."""

from __future__ import annotations

import typer

from app.cli import api, audit, db, kafka, model, policy, savepoint
from app.cli.authorizer import authorizer
from app.cli.bench import bench
from app.cli.demo import demo
from app.cli.generate import generate
from app.cli.health import healthcheck
from app.cli.loadgen import loadgen
from app.cli.merchant_risk import merchant_risk
from app.cli.replay import replay
from app.cli.train import train
from app.cli.worker import worker

app = typer.Typer(
    name="fraudscore",
    help="Real-time card-fraud scoring on Kafka, exactly once.",
    no_args_is_help=True,
)
app.add_typer(
    kafka.app,
    name="kafka",
    help="Run a local single-node Apache Kafka (KRaft) for development and tests",
)
app.add_typer(
    savepoint.app,
    name="savepoint",
    help="Portable snapshots of all card state and the committed input offsets",
)
app.add_typer(
    audit.app,
    name="audit",
    help="Query and maintain the audit trail (the Iceberg table of every decision)",
)
app.add_typer(db.app, name="db", help="The registry database: migrations and admin audit log")
app.add_typer(
    model.app, name="model", help="The model registry: register, shadow, promote, roll back"
)
app.add_typer(policy.app, name="policy", help="The decision policy: thresholds and hard rules")
app.add_typer(
    api.app, name="api", help="The REST API: serve it (no sub-command), or mint a dev token"
)

app.command()(worker)
app.command(name="audit-sink")(audit.audit_sink)
app.command(name="merchant-risk")(merchant_risk)
app.command()(demo)
app.command()(loadgen)
app.command()(authorizer)
app.command()(healthcheck)
app.command()(generate)
app.command()(train)
app.command()(replay)
app.command()(bench)


def main() -> None:
    app()
