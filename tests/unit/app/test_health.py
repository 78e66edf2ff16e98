"""The container health probes against a real local HTTP server and a closed port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.errors import HealthError
from app.health import check_http, check_kafka
from app.process import free_port
from app.settings import FraudscoreSettings


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/readyz" else 503)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_an_endpoint_answering_2xx_is_healthy_and_any_other_answer_is_not(server: str) -> None:
    assert check_http(f"{server}/readyz", 2.0) == 200
    with pytest.raises(HealthError, match="answered 503"):
        check_http(f"{server}/other", 2.0)
    with pytest.raises(HealthError, match="not an http"):
        check_http("file:///etc/passwd", 2.0)


async def test_a_broker_that_does_not_answer_fails_the_probe_with_its_address() -> None:
    settings = FraudscoreSettings(kafka_bootstrap=f"127.0.0.1:{free_port()}")
    with pytest.raises(HealthError, match=settings.kafka_bootstrap):
        await check_kafka(settings, 2.0)
