"""Errors of the REST API (see the tree in ``features/errors.py``)::

    FraudscoreError
    └── ApiError                    a request cannot be served as asked
        ├── AuthenticationError     no bearer token, or one that is not valid here
        ├── PermissionDeniedError   a valid token without a role the endpoint needs
        ├── NotFoundError           the transaction, merchant, card or version is not known
        ├── NotOwnerError           a worker asked for a partition it does not own (internal)
        ├── RejectedInputError      well-formed input the domain rules refuse (e.g. a PAN)
        ├── PayloadTooLargeError    a request body over FRAUDSCORE_API_MAX_BODY_BYTES
        ├── UnavailableError        a backend (registry database, broker, JWKS) is down
        └── ApiConfigError          the API's own settings cannot work (raised at start)

Which HTTP status each of these, and the other packages' errors, become is decided in one
place only: :mod:`app.api.handlers`.
"""

from __future__ import annotations

from features.errors import FraudscoreError


class ApiError(FraudscoreError):
    """A request cannot be served as asked."""


class AuthenticationError(ApiError):
    """No bearer token, or one that is expired, badly signed or meant for someone else."""


class PermissionDeniedError(ApiError):
    """The token is valid but has none of the roles the endpoint needs."""


class NotFoundError(ApiError):
    """What the request names does not exist (yet)."""


class NotOwnerError(ApiError):
    """A worker was asked about a partition that is not (or no longer) assigned to it: the
    caller's view of the group's assignment is stale; refresh it and ask again."""


class RejectedInputError(ApiError):
    """Input that passed the schema but that a domain rule refuses; ``code`` says which rule
    (the reason codes of :class:`features.validation.Reason`)."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


class PayloadTooLargeError(ApiError):
    """The request body is larger than the configured limit."""


class UnavailableError(ApiError):
    """A backend the request needs is not reachable now: retry later."""


class ApiConfigError(ApiError):
    """The API's settings cannot work (no key, a placeholder secret outside dev, ...)."""
