"""The state store: nothing reaches RocksDB before ``write``, what is written survives, and
under the stream logic it behaves exactly as the in-memory reference store, across
checkpoints, aborted checkpoints, restarts and a restore from its changelog records."""

from __future__ import annotations

import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.card import CardState, empty_state, encode_state
from features.stream import MemoryCardStore, PartitionState, StreamParams, expiry_hour, process
from sinks.errors import StateError
from sinks.rocksdb import CheckpointMeta, PartitionStore
from sinks.rocksdb_memory import shared_memory
from tests.support.oracle import Step
from tests.support.streams import TTL, log_items, log_of


def _store(path: Path) -> PartitionStore:
    """A store on the tests' shared memory budget (every store of a process shares one)."""
    return PartitionStore(path, shared_memory(16))


def _state(n: int) -> CardState:
    state = empty_state(n)
    state.exact.insert(0, (n, 100, "m", "5411", None, None), cap=1)
    return state


def test_overlay_is_read_first_and_never_written_until_commit(tmp_path: Path) -> None:
    store = _store(tmp_path / "p0")
    store.put("a", _state(1))
    assert store.get("a") == _state(1)
    store.close()
    reopened = _store(tmp_path / "p0")
    assert reopened.get("a") is None  # an uncommitted write must not leak
    assert reopened.meta is None
    reopened.close()


def test_write_persists_changes_and_meta_atomically(tmp_path: Path) -> None:
    store = _store(tmp_path / "p0")
    store.put("a", _state(1))
    store.put("b", _state(2))
    store.delete("b")
    changes = list(store.dirty())
    assert changes == [(b"a", encode_state(_state(1))), (b"b", None)]
    store.write(changes, CheckpointMeta(changelog_next_offset=7, input_next_offset=42))
    store.close()
    reopened = _store(tmp_path / "p0")
    assert dict(reopened.items()) == {"a": _state(1)}
    assert reopened.meta == CheckpointMeta(changelog_next_offset=7, input_next_offset=42)
    reopened.close()


def test_discard_forgets_the_open_checkpoint(tmp_path: Path) -> None:
    store = _store(tmp_path / "p0")
    store.write([(b"a", encode_state(_state(1)))], CheckpointMeta())
    store.put("a", _state(9))
    store.discard()
    assert store.get("a") == _state(1)
    assert list(store.dirty()) == []
    store.close()


def test_wipe_leaves_an_empty_usable_store(tmp_path: Path) -> None:
    store = _store(tmp_path / "p0")
    store.write([(b"a", encode_state(_state(1)))], CheckpointMeta(changelog_next_offset=3))
    store.wipe()
    assert store.get("a") is None
    assert store.meta is None
    store.write([(b"c", encode_state(_state(5)))], None)
    assert store.get("c") == _state(5)
    store.close()


# --- the store under the stream logic: the same as the in-memory reference ------------------

_PARAMS = StreamParams(card_state_ttl_ms=TTL, expire_limit=2)  # a small cap: sweeps carry over
# what happens after each record: nothing, a checkpoint, an aborted checkpoint (redo since the
# last one), or a checkpoint and a restart (the store reopened from disk)
_EVENTS = st.lists(st.sampled_from(["", "", "", "checkpoint", "abort", "restart"]), max_size=80)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_items, _EVENTS)
def test_rocksdb_with_checkpoints_aborts_and_restarts_equals_the_memory_store(
    items: list[Step | int], events: list[str]
) -> None:
    log = log_of(items)
    reference = MemoryCardStore()
    expected = [process(reference, txn, _PARAMS) for txn in log]
    changelog: list[tuple[bytes, bytes | None]] = []
    with tempfile.TemporaryDirectory() as scratch:
        store = _store(Path(scratch) / "p0")
        committed, i = 0, 0
        for event in [*events, *[""] * len(log)][: 2 * len(log)]:  # bounded, ends processed
            if i == len(log):
                break
            assert process(store, log[i], _PARAMS) == expected[i], f"record {i}"
            i += 1
            if event == "abort":
                store.discard()
                i = committed
            elif event:
                changelog.extend(_checkpoint(store))
                committed = i
                if event == "restart":
                    store.close()
                    store = _store(Path(scratch) / "p0")
        for txn, outcome in zip(log[i:], expected[i:], strict=True):
            assert process(store, txn, _PARAMS) == outcome
        changelog.extend(_checkpoint(store))
        _assert_same_state(store, reference)
        store.close()
        restored = _store(Path(scratch) / "restored")
        for start in range(0, len(changelog), 7):  # as restore writes it: batches of records
            restored.write(changelog[start : start + 7], None)
        _assert_same_state(restored, reference)
        restored.close()


