"""One memory budget for all the RocksDB stores of a process (issue #8).

Left to its defaults, RocksDB gives every column family of every database its own 64 MB
write buffer (two of them while one is flushed) and its own 32 MB block cache, and keeps the
index and filter blocks of every open table file outside any cache. A worker opens one
database per input partition with three column families each, so what it may hold grows
with its partitions, not with a number anyone chose: the memory soak of issue #8 saw the
worker's RSS follow its memtables and then climb in steps at flushes (docs/BENCHMARKS.md).

:class:`StateMemory` is that number. One LRU :class:`~rocksdict.Cache` of the budget's size
holds the data blocks, the index and filter blocks (``cache_index_and_filter_blocks``) and,
through a :class:`~rocksdict.WriteBufferManager` charged to the same cache, the memtables
too: when the memtables of all the stores together reach half the budget, the next write
makes its database flush (its oldest memtable), and what they hold is taken from what the
cache may keep. Every store of a process must use the same instance (:func:`shared_memory`),
or each would get a budget of its own.

The cache's limit is not strict (a read is never refused for want of room), so the budget
can be exceeded briefly by blocks in use, and RocksDB's allocations outside it (iterators,
flush and compaction buffers, the write batch being applied) are not counted: the 15-minute
soak's worker levelled off at ≈ 40 MB above interpreter + budget (docs/BENCHMARKS.md).
"""

from __future__ import annotations

import functools

from rocksdict import BlockBasedOptions, Cache, Options, WriteBufferManager

MB = 1024 * 1024
_WRITE_BUFFERS_SHARE = 2  # the memtables may take up to 1/2 of the budget
# per column family: a worker's busy families (2 per partition, 4 partitions by default) fit
# the memtables' share of the budget at once
_WRITE_BUFFER_SHARE = 16
_MIN_WRITE_BUFFER = 1 * MB


class StateMemory:
    """The cache and write-buffer manager the stores of a process share, and the RocksDB
    options that make a store use them."""

    def __init__(self, megabytes: int) -> None:
        self.capacity = megabytes * MB
        self.cache = Cache(self.capacity)
        self.write_buffers = WriteBufferManager.new_write_buffer_manager_with_cache(
            self.capacity // _WRITE_BUFFERS_SHARE, False, self.cache
        )  # allow_stall=False: a flush that lags lets memtables exceed it, never stops writes
        self.write_buffer_size = max(_MIN_WRITE_BUFFER, self.capacity // _WRITE_BUFFER_SHARE)

    def options(self) -> Options:
        """Options for a database or column family charged to this budget (raw keys and
        values; missing families are created)."""
        table = BlockBasedOptions()
        table.set_block_cache(self.cache)
        table.set_cache_index_and_filter_blocks(True)
        # the newest files' index and filters stay in the cache: every read consults them
        table.set_pin_l0_filter_and_index_blocks_in_cache(True)
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.create_missing_column_families(True)
        options.set_block_based_table_factory(table)
        options.set_write_buffer_manager(self.write_buffers)
        options.set_write_buffer_size(self.write_buffer_size)
        return options

    def usage(self) -> int:
        """Bytes charged to the budget now: cached blocks plus the memtables' reservations."""
        return int(self.cache.get_usage())


@functools.cache
def shared_memory(megabytes: int) -> StateMemory:
    """The process's budget of ``megabytes``: one instance for every store that asks for the
    same size (the worker's partitions, a restore, a savepoint import)."""
    return StateMemory(megabytes)
