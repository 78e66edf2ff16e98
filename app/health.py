"""Health probes for containers (``fraudscore healthcheck``): is the broker reachable with
this process's settings, does an HTTP endpoint answer 2xx. Each raises
:class:`~app.errors.HealthError` saying what failed."""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request

from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from app.errors import HealthError
from app.settings import FraudscoreSettings
from sinks.kafka import client_options


async def check_kafka(settings: FraudscoreSettings, timeout_s: float) -> int:
    """The number of topics the broker lists; the broker must answer within ``timeout_s``."""
    admin = AIOKafkaAdminClient(
        **client_options(settings), request_timeout_ms=int(timeout_s * 1000)
    )
    try:
        await asyncio.wait_for(admin.start(), timeout_s)
        return len(await asyncio.wait_for(admin.list_topics(), timeout_s))
    except (KafkaError, TimeoutError, OSError) as exc:
        raise HealthError(f"Kafka at {settings.kafka_bootstrap} does not answer: {exc!r}") from exc
    finally:
        await admin.close()


def check_http(url: str, timeout_s: float) -> int:
    """The HTTP status of ``url`` (GET), which must be 2xx within ``timeout_s``."""
    if not url.startswith(("http://", "https://")):
        raise HealthError(f"{url!r} is not an http(s) URL")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - checked
            return int(response.status)
    except urllib.error.HTTPError as exc:
        raise HealthError(f"{url} answered {exc.code}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise HealthError(f"{url} does not answer: {exc}") from exc
