"""Per-partition state in RocksDB, behind an in-memory overlay of uncommitted writes.

RocksDB holds only what a committed checkpoint contained: the worker reads through the overlay,
writes only to the overlay, and the overlay reaches RocksDB in one ``WriteBatch`` together with
the checkpoint's meta record, *after* the Kafka transaction that carried the same changes to
the changelog has committed. A crash therefore leaves RocksDB at a committed checkpoint (or
behind it, never ahead), and the changelog brings it forward on restart.

Layout (version 2):

- default column family: ``card token (utf-8) -> encoded CardState``, and under
  :data:`features.stream.PARTITION_KEY` (no card can have it) the encoded
  :class:`~features.stream.PartitionState`: the partition's stream time and counters take the
  same overlay → changelog → RocksDB path as the cards, so they are checkpointed, restored
  and replayed with them, and the checkpoint protocol does not change;
- column family ``expiry``: the expiry index, ``hour (8 bytes, big-endian) + card token ->
  b""`` for every card, ``hour`` being :func:`features.stream.expiry_hour` of its newest event
  time. It is derived from the card values and maintained by :meth:`PartitionStore.write` in
  the same ``WriteBatch``, so it is never out of step with them and is not changelogged: a
  restore rebuilds it as it writes the cards;
- column family ``meta``: one key, ``checkpoint``, with :class:`CheckpointMeta`.

A database of another layout version is wiped when opened (restore rebuilds it).

Memory: every store of a process reads and writes through one budget, a shared block cache
that the memtables are charged to (:mod:`sinks.rocksdb_memory`), so a worker's RocksDB
memory does not grow with its partitions.

Threads: the overlay and every method but :meth:`PartitionStore.read_committed` belong to the
worker's main thread. :meth:`~PartitionStore.read_committed` may be called from any thread
(the HTTP thread's card-feature lookups): it reads only RocksDB, whose reads are safe
beside another thread's ``WriteBatch`` writes, through a snapshot, and a lock keeps
:meth:`~PartitionStore.close` from closing the database under it.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple, cast

import msgspec
from rocksdict import Rdict, Snapshot, WriteBatch

from features.card import CardState, decode_state, encode_state, newest_of
from features.stream import (
    PARTITION_KEY,
    PartitionState,
    decode_partition_state,
    encode_partition_state,
    expiry_hour,
)
from sinks.errors import StateError
from sinks.rocksdb_memory import StateMemory

LAYOUT_VERSION = 2
_META_CF = "meta"
_EXPIRY_CF = "expiry"
_META_KEY = b"checkpoint"
_PARTITION_KEY = PARTITION_KEY.encode()
_HOUR_BYTES = 8


class CheckpointMeta(msgspec.Struct, frozen=True):
    """Where the committed state stands: next changelog and input offsets."""

    layout: int = LAYOUT_VERSION
    changelog_next_offset: int = 0
    input_next_offset: int = 0


_meta_decoder = msgspec.msgpack.Decoder(CheckpointMeta)
_SIZES = ("rocksdb.total-sst-files-size", "rocksdb.cur-size-all-mem-tables")
_MEMORY = ("rocksdb.size-all-mem-tables", "rocksdb.estimate-table-readers-mem")  # StoreMemory


class StoreStats(NamedTuple):
    keys: int  # cards (and the partition's own record), estimated
    bytes: int  # table files and memtables of the cards and the expiry index


class StoreMemory(NamedTuple):
    """RocksDB's own account of the memory a store holds, over its column families (the
    block cache is the process's, :class:`~sinks.rocksdb_memory.StateMemory`)."""

    memtables: int  # active, immutable and pinned memtables
    table_readers: int  # index and filter blocks of open table files held outside the cache


def total_memory(memories: Iterable[StoreMemory]) -> StoreMemory:
    """The sum of several stores' memory (zeros for none)."""
    return StoreMemory(*(sum(kind) for kind in zip(StoreMemory(0, 0), *memories, strict=True)))


def _snapshot_get(snapshot: Snapshot, key: bytes) -> bytes | None:
    """``snapshot[key]``, None if missing (a snapshot has no ``get``; its miss is a bare
    ``Exception("key not found")``)."""
    try:
        return cast(bytes, snapshot[key])  # raw mode
    except Exception as exc:
        if str(exc) == "key not found":
            return None
        raise


def _int_property(family: Rdict, name: str) -> int:
    value = family.property_int_value(name)
    return 0 if value is None else int(value)


def _index_key(hour: int, card_key: bytes) -> bytes:
    return hour.to_bytes(_HOUR_BYTES, "big") + card_key


def _index_entry(key: object) -> tuple[int, str]:
    raw = cast(bytes, key)  # raw mode
    return int.from_bytes(raw[:_HOUR_BYTES], "big"), raw[_HOUR_BYTES:].decode()


