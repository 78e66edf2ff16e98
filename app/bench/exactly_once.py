"""What exactly-once costs, how fast a decision becomes visible, and how fast a worker recovers
(issue #3). Needs a running broker; every run uses fresh uuid-suffixed topics and groups.

Run: ``.venv/bin/python -m app.bench.exactly_once [--quick] [--markdown]`` (``--help`` lists
the knobs; the broker is ``FRAUDSCORE_KAFKA_BOOTSTRAP`` or ``--bootstrap``).

1. **Throughput at saturation.** ``--events`` generated transactions (``--cards`` cards, the
   load generator's records) are produced to one input topic *before* any worker starts. Then,
   for each round, one worker process (``fraudscore worker``) per guarantee reads that same
   input with a fresh group, decisions, changelog and state dir, alternating at-least-once and
   exactly-once. A ``read_committed`` consumer in this process stamps each decision's arrival;
   the window runs from the first decision visible to the last one (so model training and the
   group join are outside it) and the worker's CPU (utime + stime from ``/proc/<pid>/stat``)
   is read at both ends. Completeness is checked: exactly-once must show every transaction id
   exactly once, at-least-once every id at least once (duplicates are reported).
2. **Latency, produce → decision visible to a read_committed consumer**, at each offered rate
   of ``--rates`` for ``--duration`` seconds. The worker is started and warmed up (a first
   batch decided) before a paced producer in this process sends records one by one
   (``producer.send``, acks=all, idempotent), stamping each transaction id with
   ``time.perf_counter`` just before the send; the follower stamps arrivals with the same
   clock. Latency = arrival - send. If the producer falls behind the offered rate, the
   achieved rate is what is reported. An id not decided 15 s after the last send counts as
   infinitely late in the percentiles (shown as "not decided"). ``--latency-workers N`` runs
   N worker processes in one consumer group instead of one (their CPU is summed).
3. **Recovery.** One transaction for each of ``--recovery-cards`` cards builds the state; an
   exactly-once worker with a static ``instance_id`` decides them all (its committed offsets
   reach the input's end), is SIGKILLed, and is restarted with the same instance id; right
   after the restart one new transaction per partition is produced. Measured: restart →
   first / last of those decisions visible. Twice: local state intact, then state directory
   deleted (full restore from the changelog). The worker log gives the split: process start →
   model trained, → group joined, → partitions restored and ready.

Load average (1-minute) is read before and after each measurement: the machine is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import math
import os
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaProducer
from confluent_kafka import Producer
from rich.console import Console
from rich.table import Table

from app.bench._common import (
    Arrivals,
    Launch,
    Load,
    Outgoing,
    WorkerError,
    bulk_produce,
    check_alive,
    count_in_log,
    cpu_seconds,
    end_offsets,
    fresh_settings,
    load1,
    log_events,
    machine_info,
    maybe_cpu_seconds,
    partitioner,
    run_queue_seconds,
    sigkill,
    spawn,
    wait_committed,
)
from app.follower import DecisionFollower
from app.latency import percentile
from app.loadgen import outgoing
from app.pacer import Paced, paced_records, send_one_by_one
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from features.transaction import Transaction
from features.validation import decode_transaction
from sinks.kafka import client_options, ensure_topics, request_producer

console = Console(highlight=False, width=None if sys.stdout.isatty() else 170)
EO, ALO = "exactly_once", "at_least_once"
_SEED = 3
_RETRY = "WARNING app.checkpoint"  # a checkpoint call retried, or a checkpoint failed
_ASSIGNED = "partitions assigned:"  # app.worker's log line when the group gives it partitions


@dataclass(frozen=True, slots=True)
class Options:
    events: int
    cards: int
    partitions: int
    rounds: int
    rates: tuple[int, ...]
    duration_s: float
    alo_latency: bool
    throughput_workers: int  # fraudscore worker processes in the throughput runs (one group)
    latency_workers: int  # worker processes in the latency runs (one consumer group)
    recovery_cards: int
    fetch_wait_ms: int
    broker_pid: int | None
    root: Path
    base: FraudscoreSettings

    def fresh(self, tag: str, **update: object) -> FraudscoreSettings:
        return fresh_settings(self.base, tag, self.root, **update)

    def log(self, name: str) -> Path:
        return self.root / "logs" / f"{name}.log"


# --- 1. throughput at saturation ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Throughput:
    guarantee: str
    round: int
    workers: int  # worker processes in the consumer group
    reassigned: int  # assignments after each worker's first (a late joiner's rebalance)
    window_events: int  # decisions after the first batch seen, up to the last
    window_s: float
    worker_cpu_s: float
    bench_cpu_s: float
    broker_cpu_s: float | None
    worker_queued_s: float  # the worker's main thread runnable but waiting for a CPU
    startup_s: float  # worker start → first decision visible
    expected: int
    distinct: int
    total: int
    dead_letters: int
    retries: int  # checkpoint warnings in the worker's log
    load: Load

    @property
    def rate(self) -> float:
        """NaN when every decision arrived in the first fetch (an input too small to time)."""
        return self.window_events / self.window_s if self.window_s > 0 else math.nan

    @property
    def cpu_us(self) -> float:
        if self.window_events <= 0:
            return math.nan
        return self.worker_cpu_s / self.window_events * 1e6

    @property
    def broker_us(self) -> float | None:
        if self.broker_cpu_s is None or self.window_events <= 0:
            return None
        return self.broker_cpu_s / self.window_events * 1e6

    @property
    def complete(self) -> bool:
        exact = self.distinct == self.expected and self.dead_letters == 0
        return exact and (self.guarantee == ALO or self.total == self.expected)


_Cpu = tuple[float, float, float | None, float]  # worker, bench, broker CPU; worker run queue


@dataclass(slots=True)
class _Window:
    arrivals: Arrivals = field(default_factory=Arrivals)
    first_at: float = 0.0
    first_count: int = 0
    first_cpu: _Cpu = (0.0, 0.0, None, 0.0)
    last_at: float = 0.0
    last_cpu: _Cpu = (0.0, 0.0, None, 0.0)


def _cpu_now(workers: Sequence[WorkerProcess], broker_pid: int | None) -> _Cpu:
    pids = [worker.process.pid for worker in workers]
    cpu, queued = sum(map(cpu_seconds, pids)), sum(map(run_queue_seconds, pids))
    return cpu, time.process_time(), maybe_cpu_seconds(broker_pid), queued


async def _follow_until(
    follower: DecisionFollower,
    workers: Sequence[WorkerProcess],
    expected: int,
    opts: Options,
    stall_s: float | None = None,
) -> _Window:
    """Follow decisions until ``expected`` distinct ids arrived, then 1 s more for duplicates.
    With ``stall_s``, also stop (instead of failing) once no new id arrived for that long
    after the first, or at the deadline (another program may be far slower than the worker):
    the caller verifies and reports what is missing."""
    window, deadline = (
        _Window(),
        time.monotonic() + 60 + expected / (500 if stall_s is None else 10),
    )
    progressed = time.monotonic()
    while window.arrivals.distinct < expected:
        at, ids = await follower.poll()
        if ids and window.arrivals.total == 0:
            window.first_at, window.first_count = at, len(ids)
            window.first_cpu = _cpu_now(workers, opts.broker_pid)
        distinct = window.arrivals.distinct
        for transaction_id in ids:
            window.arrivals.add(transaction_id, at)
        if window.arrivals.distinct > distinct:
            progressed, window.last_at = time.monotonic(), at
            window.last_cpu = _cpu_now(workers, opts.broker_pid)
        for worker in workers:
            check_alive(worker)
        if stall_s is not None and distinct and time.monotonic() - progressed > stall_s:
            return window
        if time.monotonic() > deadline:
            if stall_s is not None and distinct:
                return window
            raise WorkerError(f"only {window.arrivals.distinct} of {expected} decisions arrived")
    window.last_at, window.last_cpu = at, _cpu_now(workers, opts.broker_pid)
    grace = time.monotonic() + 1.0
    while time.monotonic() < grace:
        at, ids = await follower.poll()
        for transaction_id in ids:
            window.arrivals.add(transaction_id, at)
    return window


def _loadgen_records(count: int, cards: int, seed: int, partitions: int) -> list[Outgoing]:
    part = partitioner(partitions)
    records = outgoing(count, cards=cards, seed=seed, malformed=0)
    return [Outgoing(r.key, r.value, part(r.key)) for r in records]


async def preproduce(opts: Options) -> tuple[str, float, float]:
    """The shared input topic, filled; (topic, generation seconds, produce seconds)."""
    settings = opts.fresh("input")
    await ensure_topics(settings)
    started = time.perf_counter()
    records = _loadgen_records(opts.events, opts.cards, _SEED, opts.partitions)
    generated = time.perf_counter() - started
    _, produce_s = await bulk_produce(settings, settings.input_topic, records)
    return settings.input_topic, generated, produce_s


async def throughput_run(
    opts: Options,
    input_topic: str,
    guarantee: str,
    n: int,
    *,
    contender: str = "fraudscore",
    launch: Launch | None = None,
) -> tuple[Throughput, FraudscoreSettings]:
    """One throughput run of fraudscore's worker, ``opts.throughput_workers`` processes of it
    started together (or of the one process ``launch`` starts, which then may stop short of
    every decision: what it decided is measured, the rest reported).

    Processes started together still make two generations of the group: the first to
    join gets every partition, and decides alone until the rebalance that lets the others in
    completes (~3 s: it learns of it at its next heartbeat). That time is in the window (the
    reassignments are counted), so several workers are, if anything, under-reported."""
    settings = opts.fresh(
        f"tp{n}-{contender[:5]}-{guarantee[:3]}",
        input_topic=input_topic,
        processing_guarantee=guarantee,
    )
    await ensure_topics(settings)
    follower = DecisionFollower(settings, opts.fetch_wait_ms)
    await follower.start(from_end=False)
    before = load1()
    name = f"throughput-{n}-{contender}-{guarantee}"
    count = 1 if launch is not None else opts.throughput_workers
    spawned = time.perf_counter()
    workers = [
        spawn(own, opts.log(name if count == 1 else f"{name}-w{i}"), launch)[0]
        for i, own in enumerate(group_settings(settings, count))
    ]
    try:
        stall = None if launch is None else 20.0
        window = await _follow_until(follower, workers, opts.events, opts, stall)
    finally:
        for worker in workers:
            worker.stop()
        await follower.stop()
    dlq = sum((await end_offsets(settings, settings.dlq_topic)).values())
    result = _throughput(
        guarantee=guarantee, n=n, w=window, spawned=spawned, opts=opts, dlq=dlq,
        load=Load(before, load1()),
        logs=Logs(
            workers=count,
            retries=sum(count_in_log(w.log_path, _RETRY) for w in workers),
            reassigned=sum(max(0, count_in_log(w.log_path, _ASSIGNED) - 1) for w in workers),
        ),
    )  # fmt: skip
    return result, settings


@dataclass(frozen=True, slots=True)
class Logs:
    """What the workers' logs say about a throughput run."""

    workers: int
    retries: int
    reassigned: int  # assignments after each worker's first: what joining cost


