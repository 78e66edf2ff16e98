"""``fraudscore bench``: fraudscore, Quix Streams, faust-streaming and the transactional
pass-through ceiling side by side on one broker (:mod:`app.bench.peers`)."""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from app.cli.console import console
from app.settings import get_settings

if TYPE_CHECKING:  # the benchmark's modules load only when it runs (not at every CLI start)
    from app.bench.exactly_once import Options
    from app.bench.memory_soak import Sample
    from app.bench.peers import Result

_ALL = "ceiling-confluent,ceiling-aiokafka,fraudscore-alo,fraudscore-eo,quix-eo,faust-eo"


def bench(
    *,
    quick: Annotated[
        bool,
        typer.Option(
            help="Smoke run: 10,000 events (faust 1,000), one round, 5 s per offered rate "
            "(~6 min on the shared 2-core machine)"
        ),
    ] = False,
    events: Annotated[
        int | None, typer.Option(min=100, help="Transactions pre-produced (100,000; quick 10,000)")
    ] = None,
    cards: Annotated[int, typer.Option(min=1, help="Cards of the generated traffic")] = 50_000,
    rounds: Annotated[
        int, typer.Option(min=1, help="Throughput rounds, each running every contender once")
    ] = 1,
    rates: Annotated[
        str, typer.Option(help="Offered loads of the latency runs, transactions/s, comma-separated")
    ] = "1000,5000",
    duration: Annotated[
        float | None, typer.Option(min=1, help="Seconds per offered load (30; quick 5)")
    ] = None,
    faust_events: Annotated[
        int | None,
        typer.Option(
            min=100,
            help="Transactions for faust-streaming, on its own input from the same generator "
            "(it decides ~100/s here; 5,000; quick 1,000)",
        ),
    ] = None,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            help="fraudscore worker processes in one consumer group, in its throughput and "
            "latency runs (the peers run one process each: compare them at 1; the scale-out "
            "target is read at as many as the cores allow)",
        ),
    ] = 1,
    only: Annotated[
        str, typer.Option(help=f"Contenders to run, comma-separated, in this order ({_ALL})")
    ] = _ALL,
    broker_pid: Annotated[
        int | None,
        typer.Option(
            help="The broker's pid on this machine, to report its CPU separately (contenders "
            "only: the memory soak samples the worker alone)"
        ),
    ] = None,
    quix_python: Annotated[
        Path | None,
        typer.Option(
            help="Python of the Quix Streams virtualenv (default: .venv-quix/bin/python of "
            "this checkout, made by .ci/install-bench)"
        ),
    ] = None,
    chart_path: Annotated[
        Path | None,
        typer.Option("--chart", help="Where to write the PNG chart (default: in the run dir)"),
    ] = None,
    show_markdown: Annotated[
        bool,
        typer.Option("--markdown", help="Also print the tables as markdown, for BENCHMARKS.md"),
    ] = False,
    keep: Annotated[bool, typer.Option(help="Keep the contenders' state dirs")] = False,
    memory_soak: Annotated[
        float | None,
        typer.Option(
            min=1,
            help="Instead of the contenders: the memory soak (issue #8), one exactly-once "
            "worker at --rate for this many minutes on --cards cards, sampling its RSS/VmHWM, "
            "state keys and bytes, decided and lag every --sample-every s, then verifying its "
            "output and reporting the slope of RSS over the last half and bytes per card",
        ),
    ] = None,
    rate: Annotated[
        int, typer.Option(min=1, help="Offered transactions/s of the memory soak")
    ] = 1_500,
    sample_every: Annotated[
        float, typer.Option(min=1, help="Seconds between the memory soak's samples")
    ] = 30.0,
    event_days: Annotated[
        float,
        typer.Option(
            min=0.01,
            help="Days of event time the memory soak's whole input spans (the state levels "
            "off once they exceed its 30 days of buckets)",
        ),
    ] = 90.0,
) -> None:
    """Benchmark fraudscore against Quix Streams, faust-streaming and the transactional
    pass-through ceiling: the same input, the same broker, one after another.

    For each contender: events/s at saturation, CPU seconds per 1,000 events (its processes;
    the broker's separately with --broker-pid), and latency produce → decision visible to a
    read_committed consumer (p50/p99/p99.9) at each offered rate. Every output is read back
    with read_committed and checked for one record per transaction; a contender whose output
    is not exact is flagged, never hidden. Needs the broker (`fraudscore kafka up`) and, for
    Quix Streams, its own virtualenv (`bash .ci/install-bench`).
    """
    from app.bench.exactly_once import Options  # noqa: PLC0415 - see TYPE_CHECKING above
    from app.bench.peers import DEFAULT_QUIX_PYTHON, contenders, header, run_bench  # noqa: PLC0415

    quix_python = quix_python or DEFAULT_QUIX_PYTHON
    table = contenders(quix_python)
    chosen = [name.strip() for name in only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in table]
    if unknown:
        raise typer.BadParameter(f"unknown contender(s) {unknown}; choose from {_ALL}")
    if memory_soak is None and "quix-eo" in chosen and not quix_python.exists():
        raise typer.BadParameter(f"{quix_python} not found: run `bash .ci/install-bench` first")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # retried errors; we verify
    settings = get_settings()
    root = Path(settings.var_dir, "bench", f"peers-{os.getpid()}").resolve()
    opts = Options(
        events=events or (10_000 if quick else 100_000),
        cards=cards,
        partitions=settings.partitions,
        rounds=rounds,
        rates=tuple(int(rate) for rate in rates.split(",")),
        duration_s=duration or (5.0 if quick else 30.0),
        alo_latency=True,
        throughput_workers=workers,
        latency_workers=workers,
        recovery_cards=0,
        fetch_wait_ms=100,
        broker_pid=broker_pid,
        root=root,
        base=settings,
    )
    command = shlex.join(["fraudscore", "bench", *sys.argv[2:]])
    console.print(header(opts, quix_python, command))
    if memory_soak is not None:
        _soak(
            opts, rate=rate, seconds=memory_soak * 60, every_s=sample_every,
            event_days=event_days, show_markdown=show_markdown, keep=keep,
        )  # fmt: skip
        return
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    try:
        with Progress(*columns, console=console) as progress:
            chosen_contenders = [table[name] for name in chosen]
            capped = faust_events or (1_000 if quick else 5_000)
            results = asyncio.run(run_bench(opts, chosen_contenders, progress, capped))
    finally:
        if not keep:
            for path in root.glob("*/state"):
                shutil.rmtree(path, ignore_errors=True)
    _report(results, opts, chart_path or root / "bench.png", show_markdown)


