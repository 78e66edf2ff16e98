"""A process's probe app served for real: uvicorn on a daemon thread, on a free port, asked
over HTTP with the standard library's client."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from app.http_server import BackgroundHttpServer, listening_socket
from app.metrics import new_registry
from app.worker_http import create_worker_app
from app.worker_status import WorkerStatus


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - local test server
            return response.status, response.headers["content-type"], response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["content-type"], error.read().decode()


def test_probes_and_metrics_over_http_on_a_free_port() -> None:
    status, registry = WorkerStatus(), new_registry()
    registry.register(status)
    servers = [
        BackgroundHttpServer(create_worker_app(status, registry), "127.0.0.1", 0, f"test-{i}")
        for i in range(2)
    ]
    for server in servers:
        server.start()
    try:
        url = servers[0].url
        assert url != servers[1].url  # port 0: never a collision
        assert _get(f"{url}/healthz")[0] == 200
        code, _, body = _get(f"{url}/readyz")
        assert code == 503
        assert json.loads(body)["problems"][0] == "the model is not loaded yet"

        status.pipeline_loaded("model m")
        status.restoring([1])
        status.restored(1)
        assert _get(f"{url}/readyz")[0] == 200
        code, content_type, text = _get(f"{url}/metrics")
        assert code == 200
        assert content_type.startswith("text/plain; version=0.0.4")
        assert "fraudscore_worker_ready 1.0" in text
    finally:
        for server in servers:
            server.stop()
    with pytest.raises(urllib.error.URLError):
        _get(f"{url}/healthz")


def test_a_taken_port_fails_at_once_in_the_callers_thread() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        status, registry = WorkerStatus(), new_registry()
        with pytest.raises(OSError, match="in use"):
            BackgroundHttpServer(create_worker_app(status, registry), "127.0.0.1", port, "x")


def test_connections_to_the_server_send_without_nagles_delay() -> None:
    listener = listening_socket("127.0.0.1", 0)
    with listener, socket.create_connection(listener.getsockname()[:2]):
        accepted, _ = listener.accept()
        with accepted:  # what uvicorn serves a client on: inherited from the listener
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
