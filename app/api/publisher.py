"""The API's Kafka producer: analyst labels to the labels topic, acknowledged by the broker.

Owned by the application's lifespan. It connects on first use, not at start, so that the API
serves everything else while the broker is down; a label sent then, or not acknowledged
within ``FRAUDSCORE_API_KAFKA_TIMEOUT_MS``, is an :class:`~app.api.errors.UnavailableError`
(503) and the next one tries again. A label whose acknowledgement timed out may still land:
a client that retries with the same ``reported_at`` sends the same label, which the
aggregator stores once (``app/db/merchant_risk.py``).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.structs import RecordMetadata

from app.api.errors import UnavailableError
from app.settings import FraudscoreSettings
from sinks.kafka import bulk_producer, ensure_topics

log = logging.getLogger(__name__)


class LabelPublisher:
    def __init__(self, settings: FraudscoreSettings) -> None:
        self._settings = settings
        self._timeout_s = settings.api_kafka_timeout_ms / 1000
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def publish(self, key: bytes, value: bytes) -> RecordMetadata:
        """Send one label and wait for the broker's acknowledgement."""
        topic = self._settings.labels_topic
        try:
            async with asyncio.timeout(self._timeout_s):
                producer = await self._started()
                metadata: RecordMetadata = await producer.send_and_wait(topic, value, key=key)
                return metadata
        except (KafkaError, TimeoutError) as exc:
            raise UnavailableError(
                f"the broker {self._settings.kafka_bootstrap} did not take the label "
                f"({exc.__class__.__name__}): retry later with the same reported_at"
            ) from exc

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = bulk_producer(self._settings)
                try:
                    await ensure_topics(self._settings)
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
                log.info("label producer connected to %s", self._settings.kafka_bootstrap)
            return self._producer

    async def close(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
