"""The FastAPI application, built by :func:`create_app` (served by ``fraudscore api``).

Building it checks the token configuration (:func:`app.api.auth.token_verifier`) so that a
configuration that cannot work stops the start; the engine and the producer are opened by
the lifespan (:mod:`app.api.resources`), never at import time.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.api import handlers
from app.api.auth import token_verifier
from app.api.metrics import ApiMetrics, RequestMetricsMiddleware
from app.api.metrics import router as metrics_router
from app.api.middleware import BodyLimitMiddleware, DeadlineMiddleware, RequestIdMiddleware
from app.api.resources import lifespan
from app.api.routers import (
    audit,
    cards,
    decisions,
    health,
    labels,
    merchants,
    models,
    policies,
)
from app.settings import FraudscoreSettings, get_settings

DESCRIPTION = """Real-time card-fraud scoring: decisions, merchant risk, the model registry,
decision policies and analyst labels. Every `/v1` endpoint needs a bearer JWT with a role:
`service`, `analyst` or `admin` (docs/API.md). Errors are
`{"error": {"code", "message", "request_id", "details"}}`."""


def create_app(settings: FraudscoreSettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="fraudscore",
        version="1",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.verifier = token_verifier(settings)
    handlers.install(app)
    app.state.metrics = ApiMetrics()
    for router in (health, cards, decisions, audit, merchants, models, policies, labels):
        app.include_router(router.router)
    app.include_router(metrics_router)
    # the last added runs first: every response, the 413 and 504 included, carries the
    # request id, and every one is counted
    app.add_middleware(DeadlineMiddleware, timeout_s=settings.api_request_timeout_ms / 1000)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    return app
