"""A worker's HTTP endpoint: ``/healthz``, ``/readyz`` and ``/metrics`` (:mod:`app.probes`),
and the internal card-feature route (:mod:`app.card_features`), on
``FRAUDSCORE_WORKER_HTTP_HOST:FRAUDSCORE_WORKER_HTTP_PORT``, served on a daemon thread beside
the worker's loop (:mod:`app.http_server`).

Port 0 (the default) takes a free port, so any number of workers share a host; the address
is logged at start (``worker HTTP on http://127.0.0.1:PORT``) and advertised to the API in
the worker consumer's ``client.id`` (:mod:`app.card_owner`). Routes that need the worker's
own data read what they need from ``request.app.state`` (they run on the server's thread:
see :mod:`app.probes`).

The card route is no way around the API's authentication: it needs the same bearer token
with the ``service`` role, verified with the API's token settings (the API forwards the
caller's ``Authorization`` header). A worker without usable token settings answers it 503.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from prometheus_client import CollectorRegistry

from app.api import handlers
from app.api.auth import Role, TokenVerifier, require, token_verifier
from app.api.errors import ApiConfigError, UnavailableError
from app.card_features import CardFeatures, LocalCards
from app.http_server import BackgroundHttpServer
from app.probes import create_probe_app
from app.settings import FraudscoreSettings
from app.worker_status import WorkerStatus

log = logging.getLogger(__name__)

CARD_ROUTE = "/internal/v1/partitions/{partition}/cards/{card_id}/features"

card_router = APIRouter(dependencies=[Depends(require(Role.SERVICE))])


@card_router.get(CARD_ROUTE)
async def card_features(
    partition: Annotated[int, Path(ge=0)],
    card_id: Annotated[str, Path(min_length=1, max_length=64)],
    request: Request,
) -> CardFeatures:
    """On the event loop: a RocksDB read and a few sums, shorter than a hop to a pool thread
    and back (which waits for the GIL twice beside the scoring loop)."""
    cards: LocalCards = request.app.state.cards
    return cards.lookup(partition, card_id)


class _NoKeys:
    """The key source of a worker whose token settings cannot work: every lookup is 503."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def key_for(self, token: str) -> tuple[Any, list[str]]:
        raise UnavailableError(f"card lookups are off on this worker: {self.reason}")


def _verifier(settings: FraudscoreSettings) -> TokenVerifier:
    try:
        return token_verifier(settings)
    except ApiConfigError as exc:
        log.warning("card-feature lookups refused: %s", exc)
        return TokenVerifier(_NoKeys(str(exc)), "", "", 0, None, dev_key=False)


def create_worker_app(
    status: WorkerStatus,
    registry: CollectorRegistry,
    cards: LocalCards | None = None,
    settings: FraudscoreSettings | None = None,
) -> FastAPI:
    """The probes; with ``cards`` and ``settings``, the card-feature route too."""
    app = create_probe_app("fraudscore worker", status.problems, registry)
    app.state.status = status
    if cards is not None and settings is not None:
        app.state.cards = cards
        app.state.verifier = _verifier(settings)
        handlers.install(app)
        app.include_router(card_router)
    return app


def start_worker_http(
    settings: FraudscoreSettings,
    status: WorkerStatus,
    registry: CollectorRegistry,
    cards: LocalCards,
) -> BackgroundHttpServer:
    """Serve the worker's app until ``stop()``; logs the address."""
    server = BackgroundHttpServer(
        create_worker_app(status, registry, cards, settings),
        settings.worker_http_host,
        settings.worker_http_port,
        name="worker-http",
    )
    server.start()
    log.info("worker HTTP on %s (/metrics, /healthz, /readyz, card features)", server.url)
    return server