def group_settings(settings: FraudscoreSettings, count: int) -> list[FraudscoreSettings]:
    """The settings of each of ``count`` worker processes in one consumer group: each its own
    state dir (and so its own transactional id)."""
    if count == 1:
        return [settings]
    return [
        settings.model_copy(update={"var_dir": settings.var_dir / f"w{i}"}) for i in range(count)
    ]


def _throughput(
    *,
    guarantee: str,
    n: int,
    w: _Window,
    spawned: float,
    opts: Options,
    dlq: int,
    load: Load,
    logs: Logs,
) -> Throughput:
    expected = {f"tx_{_SEED}_{i:09d}" for i in range(opts.events)}
    broker = None
    if w.first_cpu[2] is not None and w.last_cpu[2] is not None:
        broker = w.last_cpu[2] - w.first_cpu[2]
    distinct = len(expected & w.arrivals.times.keys())
    return Throughput(
        guarantee=guarantee,
        round=n,
        workers=logs.workers,
        reassigned=logs.reassigned,
        window_events=distinct - w.first_count,
        window_s=w.last_at - w.first_at,
        worker_cpu_s=w.last_cpu[0] - w.first_cpu[0],
        bench_cpu_s=w.last_cpu[1] - w.first_cpu[1],
        broker_cpu_s=broker,
        worker_queued_s=w.last_cpu[3] - w.first_cpu[3],
        startup_s=w.first_at - spawned,
        expected=opts.events,
        distinct=distinct,
        total=w.arrivals.total,
        dead_letters=dlq,
        retries=logs.retries,
        load=load,
    )


