"""Per-partition card state in RocksDB, behind an in-memory overlay of uncommitted writes.

RocksDB holds only what a committed checkpoint contained: the worker reads through the overlay,
writes only to the overlay, and the overlay reaches RocksDB in one ``WriteBatch`` together with
the checkpoint's meta record, *after* the Kafka transaction that carried the same changes to
the changelog has committed. A crash therefore leaves RocksDB at a committed checkpoint (or
behind it, never ahead), and the changelog brings it forward on restart.

Layout: default column family ``card token (utf-8) -> encoded CardState``; column family
``meta`` holds one key, ``checkpoint``, with :class:`CheckpointMeta`.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import cast

import msgspec
from rocksdict import Options, Rdict, WriteBatch

from features.card import CardState, decode_state, encode_state

LAYOUT_VERSION = 1
_META_CF = "meta"
_META_KEY = b"checkpoint"


class CheckpointMeta(msgspec.Struct, frozen=True):
    """Where the committed state stands: next changelog and input offsets."""

    layout: int = LAYOUT_VERSION
    changelog_next_offset: int = 0
    input_next_offset: int = 0


_meta_decoder = msgspec.msgpack.Decoder(CheckpointMeta)


def _options() -> Options:
    options = Options(raw_mode=True)
    options.create_if_missing(True)
    options.create_missing_column_families(True)
    return options


class PartitionStore:
    """Card state of one input partition: RocksDB plus the overlay of the open checkpoint."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._overlay: dict[str, CardState | None] = {}
        self._db, self._meta_cf = self._open()

    def _open(self) -> tuple[Rdict, Rdict]:
        self.path.mkdir(parents=True, exist_ok=True)
        db = Rdict(str(self.path), options=_options(), column_families={_META_CF: _options()})
        return db, db.get_column_family(_META_CF)

    # --- the CardStore protocol used by the pipeline ----------------------------------------
    def get(self, card_id: str) -> CardState | None:
        if card_id in self._overlay:
            return self._overlay[card_id]
        raw = self._db.get(card_id.encode())
        return None if raw is None else decode_state(raw)

    def put(self, card_id: str, state: CardState) -> None:
        self._overlay[card_id] = state

    def delete(self, card_id: str) -> None:
        self._overlay[card_id] = None

    # --- checkpoints -----------------------------------------------------------------------
    def dirty(self) -> Iterator[tuple[bytes, bytes | None]]:
        """The open checkpoint's changes as changelog records (``None`` is a tombstone)."""
        for card_id, state in self._overlay.items():
            yield card_id.encode(), None if state is None else encode_state(state)

    def write(
        self, changes: Iterable[tuple[bytes, bytes | None]], meta: CheckpointMeta | None
    ) -> None:
        """Write committed changes (and the meta record) in one atomic batch.

        Called after a checkpoint's transaction committed, and by restore with changelog
        records (which are absolute values, so re-applying them is harmless). Clears the
        overlay: whatever it held is now in RocksDB.
        """
        batch = WriteBatch(raw_mode=True)
        for key, value in changes:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        if meta is not None:
            meta_cf = self._db.get_column_family_handle(_META_CF)
            batch.put(_META_KEY, msgspec.msgpack.encode(meta), meta_cf)
        self._db.write(batch)
        self._overlay.clear()

    def discard(self) -> None:
        """Drop uncommitted writes: the checkpoint they belonged to was aborted."""
        self._overlay.clear()

    @property
    def meta(self) -> CheckpointMeta | None:
        raw = self._meta_cf.get(_META_KEY)
        return None if raw is None else _meta_decoder.decode(raw)

    # --- lifecycle -------------------------------------------------------------------------
    def items(self) -> Iterator[tuple[str, CardState]]:
        """Every committed card state (for tests, savepoints and inspection)."""
        for key, value in self._db.items():
            yield cast(bytes, key).decode(), decode_state(cast(bytes, value))  # raw mode

    def wipe(self) -> None:
        """Delete the local database and start empty (it will be rebuilt from the changelog)."""
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
        self._overlay.clear()
        self._db, self._meta_cf = self._open()

    def close(self) -> None:
        self._meta_cf.close()
        self._db.close()
