"""The API's /metrics: every request counted by method, route template and status."""

from __future__ import annotations

from fastapi.testclient import TestClient

from app.api.metrics import UNMATCHED
from tests.support.metrics import parse, value


def test_requests_are_counted_by_route_template_and_status(client: TestClient) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/healthz").status_code == 200
    assert client.get("/v1/decisions/tx_1").status_code == 401  # no token
    assert client.get("/no/such/path").status_code == 404
    assert client.request("BREW", "/healthz").status_code == 405

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    series = parse(response.text)

    def requests(method: str, route: str, status: int) -> float:
        labels = {"method": method, "route": route, "status": str(status)}
        return value(series, "fraudscore_api_requests_total", labels)

    assert requests("GET", "/healthz", 200) == 2
    assert requests("GET", "/v1/decisions/{transaction_id}", 401) == 1  # the template
    assert requests("GET", UNMATCHED, 404) == 1
    assert requests("other", "/healthz", 405) == 1  # no series per made-up method
    duration = {"method": "GET", "route": "/healthz"}
    assert value(series, "fraudscore_api_request_duration_seconds_count", duration) == 2
    assert value(series, "process_resident_memory_bytes") > 0


def test_two_apps_do_not_share_counters(client: TestClient) -> None:
    from app.api.application import create_app  # noqa: PLC0415

    client.get("/healthz")
    other = TestClient(create_app(client.app.state.settings))  # type: ignore[attr-defined]
    series = parse(other.get("/metrics").text)
    labels = {"method": "GET", "route": "/healthz", "status": "200"}
    assert value(series, "fraudscore_api_requests_total", labels) == 0


def test_metrics_is_not_in_the_openapi_document(client: TestClient) -> None:
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]
