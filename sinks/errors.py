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


class AuditQueryError(AuditError):
    """A question to the audit table cannot be answered as asked: a snapshot or tag it does
    not have, more than one "as of", a query DuckDB refuses. Ask differently."""


class AuditSnapshotError(AuditQueryError):
    """The snapshot or tag a question is asked as of is not in the table (expired, never
    made)."""
