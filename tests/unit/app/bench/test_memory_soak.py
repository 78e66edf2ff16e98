"""The memory soak's arithmetic and readings: slopes, bytes per card, /proc and /metrics."""

from __future__ import annotations

import os

import pytest
from prometheus_client import generate_latest
from rich.console import Console

from app.bench._common import Load
from app.bench.memory_soak import (
    Reading,
    Sample,
    Soak,
    flatness,
    flatness_table,
    proc_memory,
    samples_table,
    slope_per_10min,
    worker_metrics,
)
from app.bench.verify import verdict
from app.settings import FraudscoreSettings
from app.worker_metrics import WorkerMetrics
from sinks.rocksdb import StoreMemory
from sinks.rocksdb_memory import StateMemory

MB = 1024 * 1024


def _sample(minute: float, rss_mb: float, keys: int, state_mb: float) -> Sample:
    return Sample(
        elapsed_s=minute * 60, sent=int(minute * 90_000), cards=keys, decided=int(minute * 90_000),
        lag=0,
        rss_bytes=int(rss_mb * MB), hwm_bytes=int(rss_mb * MB) + MB, state_keys=keys,
        state_bytes=int(state_mb * MB), rocksdb=Reading(budget_used=3 * MB, memtables=2 * MB),
        load1=3.0,
    )  # fmt: skip


def test_slope_is_in_units_per_ten_minutes() -> None:
    assert slope_per_10min([(0.0, 100.0), (300.0, 105.0), (600.0, 110.0)]) == pytest.approx(10.0)
    assert slope_per_10min([(0.0, 7.0), (600.0, 7.0)]) == pytest.approx(0.0)
    assert slope_per_10min([(60.0, 7.0)]) == 0.0  # one point: no slope


def test_flatness_fits_the_second_half_and_compares_bytes_per_card() -> None:
    # state grows for the first two samples, then RSS and state are flat but for 1 MB noise
    samples = [
        _sample(0, 130, 0, 0),
        _sample(5, 180, 50_000, 25),
        _sample(10, 220, 100_000, 50),
        _sample(15, 221, 100_000, 50),
        _sample(20, 220, 100_000, 50),
        _sample(25, 221, 100_000, 50),
    ]
    f = flatness(samples)
    assert f.samples_in_fit == 3
    assert f.rss_slope_mb_per_10min == pytest.approx(0.0)
    assert f.state_slope_mb_per_10min == pytest.approx(0.0)
    assert f.keys_slope_per_10min == pytest.approx(0.0)
    assert f.bytes_per_card_first == pytest.approx(25 * MB / 50_000)
    assert f.bytes_per_card_last == pytest.approx(50 * MB / 100_000)


def test_flatness_reports_a_leak_as_a_slope() -> None:
    samples = [_sample(m, 200 + 2 * m, 100_000, 50) for m in range(0, 31, 5)]
    assert flatness(samples).rss_slope_mb_per_10min == pytest.approx(20.0)


def test_tables_show_every_sample_and_the_verdict() -> None:
    ids = ["tx_1", "tx_2"]
    samples = [_sample(0, 130, 0, 0), _sample(1, 140, 10, 1)]
    soak = Soak(1500, 1499.0, 0.1, samples, verdict(ids, ids[:1]), Load(1.0, 2.0))
    console = Console(width=250, record=True)
    console.print(samples_table(soak), flatness_table(soak))
    text = console.export_text()
    assert "n/a" in text  # bytes per card before any state
    assert "104,858" in text  # 1 MB / 10 keys
    assert "incomplete: 1 missing" in text


def test_proc_memory_reads_this_process() -> None:
    rss, hwm = proc_memory(os.getpid())
    assert 0 < rss <= hwm


def test_worker_metrics_sums_partitions_of_the_real_exposition() -> None:
    settings = FraudscoreSettings(decisions_topic="soak.decisions", input_topic="soak.tx")
    metrics = WorkerMetrics(settings)
    metrics.partition_observed(0, 5, 1_000, 64_000)
    metrics.partition_observed(1, 7, 2_000, 128_000)
    metrics.records_out.labels("soak.decisions").inc(3_000)
    metrics.records_out.labels(settings.changelog_topic).inc(9_999)  # not decisions
    metrics.state_memory_observed(StateMemory(16), StoreMemory(memtables=5, table_readers=7))
    text = generate_latest(metrics.registry).decode()
    assert worker_metrics(text, "soak.decisions") == Reading(3_000, 192_000, 12, 3_000, 0, 5, 7)
