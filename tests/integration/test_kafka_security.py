"""Every Kafka client of the service over TLS and SASL, on a real broker with secured listeners.

This module starts a broker of its own (``app.broker.SecuredListeners``): SASL_SSL with SCRAM-
SHA-512 and PLAIN users, and mutual TLS, with a CA and certificates made by ``openssl`` for the
test (8 s to start at load 5 on the 2-core VM, 16-32 s at load 10+; the rest of the default run
adds 3-10 s). The aiokafka clients and the API's admin client (librdkafka) connect with SCRAM,
PLAIN and client certificates; wrong credentials fail with an authentication error, and no
password shows in a log. With ``--soak`` (16 s more at load 5), a worker process decides
transactions over SCRAM, and one with a wrong password stops at once saying why.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiokafka.errors import KafkaError
from confluent_kafka import KafkaException
from pydantic import SecretStr

from app.broker import LocalBroker, SecuredListeners
from app.loadgen import produce
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from sinks.kafka import ensure_topics, group_admin
from tests.support.kafka import read_topic
from tests.support.settings import isolated_settings
from tests.support.tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration

USER, PASSWORD = "fraudscore-svc", "scram-pw-7c1d9e0a4b"
WRONG_PASSWORD = "not-the-pw-5e6f7a8b"  # noqa: S105 - a test credential


@dataclass(frozen=True)
class SecuredBroker:
    port: int
    tls: TlsFiles

    @property
    def sasl_ssl(self) -> str:
        return f"127.0.0.1:{self.port + SecuredListeners.SASL_SSL_OFFSET}"

    @property
    def mtls(self) -> str:
        return f"127.0.0.1:{self.port + SecuredListeners.MTLS_OFFSET}"


def _free_port_run(length: int) -> int:
    """A port p with p .. p + length - 1 free (the broker's plaintext, controller, secured)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            first = int(probe.getsockname()[1])
        if first + length > 65535:
            continue
        try:
            for port in range(first, first + length):
                with socket.socket() as sock:
                    sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return first


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredBroker]:
    root = tmp_path_factory.mktemp("secured-kafka")
    tls = make_tls_files(root / "tls")
    port = _free_port_run(4)
    settings = FraudscoreSettings(
        kafka_bootstrap=f"127.0.0.1:{port}", var_dir=root / "var", kafka_heap="384m"
    )
    broker = LocalBroker(settings, SecuredListeners(tls.broker_keystore, tls.ca, {USER: PASSWORD}))
    broker.up()
    try:
        yield SecuredBroker(port, tls)
    finally:
        broker.down()


def _sasl(
    secured: SecuredBroker, unique: str, var_dir: Path, mechanism: str, password: str
) -> FraudscoreSettings:
    return isolated_settings(
        secured.sasl_ssl,
        unique,
        var_dir,
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username=USER,
        kafka_sasl_password=SecretStr(password),
        kafka_ssl_ca_file=secured.tls.ca,
    )


def _mtls(secured: SecuredBroker, unique: str, var_dir: Path, **client: Any) -> FraudscoreSettings:
    return isolated_settings(
        secured.mtls,
        unique,
        var_dir,
        kafka_security_protocol="SSL",
        kafka_ssl_ca_file=secured.tls.ca,
        **client,
    )


@pytest.fixture
def soak(request: pytest.FixtureRequest) -> None:
    if not request.config.getoption("--soak"):
        pytest.skip("worker processes on the secured broker are part of --soak")


def _topics_seen_by_librdkafka(settings: FraudscoreSettings, timeout_s: float = 5) -> set[str]:
    """The topics the API's admin client (librdkafka) lists through the secured listener."""
    return set(group_admin(settings).list_topics(timeout=timeout_s).topics)


async def test_scram_clients_of_both_libraries_connect_over_sasl_ssl(
    secured: SecuredBroker, unique: str, tmp_path: Path
) -> None:
    settings = _sasl(secured, unique, tmp_path / "var", "SCRAM-SHA-512", PASSWORD)
    await ensure_topics(settings)  # aiokafka
    sent = await produce(settings, count=5, cards=2, seed=3, rate=0)  # aiokafka, idempotent
    assert sent.valid == 5
    assert settings.input_topic in _topics_seen_by_librdkafka(settings)


@pytest.mark.usefixtures("soak")
async def test_a_worker_decides_over_sasl_ssl_with_scram(
    secured: SecuredBroker, unique: str, tmp_path: Path
) -> None:
    settings = _sasl(secured, unique, tmp_path / "var", "SCRAM-SHA-512", PASSWORD)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        sent = await produce(settings, count=50, cards=10, seed=3, rate=0)
        decisions = await read_topic(settings, settings.decisions_topic, expect=50)
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, worker.log_tail()
    assert sent.valid == len(decisions) == 50
    assert settings.input_topic in _topics_seen_by_librdkafka(settings)
    assert PASSWORD not in worker.log_path.read_text()


async def test_plain_users_connect_over_sasl_ssl(
    secured: SecuredBroker, unique: str, tmp_path: Path
) -> None:
    settings = _sasl(secured, unique, tmp_path / "var", "PLAIN", PASSWORD)
    await ensure_topics(settings)  # aiokafka
    assert settings.changelog_topic in _topics_seen_by_librdkafka(settings)


async def test_mutual_tls_needs_the_client_certificate(
    secured: SecuredBroker, unique: str, tmp_path: Path
) -> None:
    tls = secured.tls
    with_cert = _mtls(
        secured,
        unique,
        tmp_path / "var",
        kafka_ssl_cert_file=tls.client_cert,
        kafka_ssl_key_file=tls.client_key,
    )
    await ensure_topics(with_cert)  # aiokafka
    assert with_cert.input_topic in _topics_seen_by_librdkafka(with_cert)

    without_cert = _mtls(secured, f"{unique}-anon", tmp_path / "var")
    with pytest.raises(KafkaError):
        await ensure_topics(without_cert)


async def test_a_wrong_password_fails_with_an_authentication_error_and_is_never_logged(
    secured: SecuredBroker, unique: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _sasl(secured, unique, tmp_path / "var", "SCRAM-SHA-512", WRONG_PASSWORD)
    caplog.set_level(logging.DEBUG)
    with pytest.raises(KafkaError):
        await ensure_topics(settings)  # aiokafka
    assert "invalid credentials with SASL mechanism SCRAM-SHA-512" in caplog.text
    with pytest.raises(KafkaException):  # librdkafka: a metadata failure, reason in its log
        _topics_seen_by_librdkafka(settings, timeout_s=1)
    assert WRONG_PASSWORD not in caplog.text


@pytest.mark.usefixtures("soak")
async def test_a_worker_with_a_wrong_password_stops_saying_why(
    secured: SecuredBroker, unique: str, tmp_path: Path
) -> None:
    settings = _sasl(secured, unique, tmp_path / "var", "SCRAM-SHA-512", WRONG_PASSWORD)
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    exit_code = worker.process.wait(60)
    worker.stop()
    log = worker.log_path.read_text()
    assert exit_code != 0
    assert "invalid credentials" in log, log
    assert WRONG_PASSWORD not in log
