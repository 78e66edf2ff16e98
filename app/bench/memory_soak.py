"""Memory soak (issue #8): one exactly-once ``fraudscore worker`` at a fixed offered rate for a
given time on load-generator traffic; is its memory flat?

The worker reads a fresh input topic. This process generates the load generator's
transactions (``cards`` cards) spread over ``event_days`` of event time (90 by default: the
card state keeps 24 hours of events and 30 days of daily buckets, so the state grows while
new cards appear and their buckets fill, and levels off after a third of the run) chunk by
chunk (one chunk per sample interval, the next generated while the current is
sent) and sends them paced at ``rate`` per second (:func:`app.pacer.send_one_by_one`).
After each chunk it samples:

- the worker's resident size, ``VmRSS`` and its peak ``VmHWM`` (``/proc/<pid>/status``);
- from the worker's ``/metrics`` (docs/OBSERVABILITY.md), summed over partitions: the
  state's keys (RocksDB's estimate, which counts overwrites still in the memtables, so it
  can exceed the cards) and bytes (table files plus memtables), the consumer lag and the
  decisions committed;
- RocksDB's own memory account (``fraudscore_worker_state_memory_bytes``) over all the
  worker's stores: the shared block cache's usage (memtables charged to it included), the
  memtables and the table readers;
- the active cards: distinct cards among the transactions sent so far (counted here);
- the 1-minute load average (the machine is shared).

At the end it waits for the lag to drain, stops the worker and reads the whole decisions
topic back with ``read_committed`` (:mod:`app.bench.verify`): one decision per transaction.

Flatness is reported, never asserted: the least-squares slope of RSS (and of state bytes)
over the second half of the samples in MB per 10 minutes, and the state's bytes per active
card at the first sample with state and at the last.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from typing import NamedTuple

from prometheus_client.parser import text_string_to_metric_families
from rich.table import Table

from app.bench._common import Load, WorkerError, check_alive, load1, spawn
from app.bench.exactly_once import EO, Options
from app.bench.verify import Verdict, committed_ids, verdict
from app.model_cache import cached_default_model
from app.pacer import Paced, send_one_by_one
from app.process import WorkerProcess, free_port
from app.settings import FraudscoreSettings
from models.synthetic import encode_record, generate
from sinks.kafka import ensure_topics, request_producer

_SEED = 5
_MB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Sample:
    elapsed_s: float  # since the first send
    sent: int
    cards: int  # distinct cards among the transactions sent (counted here, exact)
    decided: int  # decisions written by committed checkpoints (the worker's counter)
    lag: int
    rss_bytes: int
    hwm_bytes: int
    state_keys: int
    state_bytes: int
    rocksdb: Reading  # RocksDB's memory account: memtables, block cache, table readers
    load1: float

    @property
    def bytes_per_card(self) -> float | None:
        """State bytes per active card (a card seen so far)."""
        return self.state_bytes / self.cards if self.cards and self.state_bytes else None


@dataclass(frozen=True, slots=True)
class Flatness:
    rss_slope_mb_per_10min: float  # over the second half of the samples
    state_slope_mb_per_10min: float
    keys_slope_per_10min: float
    bytes_per_card_first: float | None  # the first sample with state
    bytes_per_card_last: float | None
    samples_in_fit: int


@dataclass(frozen=True, slots=True)
class Soak:
    rate: int
    achieved_tps: float
    max_behind_s: float  # how far the producer fell behind its schedule, at worst
    samples: list[Sample]
    verdict: Verdict
    load: Load


def slope_per_10min(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, in value per 10 minutes (0 for fewer
    than two distinct times)."""
    if len({t for t, _ in points}) < 2:
        return 0.0
    times, values = zip(*points, strict=True)
    return statistics.linear_regression(times, values).slope * 600


