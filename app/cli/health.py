"""``fraudscore healthcheck``: the containers' health probe (docker/Dockerfile, compose.yaml)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer

from app.cli.console import catch_errors, console
from app.health import check_http, check_kafka
from app.settings import get_settings


def healthcheck(
    http: Annotated[
        str | None,
        typer.Option(help="Check this URL answers 2xx (e.g. the API's /readyz) instead of Kafka"),
    ] = None,
    timeout_s: Annotated[float, typer.Option(min=0.1, help="Longest wait for the answer")] = 5.0,
) -> None:
    """Exit 0 if the Kafka broker of FRAUDSCORE_KAFKA_BOOTSTRAP answers (or --http URL answers
    2xx), else print why and exit 1."""
    with catch_errors():
        if http is not None:
            status = check_http(http, timeout_s)
            console.print(f"{http}: {status}")
        else:
            logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the error says it all
            settings = get_settings()
            topics = asyncio.run(check_kafka(settings, timeout_s))
            console.print(f"Kafka at {settings.kafka_bootstrap}: {topics} topics")
