"""``/v1/audit/...``: analysts' questions to the audit trail (the Iceberg table
``fraud.decisions``), the REST twins of ``fraudscore audit card|stats|sql|reproduce``
(``fraudscore audit txn`` is ``GET /v1/decisions/{transaction_id}``). Role: analyst.

Every question can be asked "as of" one of: ``as_of`` (only rows ingested by then: keeps
working after snapshots are expired), ``tag`` (``day-YYYY-MM-DD``, the table at the end of
that UTC day) or ``snapshot_id`` (Iceberg time travel). The answers are read by
:mod:`app.audit_query` and :mod:`app.reproduction`, blocking, on FastAPI's thread pool.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field, JsonValue

from app.api.audited import AsOf, AsOfQuery, AuditedDecision, OnDay, TransactionId, audited
from app.api.auth import Role, require
from app.api.errors import NotFoundError
from app.api.handlers import PROTECTED_RESPONSES, documented
from app.api.resources import SettingsDep
from app.audit_query import card_page, day_stats, find_transaction, run_sql
from app.reproduction import reproduce
from sinks.iceberg import rows_of

router = APIRouter(
    prefix="/v1/audit",
    tags=["audit"],
    dependencies=[Depends(require(Role.ANALYST))],
    responses={**PROTECTED_RESPONSES, **documented(404, 422, 503)},
)

CardId = Annotated[str, Path(min_length=1, max_length=64)]
MAX_SQL_ROWS = 10_000
MAX_PAGE_ROWS = 1_000


class CardDecisions(BaseModel):
    card_id: str
    decisions: list[AuditedDecision]  # oldest event time first
    next_cursor: str | None  # the next page's cursor; None: this was the last page


class Between(AsOf):
    start: datetime | None = Field(None, description="event time, inclusive")
    end: datetime | None = Field(None, description="event time, exclusive")


class CardQuery(Between):
    limit: int = Field(100, ge=1, le=MAX_PAGE_ROWS, description="decisions per page at most")
    cursor: str | None = Field(
        None, min_length=1, max_length=1000, description="the previous page's next_cursor"
    )


@router.get("/cards/{card_id}/decisions", summary="A card's audited decisions in a time range")
def card_decisions(
    card_id: CardId, settings: SettingsDep, query: Annotated[CardQuery, Query()]
) -> CardDecisions:
    page = card_page(
        settings,
        card_id,
        limit=query.limit,
        cursor=query.cursor,
        start=query.start,
        end=query.end,
        **query.keywords(),
    )
    return CardDecisions(
        card_id=card_id,
        decisions=[audited(row) for row in rows_of(page.rows)],
        next_cursor=page.next_cursor,
    )


class Count(BaseModel):
    group: str  # all, decision, model_version or reason
    value: str
    count: int


class DayStats(BaseModel):
    day: date
    counts: list[Count]  # the biggest count of each group first


@router.get("/days/{day}/stats", summary="A day's decisions counted by outcome, model, reason")
def stats(day: date, settings: SettingsDep, as_of: AsOfQuery) -> DayStats:
    counts = day_stats(settings, day, **as_of.keywords())
    return DayStats(day=day, counts=[Count.model_validate(row) for row in counts.to_pylist()])


class SqlQuery(Between):
    query: str = Field(min_length=1, max_length=10_000, description="over the view decisions")
    limit: int = Field(1_000, ge=1, le=MAX_SQL_ROWS, description="rows returned at most")


class SqlResult(BaseModel):
    columns: list[str]
    rows: list[list[JsonValue]]
    truncated: bool  # the query gave more rows than the limit


@router.post("/sql", summary="A read-only DuckDB query over the audit rows")
def sql(body: SqlQuery, settings: SettingsDep) -> SqlResult:
    result = run_sql(
        settings,
        body.query,
        start=body.start,
        end=body.end,
        timeout_s=settings.api_request_timeout_ms / 1000,  # the 504 has been sent by then
        **body.keywords(),
    )
    shown = result.slice(0, body.limit)
    return SqlResult(
        columns=shown.column_names,
        rows=[[_json(value) for value in row.values()] for row in shown.to_pylist()],
        truncated=result.num_rows > body.limit,
    )


def _json(value: object) -> JsonValue:
    """An Arrow value as JSON: decimals as strings (no digit lost), times in ISO 8601, bytes
    in hex, anything else unusual as its text."""
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value.hex() if isinstance(value, bytes) else str(value)


class Compared(BaseModel):
    field: str  # score, decision or reasons
    recorded: str
    reproduced: str
    identical: bool


class ReproductionResult(BaseModel):
    transaction_id: str
    identical: bool  # same score bits, decision and reason codes
    model_version: str
    model_source: str  # where that model was loaded from
    policy_version: str
    policy_source: str
    fields: list[Compared]


@router.get(
    "/transactions/{transaction_id}/reproduction",
    summary="Recompute a recorded decision with its recorded model and policy",
    responses=documented(409),
)
def reproduction(
    transaction_id: TransactionId, settings: SettingsDep, query: Annotated[OnDay, Query()]
) -> ReproductionResult:
    day = query.day
    if not find_transaction(settings, transaction_id, day=day):
        raise NotFoundError(f"no decision for transaction {transaction_id!r} in the audit trail")
    again = reproduce(settings, transaction_id, day=day)
    return ReproductionResult(
        transaction_id=transaction_id,
        identical=again.identical,
        model_version=again.model_version,
        model_source=again.model_source,
        policy_version=again.policy_version,
        policy_source=again.policy_source,
        fields=[Compared.model_validate(row) for row in again.comparison().to_pylist()],
    )