async def throughput(opts: Options) -> list[Throughput]:
    topic, generate_s, produce_s = await preproduce(opts)
    console.print(
        f"pre-produced {opts.events:,} transactions ({opts.cards:,} cards, "
        f"{opts.partitions} partitions) to {topic}: generated in {generate_s:.1f} s, "
        f"sent in {produce_s:.1f} s"
    )
    results = []
    for n in range(1, opts.rounds + 1):
        for guarantee in (ALO, EO):
            result, _ = await throughput_run(opts, topic, guarantee, n)
            console.print(
                f"  round {n} {guarantee}: {result.rate:,.0f} events/s, "
                f"{result.cpu_us:.1f} µs CPU/event, load {result.load}"
            )
            results.append(result)
    return results


# --- 2. latency -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latency:
    guarantee: str
    offered_tps: int
    achieved_tps: float
    sent: int
    decided: int
    duplicates: int
    latencies_ms: list[float]  # sorted: send → decision visible
    in_worker_ms: list[float]  # sorted: send → the worker's checkpoint sent the decision
    max_behind_ms: float  # how far the producer fell behind its schedule, at worst
    retries: int  # checkpoint warnings in the worker's log during the phase
    worker_cpu_share: float  # worker CPU seconds per wall second during the phase
    worker_queued_share: float  # worker main thread waiting for a CPU, per wall second
    load: Load

    def p(self, q: float) -> float:
        """Percentile over everything sent: an id never decided counts as infinitely late."""
        return percentile(self._padded(self.latencies_ms), q)

    def p_worker(self, q: float) -> float:
        return percentile(self._padded(self.in_worker_ms), q)

    def _padded(self, values: list[float]) -> list[float]:
        return values + [math.inf] * (self.sent - len(values))


