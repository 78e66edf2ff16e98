"""Point lookups (one value of one column) in an Iceberg table, reading per data file first
that column alone and then every projected column of only the Parquet row groups holding the
value.

Why: pyiceberg (0.12) hands each planned file to a pyarrow scanner that decodes every
projected column of every row group the min/max statistics cannot rule out, then filters.
A random transaction id defeats the statistics, so finding one row among a compacted day of
333,000 rows decoded all 333,000 rows' columns (1.5-2.8 s, docs/BENCHMARKS.md). Here phase 1
decodes the id column of the row groups the statistics leave; phase 2 gives only the row
groups that hold the id to the very steps pyiceberg takes per file (projection by field id,
so files written before a column was added read it as null; the scan's whole filter; its
type conversions), so the result is what ``scan.to_arrow()`` returns, row for row.

Files with delete files (pyiceberg never writes any for the audit table, whose compaction
rewrites whole files, but another engine could) and files that are not Parquet go through
pyiceberg's own reader, as do files without the column (it could come from the partition).
The pyiceberg functions used here are internal ones of ``pyiceberg.io.pyarrow``; the
dependency is pinned below 0.13 and tests compare every case with the plain scan.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.expressions.visitors import bind, translate_column_names
from pyiceberg.io.pyarrow import (
    ArrowScan,
    _get_column_projection_values,
    _to_requested_schema,
    expression_to_pyarrow,
    pyarrow_to_schema,
    schema_to_pyarrow,
)
from pyiceberg.manifest import FileFormat
from pyiceberg.schema import Schema, prune_columns
from pyiceberg.table import DataScan, FileScanTask
from pyiceberg.utils.concurrent import ExecutorFactory

_BUFFER: Final = 8 * 1024 * 1024  # pyiceberg's read buffer, and its pre-buffering


def scan_equal(scan: DataScan, column: str, value: str) -> pa.Table:
    """What ``scan.to_arrow()`` returns, for a scan whose row filter implies that the
    top-level string ``column`` equals ``value`` (the filter is still applied whole)."""
    if scan.limit is not None:
        return scan.to_arrow()
    reader = _PointReader(scan, column, value)
    tasks = list(scan.plan_files())
    read = ExecutorFactory.get_or_create().map(reader.read, tasks)
    # pyiceberg's reader uses the same thread pool: only ever called from this thread
    batches = itertools.chain.from_iterable(
        reader.read_plainly(task) if part is None else part
        for task, part in zip(tasks, read, strict=True)
    )
    tables = [pa.Table.from_batches([batch]) for batch in batches]
    if not tables:
        return schema_to_pyarrow(scan.projection(), include_field_ids=False).empty_table()
    return pa.concat_tables(tables, promote_options="permissive")  # as ArrowScan.to_table


class _PointReader:
    """Reads one planned file of a point lookup, as pyiceberg's ``ArrowScan`` would."""

    def __init__(self, scan: DataScan, column: str, value: str) -> None:
        self._metadata = scan.table_metadata
        self._io = scan.io
        self._arrow_scan = ArrowScan(
            scan.table_metadata, scan.io, scan.projection(), scan.row_filter, scan.case_sensitive
        )
        self._field_id = self._metadata.schema().find_field(column).field_id
        self._value = value

    def read(self, task: FileScanTask) -> list[pa.RecordBatch] | None:
        """The task's rows in phases; None: read it plainly (:meth:`read_plainly`)."""
        if task.delete_files or task.file.file_format != FileFormat.PARQUET:
            return None
        parquet = ds.ParquetFileFormat(pre_buffer=True, buffer_size=_BUFFER)
        with self._io.new_input(task.file.file_path).open() as fin:
            fragment = parquet.make_fragment(fin)
            file_schema = self._file_schema(fragment.physical_schema)
            name = file_schema.find_column_name(self._field_id)
            if name is None or "." in name:  # absent from the file, or nested
                return None
            groups = self._row_groups_holding(fragment, fin, name)
            if not groups:
                return []
            # a row group at a time: one fragment of several yields them out of order
            fragments = [parquet.make_fragment(fin, row_groups=[group]) for group in groups]
            return list(self._project(task, fragments, file_schema))

    def read_plainly(self, task: FileScanTask) -> list[pa.RecordBatch]:
        """The task's rows by pyiceberg's reader: every row group the statistics leave."""
        return list(self._arrow_scan.to_record_batches([task]))

    def _file_schema(self, physical: pa.Schema) -> Schema:
        return pyarrow_to_schema(
            physical,
            self._metadata.name_mapping(),
            downcast_ns_timestamp_to_us=self._file_downcast(),
            format_version=self._metadata.format_version,
        )

    def _row_groups_holding(
        self, fragment: ds.ParquetFileFragment, fin: pa.NativeFile, name: str
    ) -> list[int]:
        """Phase 1: the row groups whose ``name`` column holds the value, reading only that
        column of the row groups its min/max statistics do not rule out."""
        candidates = [rg.id for rg in fragment.subset(pc.field(name) == self._value).row_groups]
        if not candidates:
            return []
        values = pq.ParquetFile(fin, pre_buffer=True, buffer_size=_BUFFER).read_row_groups(
            candidates, columns=[name]
        )
        hits = pc.indices_nonzero(pc.equal(values.column(0), self._value)).to_numpy()
        ends = np.cumsum([fragment.metadata.row_group(i).num_rows for i in candidates])
        return sorted({candidates[i] for i in np.searchsorted(ends, hits, side="right")})

    def _project(
        self,
        task: FileScanTask,
        fragments: Sequence[ds.ParquetFileFragment],
        file_schema: Schema,
    ) -> Iterator[pa.RecordBatch]:
        """Phase 2: pyiceberg's ``_task_to_record_batches`` without deletes, on ``fragments``
        of the task's file."""
        scan, metadata = self._arrow_scan, self._metadata
        projected = scan._projected_schema
        missing = _get_column_projection_values(
            task.file,
            projected,
            metadata.schema(),
            metadata.specs().get(task.file.spec_id),
            file_schema.field_ids,
        )
        arrow_filter = None
        if scan._bound_row_filter is not AlwaysTrue():
            translated = translate_column_names(
                scan._bound_row_filter,
                file_schema,
                case_sensitive=scan._case_sensitive,
                projected_field_values=missing,
            )
            bound = bind(file_schema, translated, case_sensitive=scan._case_sensitive)
            arrow_filter = expression_to_pyarrow(bound, file_schema)
        columns = prune_columns(file_schema, scan._projected_field_ids, select_full_types=False)
        names = [column.name for column in columns.columns]
        for fragment in fragments:
            scanner = ds.Scanner.from_fragment(
                fragment, schema=fragment.physical_schema, filter=arrow_filter, columns=names
            )
            for batch in scanner.to_batches():
                if not batch.num_rows:
                    continue
                yield _to_requested_schema(
                    projected,
                    columns,
                    batch,
                    downcast_ns_timestamp_to_us=self._file_downcast(),
                    projected_missing_fields=missing,
                    allow_timestamp_tz_mismatch=True,
                )

    def _file_downcast(self) -> bool:
        """pyiceberg's choice: ns timestamps become us unless configured, up to format v2."""
        chosen = self._arrow_scan._downcast_ns_timestamp_to_us
        return chosen if chosen is not None else self._metadata.format_version <= 2
