"""Which worker answers for a card, and asking it: the API's side of
``GET /v1/cards/{card_id}/features`` (docs/API.md, "Card features: who answers").

- The card's input partition is :func:`sinks.kafka.key_partition` of its token (murmur2, as
  the producers partition), among the input topic's partitions.
- The partition's owner is the consumer-group member the group's assignment gives it to
  (``AdminClient.describe_consumer_groups``). A worker advertises its HTTP address in its
  consumer's ``client.id`` (:func:`advertised_client_id`), which the description returns.
- The API forwards the request, with the caller's ``Authorization`` header, to the owner's
  internal route (:data:`app.worker_http.CARD_ROUTE`) with a short timeout, on a kept-alive
  connection, from the API's event loop (:class:`WorkerClient`): a forward holds no thread.

The assignment is cached for ``FRAUDSCORE_API_CARD_OWNER_CACHE_MS`` and refreshed early on a
miss (no owner, owner unreachable, owner says it does not own the partition), at most once
per :data:`_MIN_REFRESH_S`, so a broken group does not turn every request into an admin call.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final, Protocol
from urllib.parse import quote, urlsplit

import aiohttp
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from app.api.errors import NotFoundError, UnavailableError
from app.api.handlers import ErrorBody
from app.card_features import CardFeatures
from app.settings import FraudscoreSettings
from sinks.kafka import group_admin, key_partition

log = logging.getLogger(__name__)

_CLIENT_ID_PREFIX: Final = "fraudscore-worker@"
_MIN_REFRESH_S: Final = 0.2


def advertised_client_id(url: str) -> str:
    """The ``client.id`` by which a worker says where its HTTP endpoint is."""
    return _CLIENT_ID_PREFIX + url


def advertised_url(client_id: str) -> str | None:
    """The HTTP address a member's ``client.id`` advertises, if it is a worker's."""
    if not client_id.startswith(_CLIENT_ID_PREFIX):
        return None
    url = client_id.removeprefix(_CLIENT_ID_PREFIX)
    parts = urlsplit(url)
    return url if parts.scheme in {"http", "https"} and parts.hostname else None


class _Assigned(Protocol):
    @property
    def topic_partitions(self) -> list[TopicPartition] | None: ...


class Member(Protocol):
    """What :func:`owners_of` reads of a group member (confluent-kafka's
    ``MemberDescription``)."""

    @property
    def client_id(self) -> str: ...

    @property
    def assignment(self) -> _Assigned: ...


def owners_of(members: Iterable[Member], topic: str) -> dict[int, str]:
    """Partition of ``topic`` -> the HTTP address of the member assigned it (members that
    advertise no address own nothing here: nobody could ask them)."""
    owners: dict[int, str] = {}
    for member in members:
        url = advertised_url(member.client_id)
        if url is None:
            continue
        for tp in member.assignment.topic_partitions or []:
            if tp.topic == topic:
                owners[tp.partition] = url
    return owners


@dataclass(frozen=True, slots=True)
class Assignment:
    partitions: int  # of the input topic
    owners: dict[int, str]  # partition -> worker HTTP address
    at: float  # time.monotonic() when read


class OwnerDirectory:
    """The group's assignment, cached; thread-safe (a refresh runs in a pool thread)."""

    def __init__(self, settings: FraudscoreSettings, admin: AdminClient | None = None) -> None:
        self._settings = settings
        self._admin = admin or group_admin(settings)
        self._ttl_s = settings.api_card_owner_cache_ms / 1000
        self._timeout_s = settings.api_kafka_timeout_ms / 1000
        self._lock = threading.Lock()
        self._assignment: Assignment | None = None

    async def owner(self, card_id: str, *, fresh: bool = False) -> tuple[int, str | None]:
        """The card's partition and its owner's address (None: no live owner). The cached
        assignment is used on the event loop; reading a new one (admin requests, blocking)
        happens in a pool thread."""
        assignment = self._cached(fresh)
        if assignment is None:
            assignment = await asyncio.to_thread(self._current, fresh)
        partition = key_partition(card_id.encode(), assignment.partitions)
        return partition, assignment.owners.get(partition)

    def _cached(self, fresh: bool) -> Assignment | None:
        """The cached assignment if it is recent enough (for ``fresh``: younger than the
        minimal refresh interval), else None."""
        with self._lock:
            cached = self._assignment
            if cached is not None and time.monotonic() - cached.at < self._max_age(fresh):
                return cached
            return None

    def _current(self, fresh: bool) -> Assignment:
        """The cached assignment if recent enough (another request may have refreshed it
        meanwhile), else a new one read now (blocking)."""
        with self._lock:
            cached = self._assignment
            if cached is not None and time.monotonic() - cached.at < self._max_age(fresh):
                return cached
            self._assignment = self._read()
            return self._assignment

    def _max_age(self, fresh: bool) -> float:
        return _MIN_REFRESH_S if fresh else self._ttl_s

    def _read(self) -> Assignment:
        """The input topic's partition count and the group's assignment (blocking)."""
        topic, group = self._settings.input_topic, self._settings.group_id
        try:
            metadata = self._admin.list_topics(topic, timeout=self._timeout_s)
            described = self._admin.describe_consumer_groups(
                [group], request_timeout=self._timeout_s
            )[group].result(timeout=self._timeout_s)
        except Exception as exc:  # KafkaException, timeouts: the broker cannot say now
            raise UnavailableError(f"cannot read the consumer group {group!r}: {exc}") from exc
        partitions = len(metadata.topics[topic].partitions)
        if partitions == 0:
            raise UnavailableError(f"the input topic {topic!r} does not exist yet")
        return Assignment(partitions, owners_of(described.members, topic), time.monotonic())


