"""A deployment under test (group, topics, state dir, worker processes) and the checks that
its output is exactly once: what every fault test asserts at the end.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from app.process import WorkerProcess
from app.restore import restore_partition
from app.settings import FraudscoreSettings
from features.card import CardState
from features.stream import PartitionState
from sinks.kafka import client_options, topic_partitions
from sinks.rocksdb import PartitionStore
from sinks.rocksdb_memory import shared_memory
from tests.support.kafka import read_topic
from tests.support.reference import Reference


@dataclass
class Deployment:
    settings: FraudscoreSettings
    log_dir: Path
    workers: list[WorkerProcess] = field(default_factory=list)

    def start(self, name: str, **overrides: Any) -> WorkerProcess:
        """Start worker ``name``: static membership id and var dir of its own (as on its own
        machine), plus setting overrides."""
        update = {"instance_id": name, "var_dir": self.settings.var_dir / name, **overrides}
        worker = WorkerProcess(
            self.settings.model_copy(update=update), self.log_dir / f"{name}.log"
        )
        self.workers.append(worker)
        return worker

    def lose_disk(self, name: str) -> None:
        """Delete worker ``name``'s local state, as if its machine were replaced."""
        shutil.rmtree(self.settings.var_dir / name / "state", ignore_errors=True)

    def stop_all(self) -> None:
        for worker in self.workers:
            worker.stop()

    def logs(self, lines: int = 15) -> str:
        return "\n".join(f"--- {w.log_path.name}\n{w.log_tail(lines)}" for w in self.workers)

    async def committed_offsets(self) -> dict[int, int]:
        admin = AIOKafkaAdminClient(**client_options(self.settings))
        await admin.start()
        try:
            offsets = await admin.list_consumer_group_offsets(self.settings.group_id)
        finally:
            await admin.close()
        return {tp.partition: meta.offset for tp, meta in offsets.items()}

    async def wait_caught_up(self, ends: dict[int, int], timeout_s: float = 180.0) -> None:
        """Wait until the group's committed offsets reach ``ends`` (all input processed)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            committed = await self.committed_offsets()
            if all(committed.get(p, 0) >= end for p, end in ends.items()):
                return
            await asyncio.sleep(0.5)
        raise AssertionError(
            f"not caught up: {await self.committed_offsets()} < {ends}\n{self.logs()}"
        )


async def _end_offsets(settings: FraudscoreSettings, topic: str, isolation: str) -> int:
    consumer = AIOKafkaConsumer(**client_options(settings), isolation_level=isolation)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await topic_partitions(settings, topic))
        return int(sum(ends.values()))
    finally:
        await consumer.stop()


def kcat_transaction_ids(settings: FraudscoreSettings) -> Counter[str]:
    """Count decisions with kcat, a client this project did not write (read_committed)."""
    out = subprocess.run(
        [
            "kcat",
            "-b",
            settings.kafka_bootstrap,
            "-C",
            "-t",
            settings.decisions_topic,
            "-X",
            "isolation.level=read_committed",
            "-e",
            "-q",
            "-f",
            "%s\n",
        ],
        capture_output=True,
        check=True,
        timeout=120,
    )
    return Counter(msgspec.json.decode(line)["transaction_id"] for line in out.stdout.splitlines())


async def assert_exactly_once(dep: Deployment, ref: Reference) -> None:
    """Every check of the fault suite, against the crash-free reference."""
    settings = dep.settings
    records = await read_topic(settings, settings.decisions_topic, expect=len(ref.decisions))
    ids = Counter(msgspec.json.decode(r.value)["transaction_id"] for r in records)
    duplicates = [i for i, n in ids.items() if n > 1]
    assert not duplicates, f"{len(duplicates)} duplicated decisions, e.g. {duplicates[:3]}"
    missing = set(ref.decisions) - set(ids)
    assert not missing, f"{len(missing)} missing decisions, e.g. {sorted(missing)[:3]}"
    assert set(ids) == set(ref.decisions)
    differ = [
        r.value
        for r in records
        if ref.decisions[msgspec.json.decode(r.value)["transaction_id"]] != r.value
    ]
    assert not differ, f"{len(differ)} decisions differ from the crash-free run: {differ[0]!r}"
    assert kcat_transaction_ids(settings) == ids, "kcat disagrees with our consumer"
    for topic, expected in (
        (settings.dlq_topic, ref.dead_letters),
        (settings.late_topic, ref.late),
    ):
        await _assert_copies_once(settings, topic, expected)
    assert await dep.committed_offsets() == ref.input_ends
    for topic in (settings.decisions_topic, settings.changelog_topic):
        committed = await _end_offsets(settings, topic, "read_committed")
        assert committed == await _end_offsets(settings, topic, "read_uncommitted"), (
            f"open transaction on {topic}"
        )
    await _assert_state(settings, ref, dep.log_dir / "fresh-restore")


async def _assert_copies_once(
    settings: FraudscoreSettings, topic: str, expected: list[tuple[int, int]]
) -> None:
    """Dead letters or late copies: each expected source (partition, offset) exactly once."""
    copies = await read_topic(settings, topic, expect=len(expected))
    sources = Counter(
        (
            int(dict(r.headers)["fraudscore.source.partition"]),
            int(dict(r.headers)["fraudscore.source.offset"]),
        )
        for r in copies
    )
    want = Counter(expected)
    assert sources == want, (
        f"{topic} lost {sorted(want - sources)[:5]} or duplicated {sorted(sources - want)[:5]} "
        f"({sum(sources.values())} read, {len(want)} expected)"
    )


async def _assert_state(settings: FraudscoreSettings, ref: Reference, scratch: Path) -> None:
    """The last owner's RocksDB, and a fresh restore from the changelog, equal the reference:
    card states and the partition's own state (watermark, counters)."""
    for partition, expected in ref.states.items():
        local = _last_owner_states(settings, partition)
        assert local == (expected, ref.partitions[partition]), f"p{partition}: local state"
        fresh = PartitionStore(scratch / str(partition), shared_memory(settings.state_memory_mb))
        try:
            restore_partition(settings, fresh, partition, ref.input_ends[partition])
            restored = (dict(fresh.items()), fresh.partition_state())
            assert restored == local, f"p{partition}: changelog differs"
        finally:
            fresh.close()


_Local = tuple[dict[str, CardState], PartitionState | None]


def _last_owner_states(settings: FraudscoreSettings, partition: int) -> _Local:
    """The local state (cards, partition) of the worker that committed ``partition``'s last
    checkpoint."""
    pattern = f"*/state/{settings.input_topic}-{partition}"
    best: tuple[int, _Local] = (-1, ({}, None))
    for path in sorted(settings.var_dir.glob(pattern)):
        store = PartitionStore(path, shared_memory(settings.state_memory_mb))
        try:
            offset = store.meta.changelog_next_offset if store.meta else -1
            if offset > best[0]:
                best = (offset, (dict(store.items()), store.partition_state()))
        finally:
            store.close()
    return best[1]


async def aborted_decisions(settings: FraudscoreSettings, committed: int) -> int:
    """Decision records that only a read_uncommitted reader sees: written, then aborted."""
    seen = await read_topic(
        settings, settings.decisions_topic, expect=committed, isolation_level="read_uncommitted"
    )
    return len(seen) - committed
