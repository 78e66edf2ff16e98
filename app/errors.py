"""Errors of the application layer (see the tree in ``features/errors.py``)."""

from __future__ import annotations

from features.errors import FraudscoreError

__all__ = [
    "AuthorizerError",
    "BrokerError",
    "FraudscoreError",
    "HealthError",
    "MissingToolError",
    "ReproductionError",
    "SavepointError",
    "SettingsError",
]


class BrokerError(FraudscoreError):
    """The local Kafka broker could not be fetched, started or stopped."""


class MissingToolError(BrokerError):
    """A program the local broker needs (java, mvn) is not on PATH."""


class SavepointError(FraudscoreError):
    """A savepoint cannot be taken, read or imported as asked."""


class ReproductionError(FraudscoreError):
    """A recorded decision cannot be recomputed: its model, policy or features are not here."""


class SettingsError(FraudscoreError):
    """The environment does not make a usable settings object (e.g. an unreadable secret
    file)."""


class AuthorizerError(FraudscoreError):
    """The authorizer cannot send what it was given (e.g. an invalid transaction)."""


class HealthError(FraudscoreError):
    """A health probe failed: the broker or an HTTP endpoint does not answer as it should."""
