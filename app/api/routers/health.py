"""``/healthz`` (the process is alive) and ``/readyz`` (it can serve: the registry database
answers at this build's schema). Both unauthenticated, for probes."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel

from app.api.handlers import PUBLIC_RESPONSES, documented
from app.api.resources import ResourcesDep

router = APIRouter(tags=["health"], responses=PUBLIC_RESPONSES)


class Health(BaseModel):
    status: Literal["alive", "ready"]


@router.get("/healthz", summary="The process is alive")
async def healthz() -> Health:
    return Health(status="alive")


@router.get("/readyz", summary="The registry database answers", responses=documented(503))
def readyz(resources: ResourcesDep) -> Health:
    resources.check_ready()
    return Health(status="ready")