class CommittedCard(NamedTuple):
    """What the committed checkpoints hold about a card (:meth:`PartitionStore.read_committed`)."""

    state: CardState | None  # None: no state (never seen, or removed)
    partition: PartitionState | None  # of the same checkpoint as ``state``
    meta: CheckpointMeta | None  # of that checkpoint or an earlier one


class PartitionStore:
    """State of one input partition: RocksDB plus the overlay of the open checkpoint."""

    def __init__(self, path: Path, memory: StateMemory) -> None:
        self.path = path
        self._budget = memory  # shared with the process's other stores
        self._read_lock = threading.Lock()  # read_committed (any thread) against close
        self._closed = False
        self._overlay: dict[str, CardState | None] = {}
        # the expiry hour RocksDB indexes each card read in the open checkpoint under (None:
        # not in RocksDB), so that writing the checkpoint need not read the cards again
        self._committed_hours: dict[bytes, int | None] = {}
        self._partition: PartitionState | None = None  # the open checkpoint's, if touched
        self._overlay_low_hour: int | None = None  # no overlay card is indexed below it
        self._sweep_from = b""  # committed index keys below it are deleted or overlaid
        self._open()
        meta = self.meta
        if meta is not None and meta.layout != LAYOUT_VERSION:
            self.wipe()

    def _open(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        options = self._budget.options
        families = {_META_CF: options(), _EXPIRY_CF: options()}
        self._db = Rdict(str(self.path), options=options(), column_families=families)
        self._meta_cf = self._db.get_column_family(_META_CF)
        self._expiry_cf = self._db.get_column_family(_EXPIRY_CF)

    # --- the CardStore protocol used by the pipeline ----------------------------------------
    def get(self, card_id: str) -> CardState | None:
        if card_id in self._overlay:
            return self._overlay[card_id]
        key = card_id.encode()
        raw = self._db.get(key)
        if raw is None:
            self._committed_hours[key] = None
            return None
        state = decode_state(raw)
        self._committed_hours[key] = expiry_hour(state.newest_ms)
        return state

    def put(self, card_id: str, state: CardState) -> None:
        self._overlay[card_id] = state
        hour = expiry_hour(state.newest_ms)
        if self._overlay_low_hour is None or hour < self._overlay_low_hour:
            self._overlay_low_hour = hour

    def delete(self, card_id: str) -> None:
        self._overlay[card_id] = None

    def expire(self, before_hour: int, limit: int) -> list[str]:
        """Delete (in the overlay) the first ``limit`` cards below ``before_hour`` in
        (expiry hour, card id) order: committed ones from the index unless the overlay has
        them, and the overlay's own."""
        found = self._committed_expired(before_hour, limit)
        low = self._overlay_low_hour
        if low is not None and low < before_hour:
            found += [
                (hour, card_id, False)
                for card_id, state in self._overlay.items()
                if state is not None and (hour := expiry_hour(state.newest_ms)) < before_hour
            ]
            found.sort()
        chosen = found[:limit]
        for hour, card_id, in_index in chosen:
            self._overlay[card_id] = None
            if in_index:
                self._committed_hours[card_id.encode()] = hour
        committed = [(hour, card_id) for hour, card_id, in_index in chosen if in_index]
        if committed:  # every committed entry up to the last one chosen is overlaid now
            hour, card_id = committed[-1]
            self._sweep_from = _index_key(hour, card_id.encode()) + b"\x00"
        return [card_id for _, card_id, _ in chosen]

    def _committed_expired(self, before_hour: int, limit: int) -> list[tuple[int, str, bool]]:
        """The first ``limit`` index entries below ``before_hour`` that the overlay does not
        have, as (hour, card id, True)."""
        found: list[tuple[int, str, bool]] = []
        overlay = self._overlay
        for key in self._expiry_cf.keys(from_key=self._sweep_from):
            hour, card_id = _index_entry(key)
            if hour >= before_hour:
                break
            if card_id not in overlay:
                found.append((hour, card_id, True))
                if len(found) == limit:
                    break
        return found

    def partition_state(self) -> PartitionState | None:
        if self._partition is not None:
            return self._partition
        raw = self._db.get(_PARTITION_KEY)
        return None if raw is None else decode_partition_state(raw)

    def put_partition_state(self, state: PartitionState) -> None:
        self._partition = state

    def read_committed(self, card_id: str) -> CommittedCard:
        """The card's committed state, never the overlay; safe from any thread.

        The card and the partition state come from one RocksDB snapshot: a checkpoint writes
        them in one batch, so they belong to the same one. The meta record is read before the
        snapshot (another column family), so its checkpoint is that one or an earlier one.
        Raises :class:`StateError` once the store is closed (the partition went away).
        """
        with self._read_lock:
            if self._closed:
                raise StateError(f"the state store {self.path.name} is closed")
            meta = self.meta
            snapshot = self._db.snapshot()
            try:
                card = _snapshot_get(snapshot, card_id.encode())
                partition = _snapshot_get(snapshot, _PARTITION_KEY)
            finally:
                del snapshot  # releases it
        return CommittedCard(
            None if card is None else decode_state(card),
            None if partition is None else decode_partition_state(partition),
            meta,
        )

    # --- checkpoints -----------------------------------------------------------------------
    def dirty(self) -> Iterator[tuple[bytes, bytes | None]]:
        """The open checkpoint's changes as changelog records (``None`` is a tombstone)."""
        for card_id, state in self._overlay.items():
            yield card_id.encode(), None if state is None else encode_state(state)
        if self._partition is not None:
            yield _PARTITION_KEY, encode_partition_state(self._partition)

    def write(
        self, changes: Iterable[tuple[bytes, bytes | None]], meta: CheckpointMeta | None
    ) -> None:
        """Write committed changes (and the meta record) in one atomic batch, the expiry
        index with them.

        Called after a checkpoint's transaction committed, and by restore with changelog
        records (which are absolute values, so re-applying them is harmless; of a key written
        twice the last value counts). Clears the overlay: whatever it held is now in RocksDB.
        """
        latest = dict(changes)  # a key written twice: its last value
        batch = WriteBatch(raw_mode=True)
        for key, value in latest.items():
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        cards = [(key, value) for key, value in latest.items() if key != _PARTITION_KEY]
        if cards:
            self._index(batch, cards)
        if meta is not None:
            meta_cf = self._db.get_column_family_handle(_META_CF)
            batch.put(_META_KEY, msgspec.msgpack.encode(meta), meta_cf)
        self._db.write(batch)
        self.discard()

    def _index(self, batch: WriteBatch, cards: list[tuple[bytes, bytes | None]]) -> None:
        """Move each changed card's index entry from its committed hour to its new one. The
        committed hour is known for the cards the open checkpoint read; the others (a
        restore's) are read from RocksDB here."""
        index_cf = self._db.get_column_family_handle(_EXPIRY_CF)
        hours = self._committed_hours
        unknown = [key for key, _ in cards if key not in hours]
        if unknown:
            committed = cast(list[bytes | None], self._db.get([*unknown]))
            hours = hours | {
                key: None if old is None else expiry_hour(newest_of(old))
                for key, old in zip(unknown, committed, strict=True)
            }
        for key, value in cards:
            old_hour = hours[key]
            new_hour = None if value is None else expiry_hour(newest_of(value))
            if old_hour == new_hour:
                continue
            if old_hour is not None:
                batch.delete(_index_key(old_hour, key), index_cf)
            if new_hour is not None:
                batch.put(_index_key(new_hour, key), b"", index_cf)

    def discard(self) -> None:
        """Drop uncommitted writes: the checkpoint they belonged to was aborted (or they are
        in RocksDB now)."""
        self._overlay.clear()
        self._committed_hours.clear()
        self._partition = None
        self._overlay_low_hour = None
        self._sweep_from = b""

    @property
    def meta(self) -> CheckpointMeta | None:
        raw = self._meta_cf.get(_META_KEY)
        return None if raw is None else _meta_decoder.decode(raw)

    # --- lifecycle -------------------------------------------------------------------------
    def items(self) -> Iterator[tuple[str, CardState]]:
        """Every committed card state (for tests, savepoints and inspection)."""
        for key, value in self._db.items():
            if key != _PARTITION_KEY:
                yield cast(bytes, key).decode(), decode_state(cast(bytes, value))  # raw mode

    def expiry_index(self) -> Iterator[tuple[int, str]]:
        """The committed expiry index as (hour, card id), in its order (for tests)."""
        return map(_index_entry, self._expiry_cf.keys())

    def table_bytes(self, *, compact: bool = False) -> int:
        """Bytes of the live table files (all column families) after flushing the memtables,
        and a full compaction first if asked: what the state occupies on disk (benchmarks)."""
        self._db.flush()
        if compact:
            for family in (self._db, self._expiry_cf, self._meta_cf):
                family.compact_range(None, None)
        return sum(int(file["size"]) for file in self._db.live_files())

    def stats(self) -> StoreStats:
        """RocksDB's own estimates of the committed state: cheap enough to ask every second."""
        families = (self._db, self._expiry_cf)
        return StoreStats(
            keys=_int_property(self._db, "rocksdb.estimate-num-keys"),
            bytes=sum(_int_property(family, prop) for family in families for prop in _SIZES),
        )

    def memory(self) -> StoreMemory:
        """What RocksDB says it holds in memory for this store besides the shared cache
        (cheap: no I/O)."""
        families = (self._db, self._expiry_cf, self._meta_cf)
        return StoreMemory(
            *(sum(_int_property(family, prop) for family in families) for prop in _MEMORY)
        )

    def wipe(self) -> None:
        """Delete the local database and start empty (it will be rebuilt from the changelog)."""
        self._close_db()
        shutil.rmtree(self.path, ignore_errors=True)
        self.discard()
        self._open()

    def close(self) -> None:
        with self._read_lock:
            self._closed = True
            self._close_db()

    def _close_db(self) -> None:
        self._meta_cf.close()
        self._expiry_cf.close()
        self._db.close()