@dataclass(slots=True)
class _Phase:
    """One paced run: send times (perf_counter, wall clock) and what arrived."""

    sent: dict[str, tuple[float, float]] = field(default_factory=dict)
    arrivals: Arrivals = field(default_factory=Arrivals)
    created_ms: dict[str, int] = field(default_factory=dict)  # decision timestamp, first seen
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def stamp(self, record: Paced) -> None:
        self.sent[record.transaction_id] = (time.perf_counter(), time.time())

    def latencies(self) -> tuple[list[float], list[float]]:
        """Sorted (send → visible, send → checkpoint) in ms, over the decided ids."""
        total, worker = [], []
        for tid, times in self.arrivals.times.items():
            sent_at, sent_wall = self.sent[tid]
            total.append((times[0] - sent_at) * 1000)
            worker.append(self.created_ms[tid] - sent_wall * 1000)
        return sorted(total), sorted(worker)


async def _collect(follower: DecisionFollower, phase: _Phase) -> None:
    """Stamp arrivals of the paced ids until all arrived, or 15 s after the last send."""
    deadline = None
    while deadline is None or time.monotonic() < deadline:
        at, stamped = await follower.poll_stamped(timeout_ms=50)
        for seen in stamped:
            if seen.transaction_id in phase.sent:
                phase.arrivals.add(seen.transaction_id, at)
                phase.created_ms.setdefault(seen.transaction_id, seen.timestamp_ms)
        if phase.done.is_set():
            if phase.arrivals.distinct >= len(phase.sent):
                return
            deadline = deadline or time.monotonic() + 15.0


async def latency_phase(
    settings: FraudscoreSettings,
    clients: tuple[Producer, DecisionFollower],
    workers: Sequence[WorkerProcess],
    records: list[Paced],
    rate: int,
) -> Latency:
    producer, follower = clients
    phase = _Phase()
    pids = [worker.process.pid for worker in workers]

    def cpu() -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    def queued() -> float:
        return sum(run_queue_seconds(pid) for pid in pids)

    def retries() -> int:
        return sum(count_in_log(worker.log_path, _RETRY) for worker in workers)

    before, cpu_before, started = load1(), cpu(), time.perf_counter()
    queued_before, retries_before = queued(), retries()
    collector = asyncio.create_task(_collect(follower, phase))
    gc.disable()  # a full collection over the phase's records stalled the sender ~0.1 s
    try:
        elapsed, behind = await send_one_by_one(
            producer, settings.input_topic, records, rate, phase.stamp
        )
    finally:
        phase.done.set()
    try:
        await collector
    finally:
        gc.enable()
    for worker in workers:
        check_alive(worker)
    wall = time.perf_counter() - started
    cpu_share = (cpu() - cpu_before) / wall
    queued_share = (queued() - queued_before) / wall
    total, in_worker = phase.latencies()
    return Latency(
        guarantee=settings.processing_guarantee,
        offered_tps=rate,
        achieved_tps=len(phase.sent) / elapsed,
        sent=len(phase.sent),
        decided=phase.arrivals.distinct,
        duplicates=phase.arrivals.duplicates,
        latencies_ms=total,
        in_worker_ms=in_worker,
        max_behind_ms=behind * 1000,
        retries=retries() - retries_before,
        worker_cpu_share=cpu_share,
        worker_queued_share=queued_share,
        load=Load(before, load1()),
    )


async def _warm_up(
    settings: FraudscoreSettings,
    clients: tuple[Producer, DecisionFollower],
    workers: Sequence[WorkerProcess],
) -> None:
    """Decide a first small batch so that training, join and restore are behind us, and the
    paced runs' producer has its metadata and producer id (a fresh one holds its first sends
    back until it has them)."""
    producer, follower = clients
    warm = paced_records(500, 5_000, seed=99)
    await send_one_by_one(producer, settings.input_topic, warm, 0, lambda _: None)
    wanted = {r.transaction_id for r in warm}
    seen: set[str] = set()
    deadline = time.monotonic() + 180
    while not wanted <= seen:
        seen.update((await follower.poll())[1])
        for worker in workers:
            check_alive(worker)
        if time.monotonic() > deadline:
            raise WorkerError("warm-up decisions did not arrive")


