"""``GET /v1/merchants/{merchant_id}/risk``: a merchant's risk features in the newest
published merchant snapshot (``fraudscore merchant-risk``, ADR 0005). Roles: service or
analyst."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel

from app.api.auth import Role, require
from app.api.errors import NotFoundError
from app.api.handlers import PROTECTED_RESPONSES, documented
from app.api.resources import ResourcesDep
from app.db.merchant_risk import newest_merchant_risk
from features.merchant import MERCHANT_FEATURE_NAMES, merchant_vector

router = APIRouter(
    prefix="/v1/merchants",
    tags=["merchants"],
    dependencies=[Depends(require(Role.SERVICE, Role.ANALYST))],
    responses={**PROTECTED_RESPONSES, **documented(404)},
)

MerchantId = Annotated[str, Path(min_length=1, max_length=64)]
_COUNT_NAMES = ("labelled_1d", "fraud_1d", "labelled_7d", "fraud_7d", "labelled_30d", "fraud_30d")


class MerchantRisk(BaseModel):
    merchant_id: str
    snapshot_version: str  # e.g. 2026-01-08/d7: the day it serves and its delay
    features: dict[str, float]  # what scoring uses: merchant_labelled_1d, ..._fraud_share_30d
    counts: dict[str, int]  # the labelled transactions and the fraud among them, per window


@router.get("/{merchant_id}/risk", summary="A merchant's risk in the newest snapshot")
def merchant_risk(merchant_id: MerchantId, resources: ResourcesDep) -> MerchantRisk:
    delay_days = resources.settings.merchant_risk_delay_days
    with resources.session() as session:
        found = newest_merchant_risk(session, merchant_id, delay_days)
    if found is None:
        raise NotFoundError(
            "no merchant-risk snapshot is published yet (`fraudscore merchant-risk` publishes them)"
        )
    if found.counts is None:
        raise NotFoundError(
            f"merchant {merchant_id!r} has no labelled transaction in snapshot "
            f"{found.snapshot_version}: its merchant features are zero"
        )
    return MerchantRisk(
        merchant_id=merchant_id,
        snapshot_version=found.snapshot_version,
        features=dict(zip(MERCHANT_FEATURE_NAMES, merchant_vector(found.counts), strict=True)),
        counts=dict(zip(_COUNT_NAMES, found.counts, strict=True)),
    )
