"""One input partition's event time: watermark, lateness, duplicate deliveries, card expiry.

:func:`process` is the per-transaction step the worker (through :mod:`models.pipeline`), the
reference replay and the offline path (:mod:`features.offline`) all run, in offset order,
against a :class:`CardStore`. It reads and writes only the store, so the same log gives the
same results and the same state, whatever store and however the log is cut into batches.

Time, per input partition (:class:`PartitionState`, kept in the store under
:data:`PARTITION_KEY`, so it is checkpointed, changelogged and restored with the cards):

- the *stream time* S is the newest event time of the valid transactions seen so far, in
  offset order; the *watermark* is W = S - ``max_out_of_orderness``;
- a transaction at ``t < W - allowed_lateness`` is *late*: it is still scored and decided,
  flagged, counted (:attr:`PartitionState.late`) and copied to the late topic by the worker.
  With the default ``allowed_lateness`` of 0, an unflagged transaction is within
  ``max_out_of_orderness`` of the partition's newest one, hence of its card's, so its exact
  windows are exact (:mod:`features.card`); a flagged one may miss history;
- what a transaction changes in its card's state does not depend on the flag but on what the
  state still covers (:func:`features.card.observe`): one older than the card's horizon
  (24 h + ``max_out_of_orderness`` behind the card's newest event) is scored against the
  state and changes nothing but the remembered ids.

Duplicate deliveries: a transaction whose id its card remembers (:mod:`features.card`: the
ids of its transactions until the card's newest event time is 24 h + ``max_out_of_orderness``
past the card's newest event time when the id arrived; at most ``max_events`` ids) is a
duplicate: it is neither scored nor applied, only counted
(:attr:`PartitionState.duplicates`); the pipeline dead-letters it. A duplicate that arrives
later than that, or after its card expired, is not recognised and is decided again; it can
then not be counted twice, because by then its event time is behind the card's horizon (or
its card starts afresh).

Expiry (``card_state_ttl``, 45 days by default): a card whose newest event time is at or
before ``W - card_state_ttl`` is expired. Looking it up gives no state, so a card that comes
back starts from empty state; a transaction whose own time is that old and whose card has no
state is scored from empty state and not kept (it would be expired at once). Expired cards
are removed at deterministic points: whenever the watermark passes into a new hour, every
card whose newest event time lies in an hour before ``W - card_state_ttl``'s hour is
deleted, at most ``expire_limit`` per transaction (the rest at the following transactions),
in the order of that hour, then card id (:meth:`CardStore.expire`, backed by an index). So a
card is physically removed at most about an hour after it expired, the work per transaction
is bounded, and a replay removes the same cards at the same offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Protocol

import msgspec

from features.card import (
    DEFAULT_PARAMS,
    CardState,
    FeatureParams,
    FeatureVector,
    delivered_before,
    observe,
)
from features.transaction import Transaction
from features.windows import DAY_MS, HOUR_MS

# Card ids are 1 to 64 characters long (features.validation), so no card has this key.
PARTITION_KEY: Final = (
    "fraudscore/partition-state (not a card: card ids have at most 64 characters)"
)
PARTITION_STATE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class StreamParams:
    features: FeatureParams = DEFAULT_PARAMS  # their max_out_of_orderness sets the watermark
    allowed_lateness_ms: int = 0
    card_state_ttl_ms: int = 45 * DAY_MS
    expire_limit: int = 16  # cards removed per transaction at most


DEFAULT_STREAM_PARAMS = StreamParams()


class PartitionState(msgspec.Struct, array_like=True, gc=False):
    """What the worker remembers about its input partition (a msgpack array, ``v`` first).
    Updated in place by :func:`process`."""

    v: int
    stream_time_ms: int | None  # the newest event time seen; None before the first
    expired_before_hour: int  # every card whose newest hour index is below this is gone
    late: int  # late transactions so far
    duplicates: int  # duplicate deliveries so far


_partition_decoder = msgspec.msgpack.Decoder(PartitionState)


def new_partition_state() -> PartitionState:
    return PartitionState(PARTITION_STATE_VERSION, None, 0, 0, 0)


def encode_partition_state(state: PartitionState) -> bytes:
    return msgspec.msgpack.encode(state)


def decode_partition_state(raw: bytes) -> PartitionState:
    state = _partition_decoder.decode(raw)
    if state.v != PARTITION_STATE_VERSION:
        raise ValueError(f"partition state version {state.v} is not {PARTITION_STATE_VERSION}")
    return state


def expiry_hour(newest_ms: int) -> int:
    """The hour a card is indexed under for expiry: that of its newest event time."""
    return newest_ms // HOUR_MS


def expired_through_ms(stream_time_ms: int, params: StreamParams) -> int:
    """Cards whose newest event time is at or before this are expired, at stream time
    ``stream_time_ms`` (whether the sweep has removed them yet or not)."""
    return stream_time_ms - params.features.max_out_of_orderness_ms - params.card_state_ttl_ms


class CardStore(Protocol):
    """What :func:`process` needs from state: the real one is RocksDB behind an overlay
    (:class:`sinks.rocksdb.PartitionStore`), the reference one :class:`MemoryCardStore`."""

    def get(self, card_id: str) -> CardState | None: ...

    def put(self, card_id: str, state: CardState) -> None: ...

    def expire(self, before_hour: int, limit: int) -> list[str]:
        """Delete the first ``limit`` cards, in (:func:`expiry_hour`, card id) order, whose
        expiry hour is below ``before_hour``; return their ids in that order."""
        ...

    def partition_state(self) -> PartitionState | None: ...

    def put_partition_state(self, state: PartitionState) -> None: ...


class MemoryCardStore:
    """An in-memory :class:`CardStore` for the reference run, the offline path and tests."""

    def __init__(self) -> None:
        self.states: dict[str, CardState] = {}
        self.partition: PartitionState | None = None
        self._hours: dict[str, int] = {}  # card -> the expiry hour it is indexed under
        self._by_hour: dict[int, set[str]] = {}

    def get(self, card_id: str) -> CardState | None:
        return self.states.get(card_id)

    def put(self, card_id: str, state: CardState) -> None:
        self.states[card_id] = state
        hour, old = expiry_hour(state.newest_ms), self._hours.get(card_id)
        if hour != old:
            if old is not None:
                self._by_hour[old].discard(card_id)
            self._hours[card_id] = hour
            self._by_hour.setdefault(hour, set()).add(card_id)

    def expire(self, before_hour: int, limit: int) -> list[str]:
        gone: list[str] = []
        for hour in sorted(h for h in self._by_hour if h < before_hour):
            cards = self._by_hour[hour]
            gone.extend(sorted(cards)[: limit - len(gone)])
            if len(gone) == limit:
                break
        for card_id in gone:
            del self.states[card_id]
            self._by_hour[self._hours.pop(card_id)].discard(card_id)
        return gone

    def partition_state(self) -> PartitionState | None:
        return self.partition

    def put_partition_state(self, state: PartitionState) -> None:
        self.partition = state


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one valid transaction."""

    vector: FeatureVector | None  # None: a duplicate delivery, neither scored nor applied
    late: bool = False

    @property
    def duplicate(self) -> bool:
        return self.vector is None


