"""Analysts' questions to the audit table, as the settings configure it: one transaction, a
card's history, a day's counts, and any SQL (DuckDB over Arrow). For ``fraudscore audit ...``
and the REST API alike.

Every function is blocking I/O (from async code, call it in a thread) and takes the same
"as of" keywords, at most one of them (:class:`sinks.iceberg.AsOf` says what each means):

- ``as_of``: only the rows ingested at or before that moment; keeps working after snapshots
  are expired and days compacted;
- ``tag``: the snapshot a tag names, e.g. ``day-2026-11-21``, the table at the end of that
  UTC day (``fraudscore audit maintain`` makes them; they are never expired);
- ``snapshot_id``: Iceberg time travel to that snapshot (gone once it is expired).

Results are Arrow tables in the table's columns (``features`` a struct, ``reasons`` a list),
or audit rows (:class:`sinks.iceberg.AuditRow`, the decision record as the worker wrote it).
Errors are :class:`sinks.errors.AuditError` with a message that says what to do;
:class:`sinks.errors.AuditQueryError` when the question itself cannot be answered as asked.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from app.audit import load_audit_table
from app.settings import FraudscoreSettings
from sinks.errors import AuditQueryError
from sinks.iceberg import AsOf, AuditRow, event_time_between

SQL_VIEW: Final = "decisions"  # what ``run_sql`` queries call the audit rows
# no files, network, ATTACH, COPY or extensions, and no way for the query to switch them back
_LOCKED_DOWN: Final[dict[str, str | bool | int | float | list[str]]] = {
    "enable_external_access": False
}
_T = TypeVar("_T")


def _as_of(snapshot_id: int | None, tag: str | None, as_of: datetime | None) -> AsOf:
    return AsOf(snapshot_id=snapshot_id, tag=tag, ingested_by=as_of)


def transaction_rows(
    settings: FraudscoreSettings,
    transaction_id: str,
    *,
    day: date | None = None,
    as_of: datetime | None = None,
    tag: str | None = None,
    snapshot_id: int | None = None,
) -> pa.Table:
    """The audit rows of one transaction (one, unless something is wrong; none if it is not
    there). ``day``: its event date (UTC), so that only that day's files are read."""
    table = load_audit_table(settings)
    return table.transaction(transaction_id, _as_of(snapshot_id, tag, as_of), day)


def find_transaction(
    settings: FraudscoreSettings,
    transaction_id: str,
    *,
    day: date | None = None,
    as_of: datetime | None = None,
    tag: str | None = None,
    snapshot_id: int | None = None,
) -> list[AuditRow]:
    """:func:`transaction_rows` as audit rows: the decision records as the worker wrote them,
    with where the sink read them and when it ingested them."""
    table = load_audit_table(settings)
    return table.find(transaction_id, _as_of(snapshot_id, tag, as_of), day)


def card_history(
    settings: FraudscoreSettings,
    card_id: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
    tag: str | None = None,
    snapshot_id: int | None = None,
) -> pa.Table:
    """A card's decisions (``card_id`` is the token) with event times in [``start``,
    ``end``), oldest first."""
    table = load_audit_table(settings)
    return table.card(card_id, start, end, _as_of(snapshot_id, tag, as_of))


@dataclass(frozen=True, slots=True)
class Page:
    """Some of a query's rows, and the cursor of the rest (None: no more)."""

    rows: pa.Table
    next_cursor: str | None


def card_page(
    settings: FraudscoreSettings,
    card_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
    tag: str | None = None,
    snapshot_id: int | None = None,
) -> Page:
    """:func:`card_history` a page at a time: at most ``limit`` rows in (event time,
    transaction id) order, from where ``cursor`` (the previous page's ``next_cursor``, for the
    very same question) left off.

    The pages of one question all read one state of the table: the snapshot the first page
    read (or the tag's or ``snapshot_id``'s), or with ``as_of`` the rows ingested by then. So
    rows appended meanwhile never shift a page; a pinned snapshot expired meanwhile (after
    ``FRAUDSCORE_AUDIT_MAINTENANCE_MIN_AGE_S``) makes the next page a not-found error."""
    question = _fingerprint(card_id, start, end, as_of, tag, snapshot_id)
    table = load_audit_table(settings)
    if cursor is None:
        after = None
        if as_of is None and tag is None and snapshot_id is None:
            head = table.table.current_snapshot()
            snapshot_id = None if head is None else head.snapshot_id
    else:
        snapshot_id, after = _resume(cursor, question, snapshot_id)
    if after is not None:  # re-read from the last row's time, then skip to after it
        start = after[0] if start is None else max(start, after[0])
    rows = table.card(card_id, start, end, _as_of(snapshot_id, tag, as_of))
    if after is not None:
        rows = rows.filter(_after(rows, after))
    page = rows.slice(0, limit)
    if rows.num_rows <= limit:
        return Page(page, None)
    last = page.slice(limit - 1, 1).to_pylist()[0]
    position = {"q": question, "s": snapshot_id, "t": last["event_time"].isoformat()}
    position["i"] = last["transaction_id"]
    return Page(page, _encode(position))