async def latency(
    opts: Options, guarantee: str, *, contender: str = "fraudscore", launch: Launch | None = None
) -> list[Latency]:
    """The paced runs at each rate, with fraudscore's workers or the one process ``launch``
    starts."""
    workloads = {
        rate: paced_records(round(rate * opts.duration_s), opts.cards, seed=10_000 + rate)
        for rate in opts.rates
    }
    settings = opts.fresh(f"lat-{contender[:5]}-{guarantee[:3]}", processing_guarantee=guarantee)
    await ensure_topics(settings)
    follower = DecisionFollower(settings, opts.fetch_wait_ms)
    await follower.start(from_end=False)
    name = f"latency-{contender}-{guarantee}"
    if launch is None:
        workers = await _start_group(settings, opts, name)
    else:  # the warm-up below waits for its first decisions
        workers = [spawn(settings, opts.log(name), launch)[0]]
    results = []
    try:
        clients = (request_producer(settings), follower)
        await _warm_up(settings, clients, workers)
        for rate, records in workloads.items():
            result = await latency_phase(settings, clients, workers, records, rate)
            console.print(
                f"  {contender} {guarantee} {rate:,} TPS offered "
                f"({result.achieved_tps:,.0f} achieved): "
                f"p50 {_f(result.p(50), 1)} ms, p99 {_f(result.p(99), 1)} ms, load {result.load}"
            )
            results.append(result)
    finally:
        for worker in workers:
            worker.stop()
        await follower.stop()
    return results


async def _start_group(
    settings: FraudscoreSettings, opts: Options, name: str
) -> list[WorkerProcess]:
    """``opts.latency_workers`` worker processes in one consumer group, each with its own
    state dir (and so its own transactional id), started one after the other; the warm-up
    that follows needs every partition decided, so the group has settled before measuring."""
    count = opts.latency_workers
    workers: list[WorkerProcess] = []
    try:
        for i, own in enumerate(group_settings(settings, count)):
            worker, _, _ = spawn(own, opts.log(name if count == 1 else f"{name}-w{i}"))
            workers.append(worker)
            if not await worker.wait_for_log("ready at offset"):
                raise WorkerError(f"worker {i} did not get ready:\n{worker.log_tail()}")
    except BaseException:
        for worker in workers:
            worker.stop()
        raise
    return workers


# --- 3. recovery ------------------------------------------------------------------------------

_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _state_record(i: int, partitions: int, prefix: str, event_ms: int) -> Outgoing:
    """One cheap, valid transaction for card ``i`` (partition ``i % partitions``)."""
    card = b"tok_bench_%07d" % i
    value = (
        b'{"transaction_id":"%s_%07d","card_id":"%s","amount":"%d.%02d","currency":"USD",'
        b'"merchant_id":"m_%05d","merchant_category":"5411","event_time":%d}'
        % (prefix.encode(), i, card, 5 + i % 200, i % 100, i % 50_000, event_ms)
    )
    return Outgoing(card, value, i % partitions)


@dataclass(frozen=True, slots=True)
class Build:
    cards: int
    produce_s: float
    decide_s: float  # worker start → every input offset committed
    load: Load


@dataclass(frozen=True, slots=True)
class Recovery:
    variant: str
    first_s: float  # restart → first new decision visible
    all_s: float  # restart → one new decision per partition visible
    model_s: float | None  # restart → "model ... loaded" in the log (imports + training)
    joined_s: float | None  # restart → "worker joined group"
    ready_s: float | None  # restart → the last "partition ... ready"
    restored_records: int
    restore_max_s: float | None  # the slowest partition's restore, as the worker logged it
    load: Load


@dataclass(frozen=True, slots=True)
class Startup:
    """A worker's start-up, measured apart in a child process: how much is not restore."""

    imports_s: float  # interpreter start + importing the worker's modules
    training_s: float  # train_default_model()
    load: Load


_STARTUP_PROBE = """
import time
started = time.perf_counter()
import app.cli, app.worker
from models.default import train_default_model
imported = time.perf_counter()
train_default_model()
print(imported - started, time.perf_counter() - imported, flush=True)
"""


async def measure_startup() -> Startup:
    before, started = load1(), time.perf_counter()
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _STARTUP_PROBE, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await child.communicate()
    training = float(out.split()[1])
    # everything but the training: interpreter start, imports (and the child's exit)
    return Startup(time.perf_counter() - started - training, training, Load(before, load1()))


async def build_state(opts: Options, settings: FraudscoreSettings) -> tuple[WorkerProcess, Build]:
    n, partitions = opts.recovery_cards, settings.partitions
    sample = _state_record(0, partitions, "st", _START_MS).value
    assert isinstance(decode_transaction(sample, max_bytes=8192), Transaction), sample
    records = (_state_record(i, partitions, "st", _START_MS + i) for i in range(n))
    _, produce_s = await bulk_produce(settings, settings.input_topic, records)
    before = load1()
    worker, spawned, _ = spawn(settings, opts.log("recovery-build"))
    await wait_committed(settings, worker, 120 + n / 1000)
    return worker, Build(n, produce_s, time.perf_counter() - spawned, Load(before, load1()))


