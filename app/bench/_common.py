"""Helpers shared by the Kafka benchmarks: fresh topic sets, worker processes, bulk producing,
CPU and load readings, machine info (the ``read_committed`` follower of the decisions topic
is :mod:`app.follower`, shared with the authorizer).

Everything here talks to a real broker and real worker processes; nothing is simulated.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from confluent_kafka import libversion

from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from sinks.kafka import client_options, key_partition, topic_partitions

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_BULK_BATCH_BYTES = 512 * 1024
_BULK_IN_FLIGHT = 64  # batches sent before waiting for their acknowledgements

# --- machine and load ---------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.partition(":")[2].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_gib() -> float:
    with open("/proc/meminfo", encoding="utf-8") as meminfo:
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024**2
    return 0.0


def host_info(libraries: str) -> list[tuple[str, str]]:
    """(key, value) pairs for a benchmark's header: date, machine, Python, ``libraries``, load."""
    return [
        ("date", dt.datetime.now(dt.UTC).isoformat(timespec="seconds")),
        ("platform", platform.platform()),
        ("cpu", f"{cpu_model()} ({os.cpu_count()} logical CPUs)"),
        ("memory", f"{memory_gib():.1f} GiB"),
        ("python", f"{sys.version.split()[0]} ({platform.python_implementation()})"),
        ("libraries", libraries),
        ("load average", format_load(os.getloadavg())),
    ]


def machine_info(broker_version: str) -> list[tuple[str, str]]:
    libraries = (
        f"confluent-kafka {version('confluent-kafka')} (librdkafka {librdkafka_version()}), "
        f"aiokafka {version('aiokafka')}, rocksdict {version('rocksdict')}"
    )
    broker = f"Apache Kafka {broker_version} (KRaft, single node, same machine)"
    return [*host_info(libraries), ("broker", broker)]


def librdkafka_version() -> str:
    return str(libversion()[0])


def format_load(load: Sequence[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in load)


@dataclass(frozen=True, slots=True)
class Load:
    """1-minute load average before and after a measurement."""

    before: float
    after: float

    def __str__(self) -> str:
        return f"{self.before:.2f}→{self.after:.2f}"


def load1() -> float:
    return os.getloadavg()[0]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads) from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS  # utime, stime


def run_queue_seconds(pid: int) -> float:
    """Seconds the process's main thread has spent runnable but waiting for a CPU
    (/proc/<pid>/schedstat): on a shared machine, the time it was starved rather than idle."""
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as schedstat:
        return int(schedstat.read().split()[1]) / 1e9


def maybe_cpu_seconds(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return cpu_seconds(pid)
    except OSError:
        return None


# --- topics and settings -----------------------------------------------------------------------


def fresh_settings(
    base: FraudscoreSettings, tag: str, root: Path, **update: Any
) -> FraudscoreSettings:
    """``base`` with uuid-suffixed topics, group, transactional-id prefix and state dir."""
    suffix = f"{tag}-{uuid.uuid4().hex[:10]}"
    names: dict[str, Any] = {
        "input_topic": f"bench.tx.{suffix}",
        "decisions_topic": f"bench.decisions.{suffix}",
        "dlq_topic": f"bench.dlq.{suffix}",
        "changelog_topic": f"bench.changelog.{suffix}",
        "group_id": f"bench.{suffix}",
        "service_name": f"bench.{suffix}",
        "var_dir": root / suffix,
    }
    return base.model_copy(update=names | update)


async def end_offsets(settings: FraudscoreSettings, topic: str) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None)
    await consumer.start()
    try:
        tps = await topic_partitions(settings, topic)
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def committed_offsets(settings: FraudscoreSettings) -> dict[TopicPartition, int]:
    """The worker group's committed input offsets."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.group_id)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if tp.topic == settings.input_topic}


# --- producing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outgoing:
    key: bytes
    value: bytes
    partition: int


def partitioner(partitions: int) -> Callable[[bytes], int]:
    """Key → partition the way the Java client and aiokafka's default do (murmur2)."""
    return lambda key: key_partition(key, partitions)


