"""What the audit endpoints (``/v1/decisions``, ``/v1/audit``) say about an audited
decision, and the "as of" parameters they share."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Self

import msgspec
from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from sinks.iceberg import AuditRow

TransactionId = Annotated[str, Path(min_length=1, max_length=64)]
_TAG_PATTERN = r"^day-\d{4}-\d{2}-\d{2}$"
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


class Position(BaseModel):
    topic: str
    partition: int
    offset: int


class Decision(BaseModel):
    """The decision record as the worker published it (README, Records)."""

    transaction_id: str
    card_id: str
    amount: str
    currency: str
    merchant_id: str
    event_time: str
    score: float
    decision: str
    reasons: list[str]
    model_version: str
    policy_version: str
    feature_schema_version: int
    features: dict[str, float]
    merchant_risk_version: str | None
    late: bool
    source: Position
    shadow_score: float | None = None
    shadow_model_version: str | None = None


class AuditedDecision(BaseModel):
    decision: Decision
    decided_at: datetime | None  # the worker's processing time, if recorded
    worker_checkpoint_id: str | None  # the worker's checkpoint (Kafka transaction), if recorded
    ingested_at: datetime  # when the audit sink appended it
    checkpoint_id: int  # the audit checkpoint (Iceberg commit) that appended it
    committed: Position  # where on the decisions topic it was committed


class QueryParameters(BaseModel):
    """An endpoint's query parameters, all in one model: unknown ones are refused (a misspelt
    parameter is an error, not silently ignored)."""

    model_config = ConfigDict(extra="forbid")


class OnDay(QueryParameters):
    day: date | None = Field(None, description="its event date (UTC): reads that day only")


class AsOf(QueryParameters):
    """At most one of them; none: the table as it is now."""

    as_of: datetime | None = Field(None, description="only rows ingested at or before this")
    tag: str | None = Field(None, pattern=_TAG_PATTERN, description="e.g. day-2026-11-21")
    snapshot_id: int | None = Field(None, ge=0, description="Iceberg time travel")

    @field_validator("as_of", mode="before")
    @classmethod
    def _a_time_not_a_number(cls, value: object) -> object:
        """pydantic would read a number (or a numeric string) as Unix time: the documented
        type is an RFC 3339 string, so a number is refused."""
        if isinstance(value, int | float) or (
            isinstance(value, str) and _NUMBER.fullmatch(value.strip())
        ):
            raise ValueError("as_of is an RFC 3339 time such as 2026-11-21T12:00:00Z")
        return value

    @model_validator(mode="after")
    def _one_at_most(self) -> Self:
        if sum(x is not None for x in (self.as_of, self.tag, self.snapshot_id)) > 1:
            raise ValueError("ask as of one thing only: as_of, tag or snapshot_id")
        return self

    def keywords(self) -> dict[str, Any]:
        return {"as_of": self.as_of, "tag": self.tag, "snapshot_id": self.snapshot_id}


class AsOfOnDay(AsOf, OnDay):
    pass


AsOfQuery = Annotated[AsOf, Query()]


def audited(row: AuditRow) -> AuditedDecision:
    committed = row.committed
    return AuditedDecision(
        decision=Decision.model_validate(msgspec.to_builtins(committed.decision)),
        decided_at=committed.decided_at,
        worker_checkpoint_id=committed.worker_checkpoint,
        ingested_at=row.ingested_at,
        checkpoint_id=row.checkpoint_id,
        committed=Position(
            topic=committed.topic, partition=committed.partition, offset=committed.offset
        ),
    )