async def _probe(
    settings: FraudscoreSettings, follower: DecisionFollower, opts: Options, variant: str, tag: str
) -> tuple[WorkerProcess, Recovery]:
    """Restart the worker, produce one new transaction per partition, time their decisions."""
    producer = AIOKafkaProducer(**client_options(settings), acks="all", linger_ms=0)
    await producer.start()
    event_ms = _START_MS + opts.recovery_cards + 60_000
    probes = [
        _state_record(p, settings.partitions, tag, event_ms) for p in range(settings.partitions)
    ]
    before = load1()
    worker, spawned, wall = spawn(settings, opts.log(f"recovery-{tag}"))
    try:
        acks = [
            await producer.send(settings.input_topic, r.value, key=r.key, partition=r.partition)
            for r in probes
        ]
        await asyncio.gather(*acks)
    finally:
        await producer.stop()
    wanted = {f"{tag}_{p:07d}" for p in range(settings.partitions)}
    seen: list[float] = []
    deadline = time.monotonic() + 300
    while len(seen) < len(wanted):
        at, ids = await follower.poll(timeout_ms=20)
        seen.extend(at for tid in ids if tid in wanted)
        check_alive(worker)
        if time.monotonic() > deadline:
            raise WorkerError(f"{variant}: new decisions did not arrive")
    first, last = seen[0] - spawned, seen[-1] - spawned
    return worker, _recovery(variant, worker, wall=wall, first=first, last=last, before=before)


def _recovery(
    variant: str, worker: WorkerProcess, *, wall: float, first: float, last: float, before: float
) -> Recovery:
    events = log_events(
        worker.log_path,
        {
            "model": r"model .* loaded",
            "joined": r"worker joined group",
            "ready": r"partition .* ready at offset",
            "restored": r"restored .*: \d+ changelog records",
        },
    )

    def since(name: str, pick: int = 0) -> float | None:
        return events[name][pick][0] - wall if events[name] else None

    restored = [line.split("restored ", 1)[1] for _, line in events["restored"]]
    counts = [int(text.split(": ", 1)[1].split()[0]) for text in restored]
    seconds = [float(text.rsplit(" in ", 1)[1].rstrip("s")) for text in restored]
    return Recovery(
        variant=variant,
        first_s=first,
        all_s=last,
        model_s=since("model"),
        joined_s=since("joined"),
        ready_s=since("ready", -1),
        restored_records=sum(counts),
        restore_max_s=max(seconds) if seconds else None,
        load=Load(before, load1()),
    )


async def recovery(opts: Options) -> tuple[Build, Startup, list[Recovery]]:
    startup = await measure_startup()
    settings = opts.fresh("rec", instance_id=f"bench-{uuid.uuid4().hex[:8]}")
    await ensure_topics(settings)
    worker, build = await build_state(opts, settings)
    console.print(
        f"  state built: {build.cards:,} cards produced in {build.produce_s:.1f} s, decided "
        f"{build.decide_s:.1f} s after the worker started, load {build.load}"
    )
    follower = DecisionFollower(settings, opts.fetch_wait_ms)
    await follower.start(from_end=True)
    results = []
    try:
        for tag, variant in (("intact", "local state intact"), ("wiped", "state dir deleted")):
            await asyncio.sleep(1.0)  # the last checkpoint reaches RocksDB
            sigkill(worker)
            if tag == "wiped":
                shutil.rmtree(settings.state_dir)
            worker, result = await _probe(settings, follower, opts, variant, tag)
            console.print(f"  {variant}: first new decision {result.first_s:.2f} s after restart")
            results.append(result)
    finally:
        worker.stop()
        await follower.stop()
    return build, startup, results


# --- report -----------------------------------------------------------------------------------


_THROUGHPUT_COLUMNS = (
    "round",
    "guarantee",
    "workers",
    "events/s",
    "worker CPU µs/event",
    "broker CPU µs/event",
    "bench CPU µs/event",
    "worker CPU / waiting for CPU",
    "window s",
    "start-up s",
    "decided (distinct/total)",
    "complete",
    "checkpoint warnings",
    "reassignments",
    "load 1m",
)
_LATENCY_COLUMNS = (
    "guarantee",
    "offered TPS",
    "achieved TPS",
    "decided/sent",
    "p50",
    "p99",
    "p99.9",
    "max",
    "send→checkpoint p50 / p99",
    "producer behind",
    "checkpoint warnings",
    "worker CPU / waiting for CPU",
    "load 1m",
)
_RECOVERY_COLUMNS = (
    "variant",
    "first new decision",
    "all partitions' decisions",
    "model trained",
    "group joined",
    "partitions ready",
    "restored records",
    "slowest restore",
    "load 1m",
)


