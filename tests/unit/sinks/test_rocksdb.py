"""The state store: nothing reaches RocksDB before ``write``, and what is written survives."""

from __future__ import annotations

from pathlib import Path

from features.card import CardState, empty_state, encode_state
from sinks.rocksdb import CheckpointMeta, PartitionStore


def _state(n: int) -> CardState:
    state = empty_state(n)
    state.exact.insert(0, (n, 100, "m", "5411", None, None))
    return state


def test_overlay_is_read_first_and_never_written_until_commit(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    store.put("a", _state(1))
    assert store.get("a") == _state(1)
    store.close()
    reopened = PartitionStore(tmp_path / "p0")
    assert reopened.get("a") is None  # an uncommitted write must not leak
    assert reopened.meta is None
    reopened.close()


def test_write_persists_changes_and_meta_atomically(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    store.put("a", _state(1))
    store.put("b", _state(2))
    store.delete("b")
    changes = list(store.dirty())
    assert changes == [(b"a", encode_state(_state(1))), (b"b", None)]
    store.write(changes, CheckpointMeta(changelog_next_offset=7, input_next_offset=42))
    store.close()
    reopened = PartitionStore(tmp_path / "p0")
    assert dict(reopened.items()) == {"a": _state(1)}
    assert reopened.meta == CheckpointMeta(changelog_next_offset=7, input_next_offset=42)
    reopened.close()


def test_discard_forgets_the_open_checkpoint(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    store.write([(b"a", encode_state(_state(1)))], CheckpointMeta())
    store.put("a", _state(9))
    store.discard()
    assert store.get("a") == _state(1)
    assert list(store.dirty()) == []
    store.close()


def test_wipe_leaves_an_empty_usable_store(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    store.write([(b"a", encode_state(_state(1)))], CheckpointMeta(changelog_next_offset=3))
    store.wipe()
    assert store.get("a") is None
    assert store.meta is None
    store.write([(b"c", encode_state(_state(5)))], None)
    assert store.get("c") == _state(5)
    store.close()