async def bulk_produce(
    settings: FraudscoreSettings, topic: str, records: Iterable[Outgoing]
) -> tuple[int, float]:
    """Send ``records`` as fast as possible in large batches; (count, seconds)."""
    producer = AIOKafkaProducer(
        **client_options(settings), acks="all", max_batch_size=_BULK_BATCH_BYTES, linger_ms=5
    )
    await producer.start()
    started, count = time.perf_counter(), 0
    try:
        batches: dict[int, Any] = {}
        pending: list[asyncio.Future[Any]] = []
        for record in records:
            batch = batches.get(record.partition)
            if (
                batch is None
                or batch.append(key=record.key, value=record.value, timestamp=None) is None
            ):
                if batch is not None:
                    pending.append(
                        await producer.send_batch(batch, topic, partition=record.partition)
                    )
                batch = batches[record.partition] = producer.create_batch()
                batch.append(key=record.key, value=record.value, timestamp=None)
            count += 1
            if len(pending) >= _BULK_IN_FLIGHT:
                await asyncio.gather(*pending)
                pending.clear()
        for partition, batch in batches.items():
            pending.append(await producer.send_batch(batch, topic, partition=partition))
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return count, time.perf_counter() - started


# --- following decisions -----------------------------------------------------------------------


@dataclass(slots=True)
class Arrivals:
    """Decisions seen by the follower: transaction id → arrival times (perf_counter)."""

    times: dict[str, list[float]] = field(default_factory=dict)
    total: int = 0

    def add(self, transaction_id: str, at: float) -> None:
        seen = self.times.get(transaction_id)
        if seen is None:
            self.times[transaction_id] = [at]
        else:
            seen.append(at)
        self.total += 1

    @property
    def distinct(self) -> int:
        return len(self.times)

    @property
    def duplicates(self) -> int:
        return self.total - self.distinct


# --- the worker process ------------------------------------------------------------------------


class WorkerError(RuntimeError):
    """The worker process ended or stalled while the benchmark needed it."""


# how to start another contender than fraudscore's worker: its argv and extra environment
Launch = Callable[[FraudscoreSettings], tuple[list[str], dict[str, str]]]


def spawn(
    settings: FraudscoreSettings, log_path: Path, launch: Launch | None = None
) -> tuple[WorkerProcess, float, float]:
    """A worker process (or what ``launch`` says); also the perf_counter and wall-clock time
    just before it started."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    program, env = (None, None) if launch is None else launch(settings)
    at, wall = time.perf_counter(), time.time()
    return WorkerProcess(settings, log_path, program=program, env=env), at, wall


def check_alive(worker: WorkerProcess) -> None:
    if worker.process.poll() is not None:
        raise WorkerError(f"worker exited with {worker.process.returncode}:\n{worker.log_tail()}")


async def wait_committed(
    settings: FraudscoreSettings, worker: WorkerProcess, timeout_s: float
) -> None:
    """Wait until the worker group has committed every input record produced so far; raises
    :class:`WorkerError` if the worker dies or ``timeout_s`` passes first."""
    ends = await end_offsets(settings, settings.input_topic)
    deadline = time.monotonic() + timeout_s
    while True:
        committed = await committed_offsets(settings)
        if all(committed.get(tp, -1) >= end for tp, end in ends.items()):
            return
        check_alive(worker)
        if time.monotonic() > deadline:
            raise WorkerError(f"input not fully committed: {committed} of {ends}")
        await asyncio.sleep(0.5)


def sigkill(worker: WorkerProcess) -> None:
    worker.process.kill()
    worker.process.wait()
    worker.stop()  # closes the log file; the process is gone already


def count_in_log(log_path: Path, text: str) -> int:
    """Lines of the log that contain ``text``."""
    with log_path.open("rb") as log:
        return sum(text.encode() in line for line in log)


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


def log_events(log_path: Path, patterns: dict[str, str]) -> dict[str, list[tuple[float, str]]]:
    """Per name, (epoch seconds, line) of each log line matching that name's regex."""
    compiled = {name: re.compile(pattern) for name, pattern in patterns.items()}
    found: dict[str, list[tuple[float, str]]] = {name: [] for name in patterns}
    for line in log_path.read_text(errors="replace").splitlines():
        stamp = _LOG_LINE.match(line)
        if stamp is None:
            continue
        at = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for name, pattern in compiled.items():
            if pattern.search(line):
                found[name].append((at, line))
    return found
