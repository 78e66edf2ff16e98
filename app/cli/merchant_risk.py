"""``fraudscore merchant-risk``: run the merchant-risk aggregator in the foreground."""

from __future__ import annotations

import typer

from app.cli.console import announce, catch_errors
from app.logs import configure_logging
from app.merchant_risk import serve
from app.settings import get_settings


def merchant_risk(
    log_level: str = typer.Option("INFO", help="Log level: DEBUG, INFO, WARNING or ERROR."),
) -> None:
    """Turn labels into daily merchant-risk snapshots for the workers, exactly once.

    Reads every partition of FRAUDSCORE_LABELS_TOPIC (chargebacks and analyst verdicts),
    stores each label once in the registry database (FRAUDSCORE_DATABASE_URL; run
    `fraudscore db upgrade` first), dead-letters invalid ones to FRAUDSCORE_LABELS_DLQ_TOPIC,
    and publishes the snapshot of day d (per-merchant labelled transactions and fraud share
    over 1, 7 and 30 days, ending FRAUDSCORE_MERCHANT_RISK_DELAY_DAYS before d) once the labels
    reported up to the start of day d-1 are in. Workers pick snapshots up as they appear.
    Runs until SIGTERM or Ctrl-C, then stores what it has read. Run one per labels topic.
    See docs/adr/0005-merchant-risk-snapshots.md.
    """
    settings = get_settings()
    configure_logging(log_level, settings, "merchant-risk")
    announce(
        f"merchant-risk aggregator on [bold]{settings.kafka_bootstrap}[/bold]: "
        f"{settings.labels_topic} → merchant snapshots (delay {settings.merchant_risk_delay_days} "
        "days)"
    )
    with catch_errors():
        serve(settings)
