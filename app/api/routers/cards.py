"""``GET /v1/cards/{card_id}/features``: a card's live window values as the worker that owns
its partition holds them (committed state, at the partition's stream time). Role: service.

The API holds no state: it finds the owner from the consumer group's assignment and forwards
the request, with the caller's token, to that worker's internal route (:mod:`app.card_owner`;
docs/API.md, "Card features: who answers").
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from app.api.auth import Role, require
from app.api.handlers import PROTECTED_RESPONSES, documented
from app.api.resources import ResourcesDep
from app.card_features import CardFeatures
from app.card_owner import lookup

router = APIRouter(
    prefix="/v1/cards",
    tags=["cards"],
    dependencies=[Depends(require(Role.SERVICE))],
    responses={**PROTECTED_RESPONSES, **documented(404)},
)

CardId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get(
    "/{card_id}/features",
    summary="A card's live feature values, from the worker that owns its partition",
)
async def card_features(card_id: CardId, request: Request, resources: ResourcesDep) -> CardFeatures:
    authorization = request.headers["Authorization"]  # present: the role check passed
    return await lookup(resources.owners, resources.workers, card_id, authorization)
