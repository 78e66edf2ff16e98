"""Audit commit latency against the number of retained snapshots, with and without expiry;
over a simulated day with the sink's maintenance; and lookups in a big table.

Run: ``.venv/bin/python -m app.bench.audit [--rows 1000] [--commits 500] [--expire-every 0]``,
``... --mode day [--rows 10000] [--commits 288] [--cadence-s 300]`` or
``... --mode lookups [--table-rows 10000000] [--days 30]``.

**snapshots** (the default):

A fresh audit table (SQLite catalog, local warehouse, the service's table properties) in a
temporary directory gets ``--commits`` checkpoints of ``--rows`` decisions each, one after
the other, exactly as the sink makes them: :meth:`AuditTable.stage` (Arrow batch, sort,
Parquet and manifest files) then :meth:`AuditTable.commit` (the catalog swap). The decisions
are ``--rows`` records of the real pipeline (default model) over generated traffic, reused
for every checkpoint with new decision-topic offsets, so every checkpoint appends new rows.
With ``--expire-every N``, every N checkpoints :meth:`AuditTable.expire_snapshots` keeps the
newest ``--keep`` snapshots, as ``fraudscore audit maintain`` would; its own time is reported
apart. No Kafka: the sink's consumer is not part of what is measured.

Reported per range of retained snapshots (before each commit): wall-clock p50/p99 of the
whole checkpoint and the process CPU time p50 (other processes on the machine do not count
there, so it shows the growth on a noisy machine better), the p50 of the two halves, and the
p50's ratio to the first range.

**day**: ``--commits`` checkpoints of ``--rows`` rows, one every ``--cadence-s`` of simulated
time starting at 12:00 UTC today, each holding the decisions of the cadence before it (so the
event day changes half-way), written through the sink's write path
(:meth:`AuditTable.stage_batch`, ``commit``) from Arrow rows made with numpy
(:mod:`app.bench._audit_rows`; building 10,000 rows is not timed), or with ``--convert`` from
``--rows`` real decision records re-dated into each checkpoint's window, through
:meth:`AuditTable.stage`, so the conversion to Arrow is timed too, as in the sink. After each
one, the sink's
:class:`~app.audit_maintenance.MaintenanceSchedule` (default intervals, on simulated seconds)
says whether maintenance is due, and :func:`~app.audit_maintenance.maintain` runs at the
simulated time, as the sink runs it between checkpoints; its time is reported apart (the
sink's next checkpoint waits for it). Expiry's minimum age is real time, so it is 0 here and
``--keep`` alone bounds the snapshots. Reported per 4 simulated hours and overall.

**lookups**: ``--table-rows`` rows over ``--days`` event days, one sorted append per day (the
layout compaction leaves), then a transaction looked up with and without its date and a
card's history over the whole range, each ``--repeat`` times on a loaded table handle. A
transaction is looked up through :meth:`AuditTable.transaction` (id column first, then the
row groups holding the id) and, taking turns with it, by the plain pyiceberg scan of the same
filter, which must return the same rows; both are reported, with their ratio.
``--row-group-rows`` sets ``write.parquet.row-group-limit`` instead of the service's default
(0: pyiceberg's own, 1,048,576 rows; smaller row groups of the sorted rows let a card's query
skip most of each file by its min/max statistics, and a transaction's read fewer rows).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from functools import partial
from importlib.metadata import version
from pathlib import Path
from typing import Final

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.expressions import And, BooleanExpression, EqualTo, Reference
from pyiceberg.expressions.literals import literal

from app.audit import open_audit_table
from app.audit_maintenance import MaintenanceReport, MaintenanceSchedule, maintain
from app.bench._audit_rows import RowSpec, card_token, synthetic_rows
from app.bench._common import format_load, machine_info
from app.latency import percentile
from app.settings import FraudscoreSettings
from app.worker import build_pipeline
from features.stream import MemoryCardStore
from models.pipeline import DecisionRecord, SourceRecord, format_event_time
from models.synthetic import encode_record, generate
from sinks.iceberg import (
    AuditPosition,
    AuditTable,
    CommittedDecision,
    StagedAppend,
    event_time_between,
)

ROW_GROUP_LIMIT: Final = "write.parquet.row-group-limit"


@dataclass(frozen=True, slots=True)
class Sample:
    snapshots: int  # retained before the commit
    stage_s: float
    commit_s: float
    cpu_s: float

    @property
    def total_s(self) -> float:
        return self.stage_s + self.commit_s


def decisions(settings: FraudscoreSettings, rows: int, seed: int) -> list[DecisionRecord]:
    """``rows`` decisions of the real pipeline over generated traffic (one partition)."""
    records = [
        SourceRecord("bench.tx", 0, offset, item.key, encode_record(item.record))
        for offset, item in enumerate(generate(rows, cards=max(1, rows // 10), seed=seed))
    ]
    return [d for _, d in build_pipeline(settings).run(records, MemoryCardStore()).decisions]


def checkpoint(table: AuditTable, stage: Callable[[], StagedAppend | None]) -> Sample:
    snapshots = len(table.table.snapshots())
    cpu, started = time.process_time(), time.perf_counter()
    staged = stage()
    staged_at = time.perf_counter()
    if staged is None or table.commit(staged) is None:
        raise SystemExit("a checkpoint appended nothing or lost a race: is another writer on?")
    done = time.perf_counter()
    return Sample(snapshots, staged_at - started, done - staged_at, time.process_time() - cpu)


def run(args: argparse.Namespace, root: Path) -> tuple[list[Sample], list[float]]:
    settings = FraudscoreSettings(var_dir=root)
    base = decisions(settings, args.rows, args.seed)
    table = open_audit_table(settings)
    samples: list[Sample] = []
    expiries: list[float] = []
    for k in range(args.commits):
        batch = [
            CommittedDecision(d, "bench.decisions", 0, k * len(base) + i, None)
            for i, d in enumerate(base)
        ]
        samples.append(checkpoint(table, partial(table.stage, batch, datetime.now(UTC))))
        if args.expire_every and (k + 1) % args.expire_every == 0:
            started = time.perf_counter()
            table.expire_snapshots(datetime.now(UTC), args.keep)
            expiries.append(time.perf_counter() - started)
    return samples, expiries


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _append(
    table: AuditTable, schema: pa.Schema, spec: RowSpec, args: argparse.Namespace
) -> Sample:
    """One checkpoint of synthetic rows through the sink's write path; the rows are built
    before the clock starts."""
    batch = synthetic_rows(schema, spec, args.cards, args.rng)
    end = spec.first_offset + spec.count
    position = AuditPosition(spec.checkpoint_id, {"bench.decisions": {0: end}})
    return checkpoint(table, partial(table.stage_batch, batch, position))


@dataclass(frozen=True, slots=True)
class DayRun:
    samples: list[tuple[float, Sample]]  # simulated hour of the commit, its sample
    maintenance: list[tuple[float, float, MaintenanceReport]]  # hour, seconds, report


def _decided(table: AuditTable, base: Sequence[DecisionRecord], spec: RowSpec) -> Sample:
    """One checkpoint of real decision records through the sink's whole path,
    :meth:`AuditTable.stage` (the Arrow conversion included) then ``commit``; the records
    are re-dated into the checkpoint's window and given new offsets before the clock starts."""
    step = (spec.end_us - spec.start_us) // 1000 // len(base)
    batch = [
        CommittedDecision(
            msgspec.structs.replace(
                d, event_time=format_event_time(spec.start_us // 1000 + i * step)
            ),
            "bench.decisions",
            0,
            spec.first_offset + i,
            None,
        )
        for i, d in enumerate(base)
    ]
    return checkpoint(table, partial(table.stage, batch, spec.ingested_at))


def simulated_day(args: argparse.Namespace, root: Path) -> DayRun:
    settings = FraudscoreSettings(
        var_dir=root, audit_maintenance_keep=args.keep, audit_maintenance_min_age_s=0
    )
    table = open_audit_table(settings)
    schema = table.table.schema().as_arrow()
    base = decisions(settings, args.rows, args.seed) if args.convert else []
    start = datetime.combine(datetime.now(UTC).date(), clock(12), UTC)
    cadence = timedelta(seconds=args.cadence_s)
    schedule = MaintenanceSchedule(settings, started=0.0)
    run = DayRun([], [])
    for k in range(args.commits):
        now = start + (k + 1) * cadence
        spec = RowSpec(
            args.rows, _us(now - cadence), _us(now), k * args.rows, k + 1, datetime.now(UTC)
        )
        hour = (k + 1) * args.cadence_s / 3600
        sample = _decided(table, base, spec) if base else _append(table, schema, spec, args)
        run.samples.append((hour, sample))
        plan = schedule.due((k + 1) * args.cadence_s)
        if plan is not None:
            started = time.perf_counter()
            report = maintain(table, now, plan)
            run.maintenance.append((hour, time.perf_counter() - started, report))
    return run


def day_report(run: DayRun, block_h: int = 4) -> list[str]:
    lines = [
        "| simulated hours | commits | p50 ms | p99 ms | p50 CPU ms | snapshots retained (max) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    blocks: dict[int, list[Sample]] = {}
    for hour, sample in run.samples:
        blocks.setdefault(int((hour - 1e-9) // block_h), []).append(sample)
    every = [sample for _, sample in run.samples]
    for key, group in [*sorted(blocks.items()), (-1, every)]:
        label = "all" if key < 0 else f"{key * block_h}-{key * block_h + block_h}"
        lines.append(
            f"| {label} | {len(group)} | {_ms([s.total_s for s in group], 50)} "
            f"| {_ms([s.total_s for s in group], 99)} | {_ms([s.cpu_s for s in group], 50)} "
            f"| {max(s.snapshots for s in group)} |"
        )
    seconds = [s for _, s, _ in run.maintenance]
    lines.append(
        f"\nMaintenance: {len(seconds)} runs, p50 {_ms(seconds, 50)} ms, "
        f"max {_ms(seconds, 100)} ms."
    )
    for hour, took, report in run.maintenance:
        if report.compacted or report.tagged:
            lines.append(
                f"- at simulated hour {hour:.1f}: {took * 1000:,.0f} ms, compacted "
                f"{report.compacted or '-'}, tagged {report.tagged or '-'}, "
                f"expired {len(report.expired)}, orphans removed {len(report.orphans or ())}"
            )
    return lines


def lookups(args: argparse.Namespace, root: Path) -> list[str]:
    properties = dict(FraudscoreSettings(var_dir=root).audit_table_properties)
    if args.row_group_rows is not None:
        properties[ROW_GROUP_LIMIT] = str(args.row_group_rows)
    if args.row_group_rows == 0:
        del properties[ROW_GROUP_LIMIT]
    table = open_audit_table(FraudscoreSettings(var_dir=root, audit_table_properties=properties))
    schema = table.table.schema().as_arrow()
    first = datetime.combine(datetime.now(UTC).date() - timedelta(days=args.days), clock(), UTC)
    per_day = args.table_rows // args.days
    writing = time.perf_counter()
    for d in range(args.days):
        day = first + timedelta(days=d)
        spec = RowSpec(
            per_day, _us(day), _us(day + timedelta(days=1)), d * per_day, d + 1, datetime.now(UTC)
        )
        _append(table, schema, spec, args)
        print(f"day {d + 1}/{args.days} written", flush=True)
    wrote = time.perf_counter() - writing
    middle = first + timedelta(days=args.days // 2)
    row = table.read(event_time_between(middle, middle + timedelta(days=1))).slice(per_day // 2, 1)
    transaction_id, event_time = row["transaction_id"][0].as_py(), row["event_time"][0].as_py()
    card = card_token(int(args.cards // 2))
    end = first + timedelta(days=args.days)
    on_its_day = event_time_between(*_day_of(event_time))
    queries: dict[str, tuple[Callable[[], pa.Table], Callable[[], pa.Table] | None]] = {
        "one transaction, with its date": (
            partial(table.transaction, transaction_id, day=event_time.date()),
            partial(table.read, And(_is(transaction_id), on_its_day)),
        ),
        "one transaction, without its date": (
            partial(table.transaction, transaction_id),
            partial(table.read, _is(transaction_id)),
        ),
        f"a card's {args.days}-day history": (
            partial(table.card, card, end - timedelta(days=args.days), end),
            None,
        ),
    }
    lines = [
        f"{per_day * args.days:,} rows written in "
        f"{wrote:.0f} s ({args.days} appends), "
        f"{len(list(table.table.scan().plan_files()))} data files, "
        f"{_row_groups(table)} Parquet row groups.",
        "",
        f"| query | rows found | p50 ms | max ms (of {args.repeat}) "
        "| plain scan p50 ms | plain scan max ms | plain / p50 |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, (query, plain) in queries.items():
        lines.append(f"| {name} | {_timed(query, plain, args.repeat)} |")
    return lines


def _is(transaction_id: str) -> BooleanExpression:
    return EqualTo(term=Reference("transaction_id"), value=literal(transaction_id))


def _day_of(moment: datetime) -> tuple[datetime, datetime]:
    start = datetime.combine(moment.date(), clock(), UTC)
    return start, start + timedelta(days=1)


def _row_groups(table: AuditTable) -> int:
    files = table.table.scan().plan_files()
    io = table.table.io
    return sum(pq.ParquetFile(io.new_input(t.file.file_path).open()).num_row_groups for t in files)


def _timed(query: Callable[[], pa.Table], plain: Callable[[], pa.Table] | None, repeat: int) -> str:
    """Runs of ``query`` and, taking turns with it, of the plain pyiceberg scan it replaces,
    which must return the same rows; their cells of the report row."""
    took: list[float] = []
    took_plain: list[float] = []
    found = 0
    for _ in range(repeat):
        started = time.perf_counter()
        rows = query()
        took.append(time.perf_counter() - started)
        found = rows.num_rows
        if plain is not None:
            started = time.perf_counter()
            expected = plain()
            took_plain.append(time.perf_counter() - started)
            if not rows.equals(expected):
                raise SystemExit(f"the lookup and the plain scan differ:\n{rows}\n{expected}")
    cells = [str(found), _ms(took, 50), _ms(took, 100)]
    if took_plain:
        ratio = statistics.median(took_plain) / statistics.median(took)
        cells += [_ms(took_plain, 50), _ms(took_plain, 100), f"{ratio:.1f}x"]
    else:
        cells += ["-", "-", "-"]
    return " | ".join(cells)


def _ms(values: Sequence[float], q: float) -> str:
    return f"{percentile(sorted(values), q) * 1000:,.0f}"


def report(samples: Sequence[Sample], expiries: Sequence[float], bucket: int) -> list[str]:
    lines = [
        "| snapshots retained | commits | p50 ms | p99 ms | p50 CPU ms | p50 stage / "
        "catalog swap ms | p50 vs first | p50 CPU vs first |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    groups: dict[int, list[Sample]] = {}
    for sample in samples:
        groups.setdefault(sample.snapshots // bucket, []).append(sample)
    first: tuple[float, float] | None = None
    for key in sorted(groups):
        group = groups[key]
        p50 = statistics.median(s.total_s for s in group)
        cpu = statistics.median(s.cpu_s for s in group)
        first = first or (p50, cpu)
        lines.append(
            f"| {key * bucket}-{key * bucket + bucket - 1} | {len(group)} "
            f"| {p50 * 1000:,.0f} | {_ms([s.total_s for s in group], 99)} | {cpu * 1000:,.0f} "
            f"| {_ms([s.stage_s for s in group], 50)} / {_ms([s.commit_s for s in group], 50)} "
            f"| {p50 / first[0]:.2f}x | {cpu / first[1]:.2f}x |"
        )
    if expiries:
        lines.append(
            f"\nExpiry: {len(expiries)} runs, p50 {_ms(expiries, 50)} ms, "
            f"max {_ms(expiries, 100)} ms."
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--mode", choices=("snapshots", "day", "lookups"), default="snapshots")
    parser.add_argument("--rows", type=int, default=1000, help="decisions per checkpoint")
    parser.add_argument("--commits", type=int, default=500, help="checkpoints in a row")
    parser.add_argument("--expire-every", type=int, default=0, help="0: never expire")
    parser.add_argument("--keep", type=int, default=100, help="snapshots kept by expiry")
    parser.add_argument("--bucket", type=int, default=50, help="snapshots per report row")
    parser.add_argument("--cadence-s", type=int, default=300, help="day: simulated s per commit")
    parser.add_argument(
        "--convert",
        action="store_true",
        help="day: write real decision records through AuditTable.stage (Arrow conversion "
        "timed too) instead of ready-made Arrow rows",
    )
    parser.add_argument("--cards", type=int, default=200_000, help="day, lookups: card tokens")
    parser.add_argument("--table-rows", type=int, default=10_000_000, help="lookups: rows")
    parser.add_argument("--days", type=int, default=30, help="lookups: event days")
    parser.add_argument("--repeat", type=int, default=5, help="lookups: runs per query")
    parser.add_argument(
        "--row-group-rows",
        type=int,
        help="lookups: rows per Parquet row group (default: the service's; 0: pyiceberg's)",
    )
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    args.rng = np.random.default_rng(args.seed)
    for key, value in machine_info(broker_version="-"):
        if key not in ("broker", "libraries"):  # no Kafka here
            print(f"{key}: {value}")
    print(f"pyiceberg {version('pyiceberg')}, pyarrow {version('pyarrow')}, SQLite catalog")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fraudscore-bench-audit-") as root:
        if args.mode == "day":
            lines = day_report(simulated_day(args, Path(root)))
        elif args.mode == "lookups":
            lines = lookups(args, Path(root))
        else:
            lines = report(*run(args, Path(root)), args.bucket)
    shown = {k: v for k, v in vars(args).items() if k != "rng"}
    print(f"{shown}; {time.perf_counter() - started:.0f} s in total\n")
    print("\n".join(lines))
    print(f"\nload average at the end: {format_load(os.getloadavg())}")


if __name__ == "__main__":
    main()
