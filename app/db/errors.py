"""Errors of the registry database (see the tree in ``features/errors.py``)."""

from __future__ import annotations

from features.errors import FraudscoreError


class DatabaseError(FraudscoreError):
    """The registry database cannot be reached, or its schema is not this build's."""


class RegistryError(FraudscoreError):
    """A registry change is not allowed: unknown version, or a state it cannot move from."""


class UnknownVersionError(RegistryError):
    """No model or policy of that version is in the registry."""