def flatness(samples: Sequence[Sample]) -> Flatness:
    half = list(samples[len(samples) // 2 :])
    with_state = [s for s in samples if s.bytes_per_card is not None]
    return Flatness(
        rss_slope_mb_per_10min=slope_per_10min([(s.elapsed_s, s.rss_bytes / _MB) for s in half]),
        state_slope_mb_per_10min=slope_per_10min(
            [(s.elapsed_s, s.state_bytes / _MB) for s in half]
        ),
        keys_slope_per_10min=slope_per_10min([(s.elapsed_s, s.state_keys) for s in half]),
        bytes_per_card_first=with_state[0].bytes_per_card if with_state else None,
        bytes_per_card_last=with_state[-1].bytes_per_card if with_state else None,
        samples_in_fit=len(half),
    )


# --- reading the worker ------------------------------------------------------------------------


def proc_memory(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process in bytes, from /proc/<pid>/status."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024  # kB
    return found["VmRSS"], found["VmHWM"]


class Reading(NamedTuple):
    """What the soak reads from the worker's /metrics, summed over its partitions."""

    keys: int = 0
    bytes: int = 0
    lag: int = 0
    decided: int = 0  # decisions committed
    budget_used: int = 0  # RocksDB's memory account (fraudscore_worker_state_memory_bytes)
    memtables: int = 0
    table_readers: int = 0


_SUMMED = {
    "fraudscore_worker_state_keys": "keys",
    "fraudscore_worker_state_bytes": "bytes",
    "fraudscore_worker_consumer_lag": "lag",
}


def worker_metrics(text: str, decisions_topic: str) -> Reading:
    """The soak's :class:`Reading` of the worker's /metrics exposition."""
    sums = dict.fromkeys(Reading._fields, 0.0)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name in _SUMMED:
                sums[_SUMMED[s.name]] += s.value
            elif s.name == "fraudscore_worker_state_memory_bytes":
                sums[s.labels["kind"]] += s.value
            elif (
                s.name == "fraudscore_worker_records_out_total"
                and s.labels.get("topic") == decisions_topic
            ):
                sums["decided"] += s.value
    return Reading(**{name: int(value) for name, value in sums.items()})


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our worker
        return str(response.read().decode())


async def _sample(
    worker: WorkerProcess, settings: FraudscoreSettings, started: float, sent: int, cards: int
) -> Sample:
    check_alive(worker)
    url = f"http://127.0.0.1:{settings.worker_http_port}/metrics"
    reading = worker_metrics(await asyncio.to_thread(_scrape, url), settings.decisions_topic)
    rss, hwm = proc_memory(worker.pid)
    return Sample(
        elapsed_s=time.perf_counter() - started, sent=sent, cards=cards, decided=reading.decided,
        lag=reading.lag, rss_bytes=rss, hwm_bytes=hwm, state_keys=reading.keys,
        state_bytes=reading.bytes, rocksdb=reading, load1=load1(),
    )  # fmt: skip


# --- running ---------------------------------------------------------------------------------


def _chunk(generated: Iterator[Paced], n: int) -> list[Paced]:
    return list(islice(generated, n))


def _paced(count: int, cards: int, event_days: float) -> Iterator[Paced]:
    """``count`` load-generator transactions spread over ``event_days`` of event time."""
    per_second = count / (event_days * 86_400)
    for s in generate(count, cards=cards, seed=_SEED, events_per_second=per_second):
        yield Paced(str(s.record["transaction_id"]), s.key, encode_record(s.record))


async def _drain(
    worker: WorkerProcess, settings: FraudscoreSettings, started: float, sent: int, cards: int
) -> Sample:
    """Sample until every sent transaction is decided (or nothing moved for 120 s)."""
    sample = await _sample(worker, settings, started, sent, cards)
    progressed, decided = time.monotonic(), sample.decided
    while sample.decided < sent:
        if time.monotonic() - progressed > 120:
            raise WorkerError(f"only {sample.decided:,} of {sent:,} decided after the load")
        await asyncio.sleep(1.0)
        sample = await _sample(worker, settings, started, sent, cards)
        if sample.decided > decided:
            progressed, decided = time.monotonic(), sample.decided
    return sample


async def run_soak(
    opts: Options,
    *,
    rate: int,
    seconds: float,
    every_s: float,
    event_days: float,
    on_sample: Callable[[Sample], None],
) -> Soak:
    """One exactly-once worker at ``rate`` transactions/s for ``seconds`` on ``event_days``
    of event time, sampled every ``every_s`` seconds, then drained and verified."""
    await asyncio.to_thread(cached_default_model, opts.base.model_cache_dir)
    settings = opts.fresh("soak", processing_guarantee=EO, worker_http_port=free_port())
    await ensure_topics(settings)
    total, per_chunk = round(rate * seconds), max(1, round(rate * every_s))
    generated = _paced(total, opts.cards, event_days)
    before = load1()
    worker, _, _ = spawn(settings, opts.log("memory-soak"))
    producer = request_producer(settings)
    try:
        if not await worker.wait_for_log("ready at offset"):
            raise WorkerError(f"worker did not get ready:\n{worker.log_tail()}")
        started, sent, behind, sending_s = time.perf_counter(), 0, 0.0, 0.0
        cards: set[bytes] = set()
        samples = [await _sample(worker, settings, started, sent, 0)]
        on_sample(samples[-1])
        chunk = await asyncio.to_thread(_chunk, generated, per_chunk)
        while chunk:
            upcoming = asyncio.create_task(asyncio.to_thread(_chunk, generated, per_chunk))
            took, late = await send_one_by_one(
                producer, settings.input_topic, chunk, rate, lambda r: cards.add(r.key)
            )
            sent, sending_s, behind = sent + len(chunk), sending_s + took, max(behind, late)
            samples.append(await _sample(worker, settings, started, sent, len(cards)))
            on_sample(samples[-1])
            chunk = await upcoming
        samples.append(await _drain(worker, settings, started, sent, len(cards)))
        on_sample(samples[-1])
    finally:
        worker.stop()
    load = Load(before, load1())
    expected = (f"tx_{_SEED}_{i:09d}" for i in range(sent))
    checked = verdict(expected, await committed_ids(settings, settings.decisions_topic, 600))
    return Soak(rate, sent / sending_s if sending_s else 0.0, behind, samples, checked, load)


# --- reporting ---------------------------------------------------------------------------------

COLUMNS = ("min", "sent", "cards", "decided", "lag", "RSS MB", "HWM MB", "state keys ~",
            "state MB", "state B/card", "budget used MB", "memtables MB", "table readers MB",
            "load 1m")  # fmt: skip


def sample_row(s: Sample) -> list[str]:
    per_card = s.bytes_per_card
    return [
        f"{s.elapsed_s / 60:.1f}", f"{s.sent:,}", f"{s.cards:,}", f"{s.decided:,}", f"{s.lag:,}",
        f"{s.rss_bytes / _MB:.1f}", f"{s.hwm_bytes / _MB:.1f}", f"{s.state_keys:,}",
        f"{s.state_bytes / _MB:.1f}", "n/a" if per_card is None else f"{per_card:,.0f}",
        f"{s.rocksdb.budget_used / _MB:.1f}", f"{s.rocksdb.memtables / _MB:.1f}",
        f"{s.rocksdb.table_readers / _MB:.1f}", f"{s.load1:.2f}",
    ]  # fmt: skip


def samples_table(soak: Soak) -> Table:
    table = Table(
        title=f"Memory soak: one exactly-once worker at {soak.rate:,} TPS offered "
        f"({soak.achieved_tps:,.0f} achieved); the last row after the lag drained"
    )
    for name in COLUMNS:
        table.add_column(name, justify="right")
    for s in soak.samples:
        table.add_row(*sample_row(s))
    return table


def _per_card(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def flatness_table(soak: Soak) -> Table:
    f = flatness(soak.samples)
    table = Table(title=f"Flatness (least squares over the last {f.samples_in_fit} samples)")
    for name in ("measure", "value"):
        table.add_column(name, justify="left" if name == "measure" else "right")
    last = soak.samples[-1]
    rows = [
        ("RSS slope, MB / 10 min", f"{f.rss_slope_mb_per_10min:+.2f}"),
        ("state bytes slope, MB / 10 min", f"{f.state_slope_mb_per_10min:+.2f}"),
        ("state keys (RocksDB's estimate) slope, keys / 10 min", f"{f.keys_slope_per_10min:+,.0f}"),
        ("state bytes per active card, first → last sample with state",
         f"{_per_card(f.bytes_per_card_first)} → {_per_card(f.bytes_per_card_last)}"),
        ("RSS last / peak (VmHWM), MB",
         f"{last.rss_bytes / _MB:.1f} / {last.hwm_bytes / _MB:.1f}"),
        ("output (read_committed)", str(soak.verdict)),
        ("producer behind schedule at worst, s", f"{soak.max_behind_s:.2f}"),
        ("load 1m before → after", str(soak.load)),
    ]  # fmt: skip
    for row in rows:
        table.add_row(*row)
    return table
