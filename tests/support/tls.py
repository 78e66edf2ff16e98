"""Throwaway TLS material for a test broker, made with the ``openssl`` command line: a CA, a
certificate for 127.0.0.1 signed by it (the broker's), and a client certificate for mutual
TLS. EC P-256 keys, unencrypted PKCS#8 PEM (what Kafka's PEM key store reads)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]


@dataclass(frozen=True)
class TlsFiles:
    ca: Path  # the CA certificate: the clients' and the broker's trust store
    broker_keystore: Path  # the broker's key, then its certificate
    client_cert: Path
    client_key: Path


def _openssl(directory: Path, *args: str) -> None:
    subprocess.run(["openssl", *args], cwd=directory, check=True, capture_output=True, timeout=60)


def _signed(directory: Path, name: str, subject: str, extensions: str) -> None:
    """``name``.key and ``name``.pem, signed by the CA in ``directory``."""
    csr = ["-keyout", f"{name}.key", "-out", f"{name}.csr", "-subj", subject]
    _openssl(directory, "req", *_KEY, *csr)
    (directory / f"{name}.ext").write_text(extensions)
    _openssl(
        directory,
        "x509",
        "-req",
        "-in",
        f"{name}.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        f"{name}.ext",
        "-out",
        f"{name}.pem",
    )


def make_tls_files(directory: Path) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    _openssl(
        directory,
        "req",
        "-x509",
        *_KEY,
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=fraudscore test CA",
    )
    _signed(directory, "broker", "/CN=127.0.0.1", "subjectAltName=IP:127.0.0.1\n")
    _signed(directory, "client", "/CN=fraudscore-client", "extendedKeyUsage=clientAuth\n")
    keystore = directory / "broker-keystore.pem"
    keystore.write_text(
        (directory / "broker.key").read_text() + (directory / "broker.pem").read_text()
    )
    return TlsFiles(
        ca=directory / "ca.pem",
        broker_keystore=keystore,
        client_cert=directory / "client.pem",
        client_key=directory / "client.key",
    )
