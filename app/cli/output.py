"""``--output text|json|csv`` of the audit queries: every result is an Arrow table, written
here and nowhere else.

- ``text``: a table for people (or the command's own view of the rows, e.g. one record per
  transaction), on stdout;
- ``json``: one JSON array of objects, one per row, in the table's columns (structs as
  objects, lists as arrays, decimals as strings so no digit is lost, times in RFC 3339);
- ``csv``: a header and one line per row; struct fields become columns of their own
  (``features.amount``), lists are joined with ``;``.

pyarrow is only imported to write CSV: importing it with the CLI would slow every
``fraudscore worker`` start (``tests/unit/test_cli.py``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import msgspec
import typer
from rich.console import RenderableType
from rich.table import Table

from app.cli.console import stdout

if TYPE_CHECKING:  # pyarrow is imported when a command writes CSV, not with the CLI
    import pyarrow as pa

LIST_SEPARATOR = ";"


class QueryOutput(StrEnum):
    """``--output`` of the audit queries."""

    text = "text"
    json = "json"
    csv = "csv"


def emit(
    rows: pa.Table,
    output: QueryOutput,
    text: Callable[[pa.Table], RenderableType] | None = None,
) -> None:
    """Write ``rows`` to stdout as ``output`` says; ``text`` renders them for people
    (default: :func:`table_of`)."""
    if output is QueryOutput.json:
        typer.echo(json_of(rows))
    elif output is QueryOutput.csv:
        typer.echo(csv_of(rows), nl=False)
    else:
        stdout.print((text or table_of)(rows))


def emit_sections(sections: Mapping[str, pa.Table], output: QueryOutput, csv_section: str) -> None:
    """Write a report of several tables (e.g. counts, then the rows behind them): ``json``
    one object with an array per section, ``csv`` only ``csv_section`` (CSV holds one
    table), ``text`` a titled table per section."""
    if output is QueryOutput.json:
        typer.echo(msgspec.json.encode({k: v.to_pylist() for k, v in sections.items()}).decode())
    elif output is QueryOutput.csv:
        typer.echo(csv_of(sections[csv_section]), nl=False)
    else:
        for title, rows in sections.items():
            stdout.print(table_of(rows, title=title))


def json_of(rows: pa.Table) -> str:
    return msgspec.json.encode(rows.to_pylist()).decode()


def csv_of(rows: pa.Table) -> str:
    from pyarrow import csv  # noqa: PLC0415 - see the module docstring

    buffer = io.BytesIO()
    csv.write_csv(_flat(rows), buffer)
    return buffer.getvalue().decode()


def table_of(rows: pa.Table, title: str | None = None) -> Table:
    """``rows`` as a table for a terminal; the row count below it."""
    table = Table(title=title, caption=f"{rows.num_rows} row(s)")
    for name in rows.column_names:
        table.add_column(name, overflow="fold")
    for row in rows.to_pylist():
        table.add_row(*(cell_text(value) for value in row.values()))
    return table


def cell_text(value: Any) -> str:
    """One value for people: ``-`` for null, lists joined, struct fields as ``name=value``."""
    if value is None:
        return "-"
    if isinstance(value, list):
        return ", ".join(cell_text(v) for v in value) or "-"
    if isinstance(value, dict):
        return " ".join(f"{k}={cell_text(v)}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:.6g}"
    if hasattr(value, "isoformat"):
        return str(value.isoformat())
    return str(value)


def _flat(rows: pa.Table) -> pa.Table:
    """Structs spread into columns (``a.b``), lists joined: what CSV can hold."""
    import pyarrow as pa  # noqa: PLC0415 - see the module docstring
    import pyarrow.compute as pc  # noqa: PLC0415

    while any(pa.types.is_struct(field.type) for field in rows.schema):
        rows = rows.flatten()
    for index, field in enumerate(rows.schema):
        if pa.types.is_list(field.type) or pa.types.is_large_list(field.type):
            texts = rows.column(index).cast(pa.list_(pa.string()))
            joined = pc.binary_join(texts, LIST_SEPARATOR)
            rows = rows.set_column(index, field.name, joined)
    return rows
