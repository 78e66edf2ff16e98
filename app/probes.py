"""The small HTTP app of a long-running process other than the API (a worker, the audit
sink): ``/healthz``, ``/readyz`` and ``/metrics``, unauthenticated, for probes and Prometheus.

:func:`create_probe_app` builds it from a readiness function (the reasons the process is not
ready; none: ready) and the process's metrics registry, both kept in ``app.state``. More
routes are added with ``app.include_router``: a worker route (e.g. a card-feature lookup)
finds what it needs in ``request.app.state``. Handlers run on the server's thread
(:mod:`app.http_server`), not the worker's, so they may only read what is safe to read
concurrently.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from app.metrics import CONTENT_TYPE, exposition

Readiness = Callable[[], list[str]]  # why the process is not ready; empty: it is


class Health(BaseModel):
    status: Literal["alive", "ready", "not_ready"]
    problems: list[str] = []


router = APIRouter()


@router.get("/healthz")
async def healthz() -> Health:
    """The process is alive (its HTTP thread answers)."""
    return Health(status="alive")


@router.get("/readyz", responses={503: {"model": Health}})
async def readyz(request: Request) -> JSONResponse:
    """200 when ready; 503 with the reasons when not."""
    readiness: Readiness = request.app.state.readiness
    problems = readiness()
    if problems:
        return JSONResponse(Health(status="not_ready", problems=problems).model_dump(), 503)
    return JSONResponse(Health(status="ready").model_dump())


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """The process's metrics in Prometheus' text format."""
    return metrics_response(request.app.state.registry)


def metrics_response(registry: CollectorRegistry) -> Response:
    return Response(exposition(registry), media_type=CONTENT_TYPE)


def create_probe_app(title: str, readiness: Readiness, registry: CollectorRegistry) -> FastAPI:
    app = FastAPI(title=title, docs_url=None, redoc_url=None)
    app.state.readiness = readiness
    app.state.registry = registry
    app.include_router(router)
    return app
