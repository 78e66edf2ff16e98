"""``/v1/models``: the model registry (docs/REGISTRY.md). Reading: analyst or admin;
promoting, rolling back and shadow scoring: admin, each recorded in the admin log under the
token's subject (by :mod:`app.db.registry`, as for the CLI)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict

from app.api.auth import Principal, Role, require
from app.api.handlers import PROTECTED_RESPONSES, documented
from app.api.resources import ResourcesDep
from app.db import registry
from app.db.tables import ModelStatus

router = APIRouter(prefix="/v1/models", tags=["models"], responses=PROTECTED_RESPONSES)

Reader = Depends(require(Role.ANALYST, Role.ADMIN))
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
Version = Annotated[str, Path(min_length=1, max_length=200)]


class Model(BaseModel):
    model_config = ConfigDict(from_attributes=True, protected_namespaces=())

    version: str
    status: ModelStatus
    artefact_path: str
    model_sha256: str
    feature_schema_version: int
    metrics: dict[str, Any]  # the artefact's test metrics
    registered_by: str
    registered_at: datetime
    status_changed_by: str
    status_changed_at: datetime


class Promotion(BaseModel):
    active: str  # the model promoted
    replaced: str | None  # the model active before, now retired


class Rollback(BaseModel):
    rolled_back: str  # the model of the newest promotion, now retired
    active: str  # the model active before it, active again


class Shadowing(BaseModel):
    shadow: str | None  # the model scored in shadow now (none after unshadow)
    replaced: str | None  # the model in shadow before, a candidate again


@router.get("", summary="Every registered model", dependencies=[Reader])
def list_models(resources: ResourcesDep) -> list[Model]:
    with resources.session() as session:
        return [Model.model_validate(row) for row in registry.models(session)]


@router.get(
    "/{version}",
    summary="One registered model",
    dependencies=[Reader],
    responses=documented(404),
)
def get_model(version: Version, resources: ResourcesDep) -> Model:
    with resources.session() as session:
        return Model.model_validate(registry.model(session, version))


@router.post(
    "/{version}/promote",
    summary="Make a registered model the active one",
    responses=documented(404, 409),
)
def promote(version: Version, principal: Admin, resources: ResourcesDep) -> Promotion:
    with resources.session() as session:
        previous = registry.promote(session, version, principal.subject)
        return Promotion(active=version, replaced=None if previous is None else previous.version)


@router.post(
    "/rollback",
    summary="Undo the newest promotion: the model active before it is active again",
    responses=documented(409),
)
def rollback(principal: Admin, resources: ResourcesDep) -> Rollback:
    with resources.session() as session:
        undone, restored = registry.rollback(session, principal.subject)
        return Rollback(rolled_back=undone.version, active=restored.version)


@router.post(
    "/{version}/shadow",
    summary="Score a registered model beside the active one (it never decides)",
    responses=documented(404, 409),
)
def shadow(version: Version, principal: Admin, resources: ResourcesDep) -> Shadowing:
    with resources.session() as session:
        previous = registry.shadow(session, version, principal.subject)
        return Shadowing(shadow=version, replaced=None if previous is None else previous.version)


@router.post(
    "/unshadow",
    summary="Stop shadow scoring: the shadow model becomes a candidate again",
    responses=documented(409),
)
def unshadow(principal: Admin, resources: ResourcesDep) -> Shadowing:
    with resources.session() as session:
        return Shadowing(
            shadow=None, replaced=registry.unshadow(session, principal.subject).version
        )
