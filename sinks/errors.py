"""Errors of the I/O adapters (see the tree in ``features/errors.py``)."""

from __future__ import annotations

from features.errors import FraudscoreError


class TopicError(FraudscoreError):
    """A topic is missing or does not have the shape the worker needs."""


class StateError(FraudscoreError):
    """Local state cannot be used as it is."""


class DatasetError(FraudscoreError):
    """A dataset directory is missing a file or cannot be read."""


class AuditError(FraudscoreError):
    """The audit table cannot be written or read as asked."""
