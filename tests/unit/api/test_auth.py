"""Every endpoint refuses a caller without a valid token (401) and one without a role it
needs (403), and lets through the roles it is meant for. The routes come from the app's own
OpenAPI document, so an endpoint added without an entry in EXPECTED_ROLES fails here (one
hidden from the document, ``include_in_schema=False``, would not: the API has none)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.application import create_app
from app.api.auth import Role
from tests.support.api import (
    OTHER_SECRET,
    api_settings,
    bearer,
    migrate,
    token,
)

A, S, D = Role.ANALYST, Role.SERVICE, Role.ADMIN
EXPECTED_ROLES: dict[tuple[str, str], set[Role]] = {
    ("GET", "/v1/cards/{card_id}/features"): {S},
    ("GET", "/v1/decisions/{transaction_id}"): {A},
    ("GET", "/v1/audit/cards/{card_id}/decisions"): {A},
    ("GET", "/v1/audit/days/{day}/stats"): {A},
    ("POST", "/v1/audit/sql"): {A},
    ("GET", "/v1/audit/transactions/{transaction_id}/reproduction"): {A},
    ("GET", "/v1/merchants/{merchant_id}/risk"): {S, A},
    ("GET", "/v1/models"): {A, D},
    ("GET", "/v1/models/{version}"): {A, D},
    ("POST", "/v1/models/{version}/promote"): {D},
    ("POST", "/v1/models/{version}/shadow"): {D},
    ("POST", "/v1/models/rollback"): {D},
    ("POST", "/v1/models/unshadow"): {D},
    ("GET", "/v1/policies"): {A, D},
    ("GET", "/v1/policies/{version}"): {A, D},
    ("POST", "/v1/policies"): {D},
    ("POST", "/v1/labels"): {A},
}
PUBLIC = {("GET", "/healthz"), ("GET", "/readyz")}

ROUTES = sorted(
    (method.upper(), path)
    for path, operations in create_app(api_settings(Path("unused"))).openapi()["paths"].items()
    for method in operations
)

BAD_TOKENS = {
    "missing": None,
    "expired": token(A, S, D, expires_in_s=-120),  # beyond the 30 s leeway
    "wrong signature": token(A, S, D, secret=OTHER_SECRET),
    "wrong audience": token(A, S, D, audience="someone-else"),
    "wrong issuer": token(A, S, D, issuer="https://evil.test"),
    "no subject": token(A, S, D, omit=["sub"]),
    "no expiry": token(A, S, D, omit=["exp"]),
    "not a JWT": "not-a-jwt",
    "unsigned": token(A, S, D).rsplit(".", 1)[0] + ".",
}


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """One app for the module: these tests change nothing."""
    settings = api_settings(tmp_path_factory.mktemp("auth") / "var")
    migrate(settings)
    with TestClient(create_app(settings)) as client:
        yield client


def _call(client: TestClient, method: str, path: str, credential: str | None) -> int:
    url = re.sub(r"\{[^}]+\}", "x1", path)
    headers = {} if credential is None else bearer(credential)
    response = client.request(method, url, headers=headers)
    if response.status_code in {401, 403}:
        assert response.json()["error"]["code"] in {"unauthenticated", "forbidden"}
    return response.status_code


PROTECTED = [route for route in ROUTES if route not in PUBLIC]


def test_every_route_is_either_public_or_has_expected_roles() -> None:
    assert set(PROTECTED) == set(EXPECTED_ROLES)
    assert set(ROUTES) >= PUBLIC


@pytest.mark.parametrize("kind", BAD_TOKENS)
@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_an_invalid_token_is_refused_with_401(
    client: TestClient, method: str, path: str, kind: str
) -> None:
    response_status = _call(client, method, path, BAD_TOKENS[kind])
    assert response_status == 401


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_each_role_is_admitted_exactly_where_expected(
    client: TestClient, method: str, path: str
) -> None:
    allowed = EXPECTED_ROLES[(method, path)]  # KeyError: add the new route to EXPECTED_ROLES
    for role in Role:
        status = _call(client, method, path, token(role))
        assert (status == 403) == (role not in allowed), (role, status)
        assert status != 401
    assert _call(client, method, path, token()) == 403  # no role at all
    assert _call(client, method, path, token("superuser")) == 403  # unknown roles count not


def test_401_says_bearer_and_why(client: TestClient) -> None:
    response = client.get("/v1/models", headers=bearer(token(Role.ADMIN, audience="other")))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["code"] == "unauthenticated"
    assert "audience" in error["message"].lower()
    assert error["request_id"] == response.headers["X-Request-ID"]


def test_the_public_probes_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "alive"}
    assert client.get("/readyz").json() == {"status": "ready"}