def _soak(
    opts: Options,
    *,
    rate: int,
    seconds: float,
    every_s: float,
    event_days: float,
    show_markdown: bool,
    keep: bool,
) -> None:
    from app.bench.exactly_once import markdown  # noqa: PLC0415
    from app.bench.memory_soak import (  # noqa: PLC0415
        COLUMNS,
        flatness_table,
        run_soak,
        sample_row,
        samples_table,
    )

    def on_sample(sample: Sample) -> None:
        console.print("  ".join(sample_row(sample)))

    console.print(
        f"memory soak: {rate:,} TPS for {seconds / 60:g} min, {opts.cards:,} cards, "
        f"{event_days:g} days of event time; {', '.join(COLUMNS)}"
    )
    try:
        soak = asyncio.run(
            run_soak(
                opts,
                rate=rate,
                seconds=seconds,
                every_s=every_s,
                event_days=event_days,
                on_sample=on_sample,
            )
        )
    finally:
        if not keep:
            for path in opts.root.glob("*/state"):
                shutil.rmtree(path, ignore_errors=True)
    stdout = Console(width=None if sys.stdout.isatty() else 220)
    tables = [samples_table(soak), flatness_table(soak)]
    for table in tables:
        stdout.print(table)
    if show_markdown:
        stdout.print(
            "\n\n".join(markdown(t) for t in tables), markup=False, soft_wrap=True, highlight=False
        )


def _report(results: list[Result], opts: Options, png: Path, show_markdown: bool) -> None:
    from app.bench.peers import as_markdown, chart, report  # noqa: PLC0415

    tables = report(results, opts.rates, opts.throughput_workers)
    stdout = Console(width=None if sys.stdout.isatty() else 220)  # a wide table in a file too
    for table in tables:
        stdout.print(table)
    chart(results, opts.rates, png, f"fraudscore bench, {opts.events:,} events")
    stdout.print(f"chart: {png}")
    if show_markdown:
        stdout.print(as_markdown(tables), markup=False, soft_wrap=True, highlight=False)
