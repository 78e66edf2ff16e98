"""The API's request metrics and its ``/metrics`` endpoint (unauthenticated, like the probes,
and left out of the OpenAPI document: it is for Prometheus, not for API clients).

:class:`RequestMetricsMiddleware` (pure ASGI) counts every request by method, route and
status and times it by method and route. The route is the matched path *template*
(``/v1/decisions/{transaction_id}``), never the raw path, and unknown methods count as
``other``, so no client can create new series at will; a request that matched no route
counts under ``<unmatched>``.
"""

from __future__ import annotations

import time
from typing import Final

from fastapi import APIRouter, Request, Response
from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.metrics import new_registry
from app.probes import metrics_response

_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
UNMATCHED: Final = "<unmatched>"


class ApiMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else new_registry()
        self.requests = Counter(
            "fraudscore_api_requests",
            "HTTP requests answered, by method, route template and status code",
            ["method", "route", "status"],
            registry=r,
        )
        self.duration = Histogram(
            "fraudscore_api_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=r,
        )


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app raises before it answers

        async def send_counting(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counting)
        finally:
            method = scope["method"] if scope["method"] in _METHODS else "other"
            route = getattr(scope.get("route"), "path", UNMATCHED)
            self.metrics.requests.labels(method, route, str(status)).inc()
            self.metrics.duration.labels(method, route).observe(time.perf_counter() - started)


router = APIRouter(include_in_schema=False)


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    api_metrics: ApiMetrics = request.app.state.metrics
    return metrics_response(api_metrics.registry)
