"""The Kafka security settings: refused when incomplete, and the same for both client
libraries (the real connections are in tests/integration/test_kafka_security.py)."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from app.settings import FraudscoreSettings
from sinks.kafka import client_options, confluent_options
from sinks.kafka_security import aiokafka_security, confluent_security
from tests.support.tls import make_tls_files

PASSWORD = "sasl-pw-0a1b2c"  # noqa: S105 - a test credential


def _settings(**values: Any) -> FraudscoreSettings:
    return FraudscoreSettings(**values)


def test_plaintext_adds_nothing() -> None:
    settings = _settings()
    assert confluent_security(settings) == {}
    assert aiokafka_security(settings) == {}


def test_sasl_ssl_reaches_both_libraries_and_every_client_factory(tmp_path: Path) -> None:
    ca = make_tls_files(tmp_path).ca  # openssl: a real CA file for the TLS context
    settings = _settings(
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-256",
        kafka_sasl_username="svc",
        kafka_sasl_password=SecretStr(PASSWORD),
        kafka_ssl_ca_file=ca,
    )
    expected = {
        "bootstrap.servers": settings.kafka_bootstrap,
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-256",
        "sasl.username": "svc",
        "sasl.password": PASSWORD,
        "ssl.ca.location": str(ca),
    }
    assert expected.items() <= confluent_options(settings).items()
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-256"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", PASSWORD)
    context = options["ssl_context"]
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "needs FRAUDSCORE_KAFKA_SASL_USERNAME"),
        (
            {
                "kafka_security_protocol": "SASL_PLAINTEXT",
                "kafka_sasl_mechanism": "PLAIN",
                "kafka_sasl_username": "svc",
                "kafka_sasl_password": PASSWORD,
                "environment": "production",
            },
            "in clear",
        ),
        ({"kafka_ssl_ca_file": "/etc/ca.pem"}, "SSL or SASL_SSL"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_cert_file": "/etc/client.pem"},
            "both FRAUDSCORE_KAFKA_SSL_CERT_FILE and FRAUDSCORE_KAFKA_SSL_KEY_FILE",
        ),
    ],
)
def test_a_security_set_up_that_cannot_work_is_refused(
    values: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError, match=message) as refused:
        _settings(**values)
    assert PASSWORD not in str(refused.value)


def test_the_sasl_password_comes_from_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text(PASSWORD + "\n")
    monkeypatch.setenv("FRAUDSCORE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("FRAUDSCORE_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("FRAUDSCORE_KAFKA_SASL_PASSWORD_FILE", str(tmp_path / "pw"))
    settings = FraudscoreSettings()
    assert confluent_security(settings)["sasl.password"] == PASSWORD
    assert PASSWORD not in repr(settings)
