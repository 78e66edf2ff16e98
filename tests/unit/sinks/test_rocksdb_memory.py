"""The memory budget: every store of a process reads through one cache of the configured size,
its memtables are charged to that cache, and state still round-trips through it."""

from __future__ import annotations

from pathlib import Path

from features.card import empty_state, encode_state
from sinks.rocksdb import CheckpointMeta, PartitionStore, total_memory
from sinks.rocksdb_memory import MB, StateMemory, shared_memory

_CARDS = 2_000


def _fill(store: PartitionStore, prefix: str) -> None:
    changes = [(f"{prefix}{i}".encode(), encode_state(empty_state(i))) for i in range(_CARDS)]
    store.write(changes, CheckpointMeta(input_next_offset=_CARDS))


def _capacity_and_usage(store: PartitionStore) -> set[tuple[int, int]]:
    """What each of the store's column families reports of the block cache it reads through."""
    families = (store._db, store._expiry_cf, store._meta_cf)  # RocksDB's own view
    return {
        (
            int(family.property_int_value("rocksdb.block-cache-capacity") or 0),
            int(family.property_int_value("rocksdb.block-cache-usage") or 0),
        )
        for family in families
    }


def test_one_process_budget_per_size() -> None:
    assert shared_memory(24) is shared_memory(24)
    assert shared_memory(24) is not shared_memory(32)


def test_the_stores_of_a_process_share_one_cache_that_holds_their_memtables(
    tmp_path: Path,
) -> None:
    memory = StateMemory(24)  # this test's own, so other tests' stores do not use it
    stores = [PartitionStore(tmp_path / f"p{p}", memory) for p in range(3)]
    try:
        for p, store in enumerate(stores):
            _fill(store, f"p{p}-")
        reports = set().union(*map(_capacity_and_usage, stores))
        assert len(reports) == 1  # one cache: the same capacity and usage everywhere
        ((capacity, usage),) = reports
        assert capacity == 24 * MB
        memtables = total_memory(store.memory() for store in stores).memtables
        assert memtables > 0
        assert 0 < memory.write_buffers.get_usage() <= usage == memory.usage()
        assert memory.write_buffers.get_buffer_size() == 12 * MB  # half the budget
        for p, store in enumerate(stores):  # state round-trips through the shared cache
            assert store.get(f"p{p}-7") == empty_state(7)
            assert store.get(f"p{(p + 1) % 3}-7") is None
    finally:
        for store in stores:
            store.close()
    reopened = PartitionStore(tmp_path / "p1", memory)
    try:
        assert sum(1 for _ in reopened.items()) == _CARDS
        assert reopened.meta == CheckpointMeta(input_next_offset=_CARDS)
    finally:
        reopened.close()