class WorkerClient:
    """GETs to the workers' internal card route on kept-alive connections, from the API's
    event loop (aiohttp's client session: a connection pool per worker address; made at the
    first forward, on the loop that serves the requests). A request sent on a kept
    connection the worker closed meanwhile is sent once more on a new one.

    Before, the route was a sync endpoint forwarding with urllib3, one pool thread per
    lookup: with the hand-offs between the threads and the loop, the API answered 273-332 of
    400 lookups/s, queueing for seconds, with ~60 % of a core busy (ADR 0012)."""

    def __init__(self, timeout_s: float) -> None:
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def card_features(
        self, url: str, partition: int, card_id: str, authorization: str
    ) -> tuple[int, bytes]:
        """Status and body of the owner's answer; ``aiohttp.ClientError`` or
        ``TimeoutError`` when it does not answer."""
        path = f"/internal/v1/partitions/{partition}/cards/{quote(card_id, safe='')}/features"
        target, headers = url.rstrip("/") + path, {"Authorization": authorization}
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            return await self._get(self._session, target, headers)
        except aiohttp.ServerDisconnectedError:  # a kept connection, closed by the worker
            return await self._get(self._session, target, headers)

    @staticmethod
    async def _get(
        session: aiohttp.ClientSession, target: str, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        async with session.get(target, headers=headers) as response:
            return response.status, await response.read()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def lookup(
    directory: OwnerDirectory, workers: WorkerClient, card_id: str, authorization: str
) -> CardFeatures:
    """Ask the owner of the card's partition; once more after a refresh if the assignment
    looked stale (no owner, owner unreachable or not owning it any more)."""
    problem = "no owner asked"
    for fresh in (False, True):
        partition, url = await directory.owner(card_id, fresh=fresh)
        if url is None:
            problem = f"partition {partition} has no live owner (the group is rebalancing?)"
            continue
        try:
            status, body = await workers.card_features(url, partition, card_id, authorization)
        except (aiohttp.ClientError, TimeoutError) as exc:  # refused, reset, timed out
            reason = str(exc) or type(exc).__name__
            problem = f"the owner of partition {partition} at {url} did not answer: {reason}"
            continue
        if status == 200:
            return CardFeatures.model_validate_json(body)
        message = _message(body)
        if status == 404:
            raise NotFoundError(message)
        problem = f"the owner of partition {partition}: {message}"
        if status != 421:  # restoring (503) or anything else: the owner is right, but cannot
            break
    raise UnavailableError(problem)


def _message(body: bytes) -> str:
    """The ``error.message`` of a worker's error response (the API's shape), else its text."""
    try:
        return ErrorBody.model_validate_json(body).error.message
    except ValueError:
        return body[:200].decode(errors="replace")
