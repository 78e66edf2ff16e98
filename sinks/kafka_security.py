"""TLS and SASL for every Kafka client of the service, from the settings, in one place.

The service builds clients with two libraries (librdkafka through confluent-kafka on the data
path, aiokafka for admin, bulk and follower clients); :func:`confluent_security` and
:func:`aiokafka_security` translate the same ``kafka_*`` settings into each one's options, and
``sinks.kafka.client_options`` / ``confluent_options`` add them to every client they configure.
The settings check that the combination is complete (``FraudscoreSettings``). Passwords leave
the ``SecretStr`` only here, into the client's configuration; neither library logs them.
"""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING, Any

from aiokafka.helpers import create_ssl_context

if TYPE_CHECKING:
    from app.settings import FraudscoreSettings


# the same options under each library's names
_CONFLUENT_NAMES = {
    "protocol": "security.protocol",
    "mechanism": "sasl.mechanism",
    "username": "sasl.username",
    "password": "sasl.password",
}
_AIOKAFKA_NAMES = {
    "protocol": "security_protocol",
    "mechanism": "sasl_mechanism",
    "username": "sasl_plain_username",
    "password": "sasl_plain_password",
}


def _uses_tls(settings: FraudscoreSettings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def _protocol_and_sasl(settings: FraudscoreSettings) -> dict[str, Any]:
    """The protocol (unless PLAINTEXT) and the SASL options, under neutral names."""
    protocol = settings.kafka_security_protocol
    options: dict[str, Any] = {} if protocol == "PLAINTEXT" else {"protocol": protocol}
    if protocol.startswith("SASL_"):
        password = settings.kafka_sasl_password
        options["mechanism"] = settings.kafka_sasl_mechanism
        options["username"] = settings.kafka_sasl_username
        options["password"] = "" if password is None else password.get_secret_value()
    return options


def confluent_security(settings: FraudscoreSettings) -> dict[str, Any]:
    """librdkafka's security options (empty for PLAINTEXT)."""
    options = {_CONFLUENT_NAMES[k]: v for k, v in _protocol_and_sasl(settings).items()}
    if _uses_tls(settings):
        files = {
            "ssl.ca.location": settings.kafka_ssl_ca_file,
            "ssl.certificate.location": settings.kafka_ssl_cert_file,
            "ssl.key.location": settings.kafka_ssl_key_file,
        }
        options.update({name: str(path) for name, path in files.items() if path is not None})
        if settings.kafka_ssl_key_password is not None:
            options["ssl.key.password"] = settings.kafka_ssl_key_password.get_secret_value()
    return options


def aiokafka_security(settings: FraudscoreSettings) -> dict[str, Any]:
    """aiokafka's security options (empty for PLAINTEXT)."""
    options = {_AIOKAFKA_NAMES[k]: v for k, v in _protocol_and_sasl(settings).items()}
    if _uses_tls(settings):
        options["ssl_context"] = _ssl_context(settings)
    return options


def _ssl_context(settings: FraudscoreSettings) -> ssl.SSLContext:
    """Verifies the broker's certificate and host name (the CA file or the system's store)."""
    key_password = settings.kafka_ssl_key_password
    context: ssl.SSLContext = create_ssl_context(
        cafile=settings.kafka_ssl_ca_file,
        certfile=settings.kafka_ssl_cert_file,
        keyfile=settings.kafka_ssl_key_file,
        password=None if key_password is None else key_password.get_secret_value(),
    )
    return context