def _after(rows: pa.Table, after: tuple[datetime, str]) -> pa.Array:
    """Which ``rows`` come after (event time, transaction id) ``after``."""
    moment = pa.scalar(after[0], rows.schema.field("event_time").type)
    later = pc.greater(rows["event_time"], moment)
    same = pc.and_(
        pc.equal(rows["event_time"], moment), pc.greater(rows["transaction_id"], after[1])
    )
    return pc.or_(later, same)


def _fingerprint(*question: object) -> str:
    text = json.dumps([str(part) for part in question])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _encode(position: dict[str, object]) -> str:
    text = json.dumps(position, separators=(",", ":"))
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _resume(
    cursor: str, question: str, snapshot_id: int | None
) -> tuple[int | None, tuple[datetime, str]]:
    """The pinned snapshot and the last row a cursor names; refused if it is not one of this
    question's cursors."""
    try:
        position = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        asked, pinned = position["q"], position["s"]
        after = (datetime.fromisoformat(position["t"]), str(position["i"]))
    except (binascii.Error, ValueError, KeyError, TypeError) as exc:
        raise AuditQueryError(
            "the cursor is not one this API gave: pass next_cursor as it came"
        ) from exc
    if asked != question or (snapshot_id is not None and pinned != snapshot_id):
        raise AuditQueryError(
            "the cursor belongs to another question: page with the same card, range and "
            "as-of parameters as the first page, or start again without a cursor"
        )
    return pinned, after


def day_stats(
    settings: FraudscoreSettings,
    day: date,
    *,
    as_of: datetime | None = None,
    tag: str | None = None,
    snapshot_id: int | None = None,
) -> pa.Table:
    """Counts of one event day's decisions (UTC) as columns ``group`` (``all``,
    ``decision``, ``model_version``, ``reason``), ``value`` and ``count``, the biggest count
    of each group first."""
    return load_audit_table(settings).day_stats(day, _as_of(snapshot_id, tag, as_of))


def run_sql(
    settings: FraudscoreSettings,
    query: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    as_of: datetime | None = None,
    tag: str | None = None,
    snapshot_id: int | None = None,
    timeout_s: float | None = None,
) -> pa.Table:
    """The result of a DuckDB query over the audit rows, which it reads as the view
    ``decisions`` (ADR 0007). The rows are read into memory first: ``start`` and ``end``
    (event time, end exclusive) limit them to a range, and read only its days' files.

    The query runs in an in-memory DuckDB without access to files, the network or extensions,
    so it can read the rows and nothing else. A query still running ``timeout_s`` after the
    call is interrupted (an error)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    rows = load_audit_table(settings).read(
        event_time_between(start, end), _as_of(snapshot_id, tag, as_of)
    )
    return sql_over(rows, query, None if deadline is None else deadline - time.monotonic())


def sql_over(rows: pa.Table, query: str, timeout_s: float | None = None) -> pa.Table:
    """``query`` run by a locked-down in-memory DuckDB that sees ``rows`` as ``decisions``,
    interrupted after ``timeout_s``."""
    with (
        duckdb.connect(":memory:", config=_LOCKED_DOWN) as connection,
        _interrupted(connection, timeout_s),
    ):
        connection.register(SQL_VIEW, rows)
        connection.execute("SET lock_configuration = true")
        result = _duckdb_errors(query, lambda: connection.sql(query))
        if result is None:
            raise AuditQueryError(
                f"{query!r} returns no rows to show: give a query that does (SELECT, WITH, "
                "DESCRIBE ...); the audit table itself cannot be changed through SQL"
            )
        return _duckdb_errors(query, result.to_arrow_table)


@contextlib.contextmanager
def _interrupted(connection: duckdb.DuckDBPyConnection, timeout_s: float | None) -> Iterator[None]:
    """Interrupt what ``connection`` runs once ``timeout_s`` have passed (from another thread:
    DuckDB's own way to stop a query)."""
    if timeout_s is None:
        yield
        return
    timer = threading.Timer(max(timeout_s, 0.0), connection.interrupt)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _duckdb_errors(query: str, run: Callable[[], _T]) -> _T:
    try:
        return run()
    except duckdb.Error as exc:
        raise AuditQueryError(
            f"DuckDB refused {query!r}: {exc}. The audit rows are the view {SQL_VIEW!r}; "
            "files, the network and extensions are off limits"
        ) from exc