def _checkpoint(store: PartitionStore) -> list[tuple[bytes, bytes | None]]:
    changes = list(store.dirty())
    store.write(changes, CheckpointMeta())
    return changes


def _assert_same_state(store: PartitionStore, reference: MemoryCardStore) -> None:
    assert dict(store.items()) == reference.states
    assert store.partition_state() == reference.partition
    assert list(store.expiry_index()) == sorted(
        (expiry_hour(state.newest_ms), card_id) for card_id, state in reference.states.items()
    )


def test_expire_merges_the_index_and_the_overlay_in_hour_then_card_order(tmp_path: Path) -> None:
    hour = 3_600_000
    states = {card: _state(i * hour) for i, card in enumerate("abcd", 1)}  # hours 1..4
    reference, store = MemoryCardStore(), _store(tmp_path / "p0")
    for card, state in states.items():
        reference.put(card, state)
        store.put(card, state)
    _checkpoint(store)
    store.put("a", states["a"])  # the overlay has "a" now (the index still has it too)
    reference.put("e", _state(2 * hour))  # a card only the overlay knows, between b and c
    store.put("e", _state(2 * hour))
    for want in (["a", "b"], ["e", "c"], ["d"], []):
        assert reference.expire(5, 2) == want
        assert store.expire(5, 2) == want
    store.close()


def test_a_database_of_another_layout_is_wiped_on_open(tmp_path: Path) -> None:
    store = _store(tmp_path / "p0")
    store.write([(b"a", encode_state(_state(1)))], CheckpointMeta(layout=1))  # an older build's
    store.close()
    reopened = _store(tmp_path / "p0")
    assert (reopened.meta, list(reopened.items())) == (None, [])  # restore rebuilds it
    reopened.close()


def test_read_committed_sees_checkpoints_only(tmp_path: Path) -> None:
    store = _store(tmp_path / "p")
    assert store.read_committed("c1") == (None, None, None)
    store.put("c1", _state(1))
    store.put_partition_state(PartitionState(1, 50, 0, 0, 0))
    assert store.read_committed("c1").state is None  # the overlay is not committed
    store.write(list(store.dirty()), CheckpointMeta(input_next_offset=7))
    committed = store.read_committed("c1")
    assert committed.state == _state(1)
    assert committed.partition is not None
    assert committed.partition.stream_time_ms == 50
    assert committed.meta == CheckpointMeta(input_next_offset=7)
    store.close()
    with pytest.raises(StateError, match="closed"):
        store.read_committed("c1")


def test_read_committed_from_another_thread_while_checkpoints_commit(tmp_path: Path) -> None:
    """Every read sees one whole checkpoint: the card's newest time and the partition's stream
    time are written together, so they always match."""
    store = _store(tmp_path / "p")
    stop, mismatches, reads = threading.Event(), [], [0]

    def read() -> None:
        while not stop.is_set():
            card, partition, _ = store.read_committed("c1")
            reads[0] += 1
            if card is not None and (
                partition is None or partition.stream_time_ms != card.newest_ms
            ):
                mismatches.append((card.newest_ms, partition))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(1, 2000):
            store.put("c1", empty_state(i))
            store.put_partition_state(PartitionState(1, i, 0, 0, 0))
            store.write(list(store.dirty()), CheckpointMeta(input_next_offset=i))
    finally:
        stop.set()
        reader.join()
    assert reads[0] > 0
    assert mismatches == []
    store.close()