DUPLICATE: Final = Outcome(None)


def process(
    store: CardStore, txn: Transaction, params: StreamParams = DEFAULT_STREAM_PARAMS
) -> Outcome:
    """Advance the partition's time with ``txn``, then score and apply it (or recognise a
    duplicate), then remove what the watermark expired."""
    partition = store.partition_state() or new_partition_state()
    t = txn.event_time_ms
    stream_time = partition.stream_time_ms
    if stream_time is None or t > stream_time:
        partition.stream_time_ms = stream_time = t
    watermark = stream_time - params.features.max_out_of_orderness_ms
    expired_through = expired_through_ms(stream_time, params)
    state = store.get(txn.card_id)
    if state is not None and state.newest_ms <= expired_through:
        state = None  # expired, even if not removed yet: the card starts afresh
    if state is not None and delivered_before(state, txn.transaction_id):
        partition.duplicates += 1
        store.put_partition_state(partition)
        return DUPLICATE
    if state is None and t <= expired_through:  # its state would be expired at once
        _, vector = observe(None, txn, params.features)
    else:
        state, vector = observe(state, txn, params.features)
        store.put(txn.card_id, state)
    late = t < watermark - params.allowed_lateness_ms
    partition.late += late
    _expire(store, partition, expiry_hour(expired_through), params.expire_limit)
    store.put_partition_state(partition)
    return Outcome(vector, late)


def _expire(store: CardStore, partition: PartitionState, before_hour: int, limit: int) -> None:
    """Remove expired cards up to ``limit`` if the watermark moved into a new hour, or cards
    are still left from the last time."""
    if partition.expired_before_hour >= before_hour:
        return
    if len(store.expire(before_hour, limit)) < limit:
        partition.expired_before_hour = before_hour
