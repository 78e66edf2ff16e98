"""``GET /v1/decisions/{transaction_id}``: a transaction's decision as the audit trail (the
Iceberg table ``fraud.decisions``) recorded it. Role: analyst."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

import msgspec
from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from app.api.auth import Role, require
from app.api.errors import NotFoundError
from app.api.handlers import PROTECTED_RESPONSES, documented
from app.api.resources import SettingsDep
from app.audit_query import find_transaction
from sinks.iceberg import AuditRow

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/decisions",
    tags=["decisions"],
    dependencies=[Depends(require(Role.ANALYST))],
    responses={**PROTECTED_RESPONSES, **documented(404)},
)

TransactionId = Annotated[str, Path(min_length=1, max_length=64)]


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
    ingested_at: datetime  # when the audit sink appended it
    checkpoint_id: int  # the audit checkpoint (Iceberg commit) that appended it
    committed: Position  # where on the decisions topic it was committed


@router.get("/{transaction_id}", summary="The audited decision of a transaction")
def decision(transaction_id: TransactionId, settings: SettingsDep) -> AuditedDecision:
    rows = find_transaction(settings, transaction_id)
    if not rows:
        raise NotFoundError(f"no decision for transaction {transaction_id!r} in the audit trail")
    if len(rows) > 1:
        log.warning(
            "transaction %r has %d audit rows; showing the first", transaction_id, len(rows)
        )
    return _audited(rows[0])


def _audited(row: AuditRow) -> AuditedDecision:
    committed = row.committed
    return AuditedDecision(
        decision=Decision.model_validate(msgspec.to_builtins(committed.decision)),
        decided_at=committed.decided_at,
        ingested_at=row.ingested_at,
        checkpoint_id=row.checkpoint_id,
        committed=Position(
            topic=committed.topic, partition=committed.partition, offset=committed.offset
        ),
    )
