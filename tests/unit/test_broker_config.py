"""Unit tests of the local broker's configuration and tool checks (no Java is started)."""

from __future__ import annotations

import shutil
import string
from pathlib import Path

import pytest
from typer.testing import CliRunner

from app.broker import (
    LocalBroker,
    SecuredListeners,
    parse_bootstrap,
    random_cluster_id,
    render_server_properties,
)
from app.cli.kafka import app as kafka_cli
from app.errors import BrokerError, MissingToolError
from app.settings import FraudscoreSettings


def _settings(tmp_path: Path, bootstrap: str = "127.0.0.1:9092") -> FraudscoreSettings:
    return FraudscoreSettings.model_validate(
        {
            "kafka_bootstrap": bootstrap,
            "var_dir": tmp_path / "var",
            "kafka_cache_dir": tmp_path / "cache",
        }
    )


def _properties(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if line and line[0] != "#")
    return {key: value for key, value in pairs}


@pytest.mark.parametrize(
    ("bootstrap", "expected"),
    [
        ("127.0.0.1:9092", ("127.0.0.1", 9092)),
        ("localhost:19092", ("localhost", 19092)),
        (" 127.0.0.1:29092 ", ("127.0.0.1", 29092)),
        ("PLAINTEXT://127.0.0.1:9094", ("127.0.0.1", 9094)),
    ],
)
def test_parse_bootstrap_accepts_one_local_address(
    bootstrap: str, expected: tuple[str, int]
) -> None:
    assert parse_bootstrap(bootstrap) == expected


@pytest.mark.parametrize(
    ("bootstrap", "message"),
    [
        ("10.0.0.5:9092", "only listens on 127.0.0.1"),
        ("127.0.0.1:9092,127.0.0.1:9093", "single node"),
        ("127.0.0.1", "only listens on 127.0.0.1"),
        ("127.0.0.1:http", "Bad port"),
        ("127.0.0.1:65535", r"port \+ 1"),
        ("", "single node"),
    ],
)
def test_parse_bootstrap_rejects_what_a_local_broker_cannot_serve(
    bootstrap: str, message: str
) -> None:
    with pytest.raises(BrokerError, match=message):
        parse_bootstrap(bootstrap)


def test_secured_listeners_add_sasl_ssl_and_mutual_tls_beside_plaintext(tmp_path: Path) -> None:
    secured = SecuredListeners(tmp_path / "ks.pem", tmp_path / "ca.pem", {"svc": "pw"})
    props = _properties(render_server_properties(19092, tmp_path / "data", secured))
    assert props["listeners"] == (
        "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094,MTLS://127.0.0.1:19095,"
        "CONTROLLER://127.0.0.1:19093"
    )
    assert props["inter.broker.listener.name"] == "PLAINTEXT"  # the readiness probe's too
    assert "MTLS:SSL" in props["listener.security.protocol.map"].split(",")
    assert props["listener.name.mtls.ssl.client.auth"] == "required"
    assert 'user_svc="pw"' in props["listener.name.sasl_ssl.plain.sasl.jaas.config"]
    assert props["ssl.keystore.location"] == str(tmp_path / "ks.pem")
    assert secured.scram_arguments() == ["--add-scram", "SCRAM-SHA-512=[name=svc,password=pw]"]


def test_cluster_ids_look_like_kafkas_random_uuids() -> None:
    ids = {random_cluster_id() for _ in range(200)}
    assert len(ids) == 200
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert set(cluster_id) <= set(string.ascii_letters + string.digits + "-_")


def test_server_properties_describe_a_single_node_kraft_broker(tmp_path: Path) -> None:
    props = _properties(render_server_properties(19092, tmp_path / "data"))
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["controller.listener.names"] == "CONTROLLER"
    assert props["log.dirs"] == str(tmp_path / "data")
    for key in (
        "offsets.topic.replication.factor",
        "transaction.state.log.replication.factor",
        "transaction.state.log.min.isr",
    ):
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["auto.create.topics.enable"] == "false"
    assert int(props["transaction.max.timeout.ms"]) >= 60_000


def test_write_config_uses_the_bootstrap_port_and_the_var_dir(tmp_path: Path) -> None:
    broker = LocalBroker(_settings(tmp_path, "localhost:29092"))
    path = broker.write_config()
    kafka_dir = (tmp_path / "var" / "kafka").resolve()
    assert path == kafka_dir / "server.properties"
    props = _properties(path.read_text())
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29092,CONTROLLER://127.0.0.1:29093"
    assert props["log.dirs"] == str(kafka_dir / "data")
    assert "log4j.rootLogger=INFO" in (kafka_dir / "log4j.properties").read_text()


def test_fetch_without_java_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")
    with pytest.raises(MissingToolError, match="`java` is not on PATH") as raised:
        LocalBroker(_settings(tmp_path)).fetch()
    assert "apt-get install openjdk-17-jre-headless maven" in str(raised.value)


def test_fetch_without_maven_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = shutil.which("java")
    assert java is not None, "Java is needed to run the tests"
    only_java = tmp_path / "bin"
    only_java.mkdir()
    (only_java / "java").symlink_to(java)
    monkeypatch.setenv("PATH", str(only_java))
    with pytest.raises(MissingToolError, match="`mvn` is not on PATH") as raised:
        LocalBroker(_settings(tmp_path)).fetch()
    assert "apt-get install" in str(raised.value)
    assert not (tmp_path / "cache").exists()


def test_a_failed_maven_fetch_reports_its_output_and_leaves_no_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    java = shutil.which("java")
    assert java is not None, "Java is needed to run the tests"
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(java)
    fake_mvn = bin_dir / "mvn"
    fake_mvn.write_text("#!/bin/sh\necho '[ERROR] Could not resolve dependencies'\nexit 1\n")
    fake_mvn.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    broker = LocalBroker(_settings(tmp_path))
    with pytest.raises(BrokerError, match="Could not resolve dependencies"):
        broker.fetch()
    assert not broker.is_fetched
    assert list(broker.version_dir.iterdir()) == []


def test_up_without_java_fails_before_touching_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "")
    broker = LocalBroker(_settings(tmp_path))
    with pytest.raises(MissingToolError):
        broker.up(timeout_s=5)
    assert not broker.pid_path.exists()
    assert not broker.status().running


def test_cli_turns_a_broker_error_into_a_red_line_and_exit_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path, "10.0.0.5:9092")
    monkeypatch.setattr("app.cli.kafka.get_settings", lambda: settings)
    result = CliRunner().invoke(kafka_cli, ["up"])
    assert result.exit_code == 1
    assert "error: The local broker only listens on 127.0.0.1" in result.stderr
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
