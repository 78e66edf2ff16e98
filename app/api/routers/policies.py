"""``/v1/policies``: the versioned decision policies (docs/REGISTRY.md). Reading: analyst or
admin; a new active version: admin, recorded in the admin log under the token's subject."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from app.api.auth import Principal, Role, require
from app.api.handlers import BODY_RESPONSES, PROTECTED_RESPONSES, documented
from app.api.resources import ResourcesDep
from app.db import registry
from app.live_pipeline import configured_policy

router = APIRouter(prefix="/v1/policies", tags=["policies"], responses=PROTECTED_RESPONSES)

Reader = Depends(require(Role.ANALYST, Role.ADMIN))
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Version = Annotated[str, Path(min_length=1, max_length=200)]
MAX_COUNT = 1_000_000  # counts of transactions or merchants; the columns are 32-bit integers


def _integral(value: object) -> object:
    """JSON Schema counts 5.0 as an integer: take it as 5 (strict still refuses "5", 5.5)."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


TransactionCount = Annotated[int, Field(ge=0, le=MAX_COUNT), BeforeValidator(_integral)]
MerchantCount = Annotated[int, Field(ge=1, le=MAX_COUNT), BeforeValidator(_integral)]


class Policy(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    version: str
    review_threshold: float
    decline_threshold: float
    velocity_count_above: int
    velocity_amount_above: float
    many_merchants_10m: int
    high_amount: float
    active: bool
    created_by: str
    created_at: datetime


class PolicyChange(BaseModel):
    """The values to change; the others are the active policy's (or the configured ones
    before the first policy is set). Changing nothing is refused (409) by the registry."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

    review_threshold: float | None = Field(default=None, ge=0, le=1)
    decline_threshold: float | None = Field(default=None, ge=0, le=1)
    velocity_count_above: TransactionCount | None = None
    velocity_amount_above: float | None = Field(default=None, ge=0)
    many_merchants_10m: MerchantCount | None = None
    high_amount: float | None = Field(default=None, ge=0)

    def changes(self) -> dict[str, float | int]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


@router.get("", summary="Every policy version, oldest first", dependencies=[Reader])
def list_policies(resources: ResourcesDep) -> list[Policy]:
    with resources.session() as session:
        return [Policy.model_validate(row) for row in registry.policies(session)]


@router.get(
    "/{version}", summary="One policy version", dependencies=[Reader], responses=documented(404)
)
def get_policy(version: Version, resources: ResourcesDep) -> Policy:
    with resources.session() as session:
        return Policy.model_validate(registry.policy(session, version))


@router.post(
    "",
    summary="Make a new policy version with these changes the active one",
    status_code=201,
    responses={**BODY_RESPONSES, **documented(409)},
)
def set_policy(change: PolicyChange, principal: Admin, resources: ResourcesDep) -> Policy:
    configured = configured_policy(resources.settings)
    with resources.session() as session:
        row = registry.set_policy(session, principal.subject, configured, change.changes())
        session.flush()
        return Policy.model_validate(row)
