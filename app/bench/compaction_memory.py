"""Peak memory of compacting one day of the audit table, against the day's size.

Run: ``.venv/bin/python -m app.bench.compaction_memory [--rows 2000000,4000000]
[--target-mib 128,256]``.

For each ``--rows``, a fresh table gets one day of that many synthetic rows
(:mod:`app.bench._audit_rows`, appended through the sink's own write path in checkpoints of
``--per-commit`` rows). Then, each in a child process of its own on a copy of that table (peak
RSS, ``ru_maxrss``, is per process):

- ``open``: opening the table and planning the day's files (the baseline);
- ``whole day``: reading the day's rows at once and sorting them, what compaction did until
  2026-11-22 (``scan().to_arrow().sort_by``);
- ``compact_day`` at each ``--target-mib``: :meth:`sinks.iceberg.AuditTable.compact_day` with
  ``write.target-file-size-bytes`` set to it.

The whole day should grow with the rows; ``compact_day`` should not.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from importlib.metadata import version
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from app.audit import open_audit_table
from app.bench._audit_rows import RowSpec, synthetic_rows
from app.bench._common import host_info
from app.settings import FraudscoreSettings
from sinks.iceberg import ROW_ORDER, AuditPosition, day_condition

DAY = date(2026, 1, 1)
_DAY_US = 86_400_000_000
console = Console()


def build(root: Path, rows: int, per_commit: int) -> None:
    table = open_audit_table(FraudscoreSettings(var_dir=root))
    schema = table.table.schema().as_arrow()
    rng = np.random.default_rng(1)
    start = int(datetime.combine(DAY, datetime.min.time(), UTC).timestamp() * 1e6)
    commits = rows // per_commit
    step = _DAY_US // commits
    for k in range(commits):
        spec = RowSpec(
            per_commit, start + k * step, start + (k + 1) * step, k * per_commit, k + 1,
            datetime.now(UTC),
        )  # fmt: skip
        position = AuditPosition(k + 1, {"bench.decisions": {0: (k + 1) * per_commit}})
        staged = table.stage_batch(synthetic_rows(schema, spec, 1_000_000, rng), position)
        if table.commit(staged) is None:
            raise SystemExit("a build commit lost a race: is another writer on?")


def measure(root: Path, mode: str, target_bytes: int) -> dict[str, float]:
    """In this process: one mode on the table at ``root``; its numbers."""
    table = open_audit_table(FraudscoreSettings(var_dir=root))
    started = time.perf_counter()
    out: dict[str, float] = {}
    if mode == "whole day":
        rows = table.table.scan(row_filter=day_condition(DAY)).to_arrow()
        out["arrow_bytes_per_row"] = rows.nbytes / rows.num_rows
        rows.sort_by(ROW_ORDER)
    elif mode == "compact_day":
        with table.table.transaction() as transaction:
            transaction.set_properties({"write.target-file-size-bytes": str(target_bytes)})
        table.table.refresh()
        out["files_replaced"] = table.compact_day(DAY)
    else:
        out["files"] = len(list(table.table.scan(row_filter=day_condition(DAY)).plan_files()))
    out["seconds"] = time.perf_counter() - started
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def _child(source: Path, mode: str, target_bytes: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir=source.parent) as copy:
        shutil.copytree(source, copy, dirs_exist_ok=True)
        argv = [sys.executable, "-m", __spec__.name, "--child", mode, "--root", copy]
        argv += ["--target-bytes", str(target_bytes)]
        done = subprocess.run(argv, check=True, capture_output=True, text=True)  # noqa: S603 - this module
    result: dict[str, float] = json.loads(done.stdout.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", default="2000000,4000000", help="rows of the day, each a run")
    parser.add_argument("--per-commit", type=int, default=50_000, help="rows per checkpoint")
    parser.add_argument("--target-mib", default="128,256", help="file sizes for compact_day")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--target-bytes", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(args.root, args.child, args.target_bytes)))
        return
    info = Table.grid(padding=(0, 2))
    libraries = f"pyiceberg {version('pyiceberg')}, pyarrow {version('pyarrow')}"
    for key, value in host_info(libraries):
        info.add_row(key, value)
    console.print(info)
    table = Table(title="Peak RSS of one day's compaction (MB), each in its own process")
    for name in ("rows", "mode", "peak RSS MB", "seconds", "notes"):
        table.add_column(name, justify="left" if name in {"mode", "notes"} else "right")
    with tempfile.TemporaryDirectory() as scratch:
        for rows in (int(n) for n in args.rows.split(",")):
            source = Path(scratch, f"day-{rows}")
            started = time.perf_counter()
            build(source, rows, args.per_commit)
            console.print(f"{rows:,} rows built in {time.perf_counter() - started:.0f} s")
            runs = [("open", 0), ("whole day", 0)]
            runs += [("compact_day", int(mib) << 20) for mib in args.target_mib.split(",")]
            for mode, target in runs:
                out = _child(source, mode, target)
                label = mode if not target else f"{mode}, {target >> 20} MiB files"
                notes = ", ".join(
                    f"{k} {v:,.1f}" for k, v in out.items() if k not in {"seconds", "peak_rss_mb"}
                )
                table.add_row(
                    f"{rows:,}", label, f"{out['peak_rss_mb']:,.0f}", f"{out['seconds']:.1f}",
                    notes,
                )  # fmt: skip
    console.print(table)


if __name__ == "__main__":
    main()
