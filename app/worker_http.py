"""A worker's HTTP endpoint: ``/healthz``, ``/readyz`` and ``/metrics`` (:mod:`app.probes`)
on ``FRAUDSCORE_WORKER_HTTP_HOST:FRAUDSCORE_WORKER_HTTP_PORT``, served on a daemon thread
beside the worker's loop (:mod:`app.http_server`).

Port 0 (the default) takes a free port, so any number of workers share a host; the address
is logged at start (``worker HTTP on http://127.0.0.1:PORT``). Routes that need the worker's
own data (a live card-feature lookup, say) belong in :func:`create_worker_app`, reading what
they need from ``request.app.state`` (they run on the server's thread: see
:mod:`app.probes`).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from app.http_server import BackgroundHttpServer
from app.probes import create_probe_app
from app.settings import FraudscoreSettings
from app.worker_status import WorkerStatus

log = logging.getLogger(__name__)


def create_worker_app(status: WorkerStatus, registry: CollectorRegistry) -> FastAPI:
    app = create_probe_app("fraudscore worker", status.problems, registry)
    app.state.status = status
    return app


def start_worker_http(
    settings: FraudscoreSettings, status: WorkerStatus, registry: CollectorRegistry
) -> BackgroundHttpServer:
    """Serve the worker's app until ``stop()``; logs the address."""
    server = BackgroundHttpServer(
        create_worker_app(status, registry),
        settings.worker_http_host,
        settings.worker_http_port,
        name="worker-http",
    )
    server.start()
    log.info("worker HTTP on %s (/metrics, /healthz, /readyz)", server.url)
    return server
