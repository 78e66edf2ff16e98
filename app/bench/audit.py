"""Audit commit latency against the number of retained snapshots, with and without expiry.

Run: ``.venv/bin/python -m app.bench.audit [--rows 1000] [--commits 500] [--expire-every 0]``

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
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

from app.audit import open_audit_table
from app.bench._common import format_load, machine_info
from app.latency import percentile
from app.settings import FraudscoreSettings
from app.worker import build_pipeline
from features.stream import MemoryCardStore
from models.pipeline import DecisionRecord, SourceRecord
from models.synthetic import encode_record, generate
from sinks.iceberg import AuditTable, CommittedDecision


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


def checkpoint(table: AuditTable, batch: Sequence[CommittedDecision]) -> Sample:
    snapshots = len(table.table.snapshots())
    cpu, started = time.process_time(), time.perf_counter()
    staged = table.stage(batch, datetime.now(UTC))
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
        samples.append(checkpoint(table, batch))
        if args.expire_every and (k + 1) % args.expire_every == 0:
            started = time.perf_counter()
            table.expire_snapshots(datetime.now(UTC), args.keep)
            expiries.append(time.perf_counter() - started)
    return samples, expiries


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
    parser.add_argument("--rows", type=int, default=1000, help="decisions per checkpoint")
    parser.add_argument("--commits", type=int, default=500, help="checkpoints in a row")
    parser.add_argument("--expire-every", type=int, default=0, help="0: never expire")
    parser.add_argument("--keep", type=int, default=100, help="snapshots kept by expiry")
    parser.add_argument("--bucket", type=int, default=50, help="snapshots per report row")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    for key, value in machine_info(broker_version="-"):
        if key not in ("broker", "libraries"):  # no Kafka here
            print(f"{key}: {value}")
    print(f"pyiceberg {version('pyiceberg')}, pyarrow {version('pyarrow')}, SQLite catalog")
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fraudscore-bench-audit-") as root:
        samples, expiries = run(args, Path(root))
    print(f"{vars(args)}; {time.perf_counter() - started:.0f} s in total\n")
    print("\n".join(report(samples, expiries, args.bucket)))
    print(f"\nload average at the end: {format_load(os.getloadavg())}")


if __name__ == "__main__":
    main()