def _f(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    return "not decided" if math.isinf(value) else f"{value:,.{digits}f}"


def throughput_table(results: Sequence[Throughput]) -> Table:
    table = Table(title="1. Throughput at saturation (window: first → last decision visible)")
    for name in _THROUGHPUT_COLUMNS:
        table.add_column(name, justify="left" if name == "guarantee" else "right")
    for r in results:
        table.add_row(
            str(r.round), r.guarantee, str(r.workers), f"{r.rate:,.0f}", _f(r.cpu_us, 1),
            _f(r.broker_us, 1),
            _f(r.bench_cpu_s / r.window_events * 1e6, 1),
            f"{r.worker_cpu_s / r.window_s:.0%} / {r.worker_queued_s / r.window_s:.0%}",
            _f(r.window_s), _f(r.startup_s),
            f"{r.distinct:,}/{r.total:,}", "yes" if r.complete else "NO", str(r.retries),
            str(r.reassigned), str(r.load),
        )  # fmt: skip
    return table


def ratio_table(results: Sequence[Throughput]) -> Table:
    table = Table(title="EO / ALO (median over rounds; per round in brackets)")
    for name in ("measure", "ALO", "EO", "EO/ALO"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    by = {g: [r for r in results if r.guarantee == g] for g in (ALO, EO)}
    for label, attr in (
        ("events/s", "rate"),
        ("worker CPU µs/event", "cpu_us"),
        ("broker CPU µs/event", "broker_us"),
    ):
        alo = [getattr(r, attr) for r in by[ALO]]
        eo = [getattr(r, attr) for r in by[EO]]
        if None in alo or None in eo or not alo or not eo:
            continue
        per_round = ", ".join(f"{e / a:.2f}" for a, e in zip(alo, eo, strict=False))
        ratio = statistics.median(eo) / statistics.median(alo)
        table.add_row(
            label, f"{statistics.median(alo):,.1f}", f"{statistics.median(eo):,.1f}",
            f"{ratio:.2f} [{per_round}]",
        )  # fmt: skip
    return table


def latency_table(results: Sequence[Latency]) -> Table:
    table = Table(title="2. Latency produce → decision visible (read_committed), ms")
    for name in _LATENCY_COLUMNS:
        table.add_column(name, justify="left" if name == "guarantee" else "right")
    for r in results:
        table.add_row(
            r.guarantee, f"{r.offered_tps:,}", f"{r.achieved_tps:,.0f}",
            f"{r.decided:,}/{r.sent:,}" + (f" (+{r.duplicates} dup)" if r.duplicates else ""),
            _f(r.p(50), 1), _f(r.p(99), 1), _f(r.p(99.9), 1), _f(r.p(100), 1),
            f"{_f(r.p_worker(50), 0)} / {_f(r.p_worker(99), 0)}", _f(r.max_behind_ms, 1),
            str(r.retries), f"{r.worker_cpu_share:.0%} / {r.worker_queued_share:.0%}",
            str(r.load),
        )  # fmt: skip
    return table


def recovery_table(build: Build, startup: Startup, results: Sequence[Recovery]) -> Table:
    table = Table(
        title=f"3. Recovery after SIGKILL, {build.cards:,} cards of state (s since restart)",
        caption=f"State: {build.cards:,} cards produced in {build.produce_s:.1f} s, all decided "
        f"{build.decide_s:.1f} s after the worker started (load {build.load}). Measured apart "
        f"in a child process: interpreter + imports {startup.imports_s:.2f} s, training the "
        f"default model {startup.training_s:.2f} s (load {startup.load}).",
    )
    for name in _RECOVERY_COLUMNS:
        table.add_column(name, justify="left" if name == "variant" else "right")
    for r in results:
        table.add_row(
            r.variant, _f(r.first_s), _f(r.all_s), _f(r.model_s), _f(r.joined_s), _f(r.ready_s),
            f"{r.restored_records:,}", _f(r.restore_max_s), str(r.load),
        )  # fmt: skip
    return table


def markdown(table: Table) -> str:
    """The rich table as a GitHub markdown table (for docs/BENCHMARKS.md)."""
    columns = table.columns
    lines = [f"{table.title}", "", "| " + " | ".join(str(c.header) for c in columns) + " |"]
    lines.append("|" + "|".join("---" if c.justify == "left" else "---:" for c in columns) + "|")
    cells = [list(c.cells) for c in columns]
    lines.extend(
        "| " + " | ".join(str(col[i]) for col in cells) + " |" for i in range(table.row_count)
    )
    if table.caption:
        lines += ["", str(table.caption)]
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m app.bench.exactly_once",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add(
        "--quick",
        action="store_true",
        help="smoke run (~75 s): 20,000 events, one round, 5 s per rate, exactly-once latency "
        "only, 100,000 cards of state",
    )
    add("--bootstrap", help="Kafka bootstrap servers (default: the settings')")
    add("--events", type=int, help="transactions for the throughput runs (200,000)")
    add("--cards", type=int, default=50_000, help="cards of the generated traffic")
    add("--partitions", type=int, default=4)
    add("--rounds", type=int, help="throughput rounds, each ALO then EO (2)")
    add("--rates", help="offered loads for the latency runs, comma-separated (1000,5000)")
    add("--duration", type=float, help="seconds per latency load (30)")
    add("--no-alo-latency", action="store_true", help="latency for exactly-once only")
    add(
        "--throughput-workers",
        type=int,
        default=1,
        help="worker processes in the throughput runs (one consumer group, started together)",
    )
    add("--latency-workers", type=int, default=1, help="worker processes in the latency runs")
    add("--recovery-cards", type=int, help="cards of state for the recovery runs (1,000,000)")
    add("--parts", default="throughput,latency,recovery", help="which parts to run")
    add("--fetch-wait-ms", type=int, default=100, help="fetch.max.wait.ms of the follower")
    add("--broker-pid", type=int, help="also read the broker's CPU (its pid on this machine)")
    add("--broker-version", help="the broker's Kafka version, for the report (settings')")
    add("--markdown", action="store_true", help="also print the tables as markdown")
    add("--keep", action="store_true", help="keep the workers' state dirs (logs are kept)")
    return parser.parse_args(argv)


def options(args: argparse.Namespace, root: Path) -> Options:
    quick = args.quick
    base = FraudscoreSettings()
    update: dict[str, object] = {"partitions": args.partitions}
    if args.bootstrap:
        update["kafka_bootstrap"] = args.bootstrap
    rates = args.rates or "1000,5000"
    return Options(
        events=args.events or (20_000 if quick else 200_000),
        cards=args.cards,
        partitions=args.partitions,
        rounds=args.rounds or (1 if quick else 2),
        rates=tuple(int(x) for x in rates.split(",")),
        duration_s=args.duration or (5.0 if quick else 30.0),
        alo_latency=not (args.no_alo_latency or quick),
        throughput_workers=args.throughput_workers,
        latency_workers=args.latency_workers,
        recovery_cards=args.recovery_cards or (100_000 if quick else 1_000_000),
        fetch_wait_ms=args.fetch_wait_ms,
        broker_pid=args.broker_pid,
        root=root,
        base=base.model_copy(update=update),
    )


def header(opts: Options, args: argparse.Namespace, argv: Sequence[str]) -> None:
    table = Table.grid(padding=(0, 2))
    for key, value in machine_info(args.broker_version or opts.base.kafka_version):
        table.add_row(key, value)
    b = opts.base
    table.add_row("broker at", b.kafka_bootstrap)
    worker = (
        f"checkpoint every {b.checkpoint_interval_ms} ms or {b.checkpoint_max_records:,} "
        f"records, fetch {b.fetch_max_records:,}, {opts.partitions} partitions; processes: "
        f"{opts.throughput_workers} in the throughput runs, {opts.latency_workers} in the "
        "latency runs"
    )
    table.add_row("worker", worker)
    table.add_row(
        "command",
        f"{os.path.relpath(sys.executable)} -m app.bench.exactly_once {' '.join(argv)}".rstrip(),
    )
    table.add_row("run dir", str(opts.root))
    console.print(table)


async def run(opts: Options, parts: set[str], show_markdown: bool) -> None:
    tables: list[Table] = []
    started = time.monotonic()
    if "throughput" in parts:
        console.rule("1. throughput at saturation")
        results = await throughput(opts)
        tables += [throughput_table(results), ratio_table(results)]
        console.print(*tables[-2:])
    if "latency" in parts:
        console.rule("2. latency")
        lat = await latency(opts, EO)
        if opts.alo_latency:
            lat += await latency(opts, ALO)
        tables.append(latency_table(lat))
        console.print(tables[-1])
    if "recovery" in parts:
        console.rule("3. recovery")
        build, startup, rec = await recovery(opts)
        tables.append(recovery_table(build, startup, rec))
        console.print(tables[-1])
    console.print(
        f"total {time.monotonic() - started:.0f} s; load average now {os.getloadavg()[0]:.2f}"
    )
    if show_markdown:
        console.print("\n\n".join(markdown(t) for t in tables), markup=False, soft_wrap=True)


def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    # aiokafka logs retried errors (e.g. no leader yet for a topic created a moment ago);
    # the benchmark checks completeness itself, so only give it a voice for fatal ones.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    root = Path(FraudscoreSettings().var_dir, "bench", f"exactly_once-{stamp}").resolve()
    opts = options(args, root)
    header(opts, args, argv)
    try:
        asyncio.run(run(opts, set(args.parts.split(",")), args.markdown))
    finally:
        if not args.keep:
            for path in root.glob("*/state"):
                shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
