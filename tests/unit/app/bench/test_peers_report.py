"""``fraudscore bench``'s tables: medians, flags on outputs that are not exact, targets."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from app.bench._common import Load
from app.bench.exactly_once import ALO, EO, Latency
from app.bench.peers import Measured, Result, chart, contenders, report
from app.bench.verify import Verdict, verdict

IDS = [f"tx_{i}" for i in range(10)]
EXACT = verdict(IDS, IDS)
DUPLICATED = verdict(IDS, [*IDS, "tx_1"])
LOAD = Load(1.0, 2.0)


def _measured(rate: float, outcome: Verdict = EXACT) -> Measured:
    return Measured(10, rate, 80.0, 20.0, outcome, LOAD, "decisions")


def _latency(rate: int, p_ms: float) -> Latency:
    return Latency(
        guarantee=EO, offered_tps=rate, achieved_tps=rate, sent=100, decided=100, duplicates=0,
        latencies_ms=[p_ms] * 100, in_worker_ms=[p_ms / 2] * 100, max_behind_ms=0.0,
        retries=0, worker_cpu_share=0.5, worker_queued_share=0.1, load=LOAD,
    )  # fmt: skip


def _results() -> list[Result]:
    every = contenders(Path("/nonexistent/python"))
    ceiling = Result(every["ceiling-confluent"], [_measured(30_000)])
    alo = Result(every["fraudscore-alo"], [_measured(14_000), _measured(16_000)])
    eo = Result(
        every["fraudscore-eo"],
        [_measured(11_000), _measured(13_000), _measured(12_000)],
        [_latency(1000, 30.0), _latency(5000, 90.0)],
    )
    quix = Result(every["quix-eo"], [_measured(10_000)], [_latency(1000, 40.0)])
    faust = Result(every["faust-eo"], [_measured(100, DUPLICATED)])
    return [ceiling, alo, eo, quix, faust]


def _render(results: list[Result]) -> str:
    console = Console(record=True, width=400)
    for table in report(results, (1000, 5000), workers=2):
        console.print(table)
    return console.export_text()


def test_results_table_reports_medians_and_flags_outputs_not_exact() -> None:
    results = _results()
    assert results[2].rate == 12_000
    assert results[1].rate == 15_000
    assert results[0].contender.guarantee == EO
    assert results[1].contender.guarantee == ALO
    text = _render(results)
    faust_line = next(line for line in text.splitlines() if "faust-streaming" in line)
    assert "NOT EXACT: duplicated: 1 dup ids (+1 copies)" in faust_line
    eo_line = next(line for line in text.splitlines() if "fraudscore" in line and EO in line)
    assert "12,000" in eo_line
    assert "complete, unique (10)" in eo_line
    assert "90.0 / 90.0 / 90.0" in eo_line  # p50 / p99 / p99.9 at 5,000 TPS
    assert "n/a" in faust_line  # no latency run measured


def test_targets_compare_fraudscore_eo_with_quix_the_ceiling_and_the_p99() -> None:
    lines = _render(_results()).splitlines()

    def row(start: str) -> str:
        return next(line for line in lines if start in line)

    assert "1.20x" in row("1.0x Quix Streams")
    assert "yes" in row("1.0x Quix Streams")
    assert "0.40x" in row("60 % of the confluent")
    assert "NO" in row("60 % of the confluent")
    assert "12,000 events/s" in row("≥ 15,000 events/s end-to-end (2 worker processes)")
    assert "NO" in row("≥ 15,000 events/s end-to-end")
    assert "90.0 ms" in row("p99 at 5,000 TPS")
    assert "NO" in row("p99 at 5,000 TPS")


def test_chart_is_written(tmp_path: Path) -> None:
    png = tmp_path / "out" / "bench.png"
    chart(_results(), (1000, 5000), png, "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
