"""A card's live features as its worker holds them: the worker's side of
``GET /v1/cards/{card_id}/features`` (docs/API.md, "Card features: who answers").

The worker registers each partition's store here once it is restored (:class:`LocalCards`)
and its HTTP thread answers
``GET /internal/v1/partitions/{partition}/cards/{card_id}/features`` from it
(:func:`app.worker_http.create_worker_app`); the API forwards the public route there
(:mod:`app.card_owner`). What is read is the *committed* state only
(:meth:`sinks.rocksdb.PartitionStore.read_committed`): the overlay belongs to the main
thread and may still be rolled back. The values are :func:`features.card_summary.summarize`
at the partition's committed stream time.
"""

from __future__ import annotations

import threading

from pydantic import BaseModel

from app.api.errors import NotFoundError, NotOwnerError, UnavailableError
from app.worker_status import WorkerStatus
from features.card_summary import is_expired, summarize
from features.schema import FEATURE_SCHEMA_VERSION
from features.stream import StreamParams
from models.pipeline import format_event_time
from sinks.errors import StateError
from sinks.rocksdb import PartitionStore


class Checkpoint(BaseModel):
    input_next_offset: int  # the committed checkpoint's next input offset (at least)
    changelog_next_offset: int


class CardFeatures(BaseModel):
    """A card's window values at its partition's stream time (docs/API.md)."""

    card_id: str
    partition: int
    feature_schema_version: int
    as_of: str  # the partition's committed stream time: the windows end here (RFC 3339)
    as_of_watermark: str  # the partition's committed watermark: as_of - max_out_of_orderness
    newest_event_time: str  # the card's newest event time
    features: dict[str, float]  # features.card_summary.SUMMARY_NAMES
    checkpoint: Checkpoint


class LocalCards:
    """The stores of this worker's restored partitions, for the HTTP thread (thread-safe)."""

    def __init__(self, status: WorkerStatus, params: StreamParams) -> None:
        self._status = status
        self._params = params
        self._lock = threading.Lock()
        self._stores: dict[int, PartitionStore] = {}

    def add(self, partition: int, store: PartitionStore) -> None:
        with self._lock:
            self._stores[partition] = store

    def remove(self, partition: int) -> None:
        with self._lock:
            self._stores.pop(partition, None)

    def lookup(self, partition: int, card_id: str) -> CardFeatures:
        """The card's features; :class:`NotOwnerError` if ``partition`` is not this worker's,
        :class:`UnavailableError` while it is restored, :class:`NotFoundError` for a card
        with no live state (never seen, expired or removed)."""
        assigned, restoring = self._status.partitions()
        if partition in restoring:
            raise UnavailableError(f"partition {partition} is being restored: retry shortly")
        with self._lock:
            store = self._stores.get(partition)
        if store is None or partition not in assigned:
            raise NotOwnerError(f"partition {partition} is not assigned to this worker")
        try:
            state, stream, meta = store.read_committed(card_id)
        except StateError as exc:  # closed under us: revoked a moment ago
            raise NotOwnerError(f"partition {partition} was just revoked: {exc}") from None
        if state is None or stream is None or stream.stream_time_ms is None:
            raise NotFoundError(f"no live state for card {card_id!r}")
        if is_expired(state, stream.stream_time_ms, self._params):
            raise NotFoundError(f"no live state for card {card_id!r} (expired)")
        summary = summarize(state, stream.stream_time_ms)
        watermark = stream.stream_time_ms - self._params.features.max_out_of_orderness_ms
        return CardFeatures(
            card_id=card_id,
            partition=partition,
            feature_schema_version=FEATURE_SCHEMA_VERSION,
            as_of=format_event_time(summary.as_of_ms),
            as_of_watermark=format_event_time(watermark),
            newest_event_time=format_event_time(summary.newest_ms),
            features=summary.values,
            checkpoint=Checkpoint(
                input_next_offset=0 if meta is None else meta.input_next_offset,
                changelog_next_offset=0 if meta is None else meta.changelog_next_offset,
            ),
        )
