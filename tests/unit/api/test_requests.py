"""What the API does with the request itself: size limit, validation, the error shape,
request ids, card numbers in labels; and the token configuration it refuses."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient
from pydantic import SecretStr

from app.api.application import create_app
from app.api.auth import DEV_SECRET, Role, mint_token, token_verifier
from app.api.errors import ApiConfigError
from app.settings import FraudscoreSettings
from tests.support.api import SECRET, api_settings, bearer, token

ANALYST = bearer(token(Role.ANALYST))
LABEL = {
    "transaction_id": "tx_1_000000001",
    "card_id": "tok_abc",
    "merchant_id": "m_1",
    "label": "fraud",
    "event_time": "2026-01-01T09:30:00Z",
    "reported_at": "2026-01-20T10:00:00+01:00",
}
PAN = "4111 1111 1111 1111"


def test_a_body_over_the_limit_is_refused_with_413(
    client: TestClient, settings: FraudscoreSettings
) -> None:
    big = b'{"x": "' + b"a" * settings.api_max_body_bytes + b'"}'
    declared = client.post("/v1/labels", content=big, headers=ANALYST)
    assert declared.status_code == 413
    assert declared.json()["error"]["code"] == "payload_too_large"
    assert declared.json()["error"]["request_id"] == declared.headers["X-Request-ID"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it is read
        for start in range(0, len(big), 4096):
            yield big[start : start + 4096]

    streamed = client.post("/v1/labels", content=chunks(), headers=ANALYST)
    assert streamed.status_code == 413
    assert streamed.json()["error"]["code"] == "payload_too_large"


def test_validation_errors_have_the_stable_shape_and_never_echo_a_card_number(
    client: TestClient,
) -> None:
    body = {**LABEL, "label": "maybe", PAN: PAN}
    response = client.post("/v1/labels", json=body, headers=ANALYST)
    assert response.status_code == 422
    error = response.json()["error"]
    assert set(error) == {"code", "message", "request_id", "details"}
    assert error["code"] == "invalid_request"
    assert {tuple(d["loc"]) for d in error["details"]} == {
        ("body", "label"), ("body", "4111 11** **** 1111"),
    }  # fmt: skip
    assert "1111 1111 1111" not in response.text
    malformed = client.post("/v1/labels", content=b"{", headers=ANALYST)
    assert malformed.status_code == 422
    assert malformed.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"card_id": f"tok {PAN}"}, "pan_detected"),
        ({"merchant_id": PAN.replace(" ", "")}, "pan_detected"),
        ({"reported_at": "2025-12-31T00:00:00Z"}, "invalid_field"),  # before the event
        ({"event_time": "1999-12-31T00:00:00Z"}, "invalid_event_time"),
    ],
)
def test_a_label_the_aggregator_would_refuse_is_refused_before_publishing(
    client: TestClient, change: dict[str, str], code: str
) -> None:
    response = client.post("/v1/labels", json={**LABEL, **change}, headers=ANALYST)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code
    assert "1111 1111" not in response.text
    assert "1111111111" not in response.text


@pytest.mark.parametrize("event_time", [1767259800000, "2026-01-01T09:30:00"])
def test_label_times_are_rfc3339_text_with_an_offset(
    client: TestClient, event_time: object
) -> None:
    response = client.post("/v1/labels", json={**LABEL, "event_time": event_time}, headers=ANALYST)
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["loc"] == ["body", "event_time"]


def test_a_label_without_a_broker_is_a_503(client: TestClient) -> None:
    response = client.post("/v1/labels", json=LABEL, headers=ANALYST)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "unavailable"


def test_the_request_id_is_the_clients_if_it_is_a_short_token(client: TestClient) -> None:
    assert client.get("/healthz", headers={"X-Request-ID": "abc-1"}).headers["X-Request-ID"] == (
        "abc-1"
    )
    replaced = client.get("/healthz", headers={"X-Request-ID": "no spaces or PANs here!"})
    assert len(replaced.headers["X-Request-ID"]) == 32
    unknown = client.get("/v2/nothing", headers={"X-Request-ID": "r-2"})
    assert unknown.status_code == 404
    assert unknown.json()["error"] == {
        "code": "not_found", "message": "Not Found", "request_id": "r-2", "details": None,
    }  # fmt: skip


def test_not_ready_while_the_registry_is_not_migrated(tmp_path: Path) -> None:
    with TestClient(create_app(api_settings(tmp_path))) as client:
        assert client.get("/healthz").status_code == 200
        response = client.get("/readyz")
        assert response.status_code == 503
        assert "fraudscore db upgrade" in response.json()["error"]["message"]


# --- token configuration -----------------------------------------------------------------
@pytest.mark.parametrize("secret", [None, DEV_SECRET, "changethis", "short-but-not-a-placeholder"])
def test_outside_dev_a_missing_or_placeholder_secret_is_refused(secret: str | None) -> None:
    settings = api_settings(Path("x"), api_jwt_secret=None if secret is None else SecretStr(secret))
    with pytest.raises(ApiConfigError):
        token_verifier(settings)
    dev = settings.model_copy(update={"environment": "dev"})
    assert token_verifier(dev).secret is not None


def test_in_dev_without_a_key_the_development_key_mints_and_verifies() -> None:
    verifier = token_verifier(FraudscoreSettings(environment="dev"))
    assert verifier.dev_key
    minted = mint_token(verifier, "dev", [Role.ADMIN], 60, time.time())
    assert verifier.verify(minted).roles == {Role.ADMIN}
    assert not token_verifier(api_settings(Path("x"))).dev_key


def test_a_key_set_file_verifies_its_issuers_tokens_and_no_hmac_ones(tmp_path: Path) -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256"}]}))
    settings = api_settings(tmp_path, api_jwt_secret=None, api_jwks_file=path)
    verifier = token_verifier(settings)
    claims = jwt.decode(
        token(Role.ANALYST), SECRET, algorithms=["HS256"], audience="fraudscore-test"
    )
    signed = jwt.encode(claims, private, algorithm="RS256", headers={"kid": "k1"})
    assert verifier.verify(signed).subject == "alice"
    with TestClient(create_app(settings)) as client:  # an HS256 token is not one of the set's
        assert client.get("/v1/models", headers=bearer(token(Role.ANALYST))).status_code == 401
    both = settings.model_copy(update={"api_jwt_secret": SecretStr(SECRET)})
    with pytest.raises(ApiConfigError):
        token_verifier(both)


def test_only_a_key_set_url_is_verified_off_the_event_loop(tmp_path: Path) -> None:
    """Token checks run on the event loop (no thread hop per request) unless verifying may
    wait for the network: a key set URL's fetch blocks, so it goes to a pool thread."""
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = jwt.algorithms.RSAAlgorithm.to_jwk(private.public_key(), as_dict=True)
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "alg": "RS256"}]}))
    by_url = api_settings(tmp_path, api_jwt_secret=None, api_jwks_url="https://issuer/jwks")
    by_file = api_settings(tmp_path, api_jwt_secret=None, api_jwks_file=path)
    assert token_verifier(by_url).may_block
    assert not token_verifier(by_file).may_block
    assert not token_verifier(api_settings(tmp_path)).may_block  # a shared secret
