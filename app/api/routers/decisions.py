"""``GET /v1/decisions/{transaction_id}``: a transaction's decision as the audit trail (the
Iceberg table ``fraud.decisions``) recorded it. Role: analyst."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from app.api.audited import AsOfOnDay, AuditedDecision, TransactionId, audited
from app.api.auth import Role, require
from app.api.errors import NotFoundError
from app.api.handlers import PROTECTED_RESPONSES, documented
from app.api.resources import SettingsDep
from app.audit_query import find_transaction

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/v1/decisions",
    tags=["decisions"],
    dependencies=[Depends(require(Role.ANALYST))],
    responses={**PROTECTED_RESPONSES, **documented(404, 422, 503)},
)


@router.get("/{transaction_id}", summary="The audited decision of a transaction")
def decision(
    transaction_id: TransactionId,
    settings: SettingsDep,
    query: Annotated[AsOfOnDay, Query()],
) -> AuditedDecision:
    rows = find_transaction(settings, transaction_id, day=query.day, **query.keywords())
    if not rows:
        raise NotFoundError(f"no decision for transaction {transaction_id!r} in the audit trail")
    if len(rows) > 1:
        log.warning(
            "transaction %r has %d audit rows; showing the first", transaction_id, len(rows)
        )
    return audited(rows[0])
