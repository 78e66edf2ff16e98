"""Every error response of the API, in one shape, from one place.

::

    {"error": {"code": "not_found", "message": "...", "request_id": "...", "details": [...]}}

``code`` is stable (clients branch on it), ``message`` is for people, ``request_id`` is the
``X-Request-ID`` of the request (sent back as a header too), ``details`` lists the fields a
validation error is about. Exceptions become responses here and nowhere else:
:data:`_MAPPING` says which status and code each error class gets (the most specific class
wins), :func:`install` registers the handlers. No error response echoes the request's input,
and every text in one has its card numbers masked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from app.api.errors import (
    AuthenticationError,
    NotFoundError,
    NotOwnerError,
    PayloadTooLargeError,
    PermissionDeniedError,
    RejectedInputError,
    UnavailableError,
)
from app.db.errors import DatabaseError, RegistryError, UnknownVersionError
from app.errors import ReproductionError
from features.errors import FraudscoreError
from features.pan import mask_text
from models.errors import ArtefactError
from sinks.errors import AuditError, AuditQueryError, AuditSnapshotError

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"

# error class -> (HTTP status, stable code); looked up along the class's MRO
_MAPPING: dict[type[Exception], tuple[int, str]] = {
    AuthenticationError: (401, "unauthenticated"),
    PermissionDeniedError: (403, "forbidden"),
    NotFoundError: (404, "not_found"),
    UnknownVersionError: (404, "not_found"),
    NotOwnerError: (421, "not_owner"),  # a worker's internal route: Misdirected Request
    RegistryError: (409, "conflict"),  # a change the registry's rules refuse
    ArtefactError: (409, "conflict"),  # a registered model's files changed
    PayloadTooLargeError: (413, "payload_too_large"),
    RejectedInputError: (422, "invalid_input"),
    UnavailableError: (503, "unavailable"),
    DatabaseError: (503, "unavailable"),
    AuditSnapshotError: (404, "not_found"),  # an as-of snapshot or tag the table lacks
    AuditQueryError: (422, "invalid_query"),  # an as-of or a query the table cannot answer
    ReproductionError: (409, "cannot_reproduce"),  # its model, policy or features are not here
    AuditError: (503, "unavailable"),
}


# codes of the errors Starlette raises itself that differ from its phrase, or that we share
_HTTP_CODES = {413: "payload_too_large", 422: "invalid_request"}


class ErrorDetail(BaseModel):
    loc: list[str | int]
    message: str
    type: str


class ErrorInfo(BaseModel):
    code: str
    message: str
    request_id: str | None
    details: list[ErrorDetail] | None = None


class ErrorBody(BaseModel):
    error: ErrorInfo


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": ErrorBody, "description": HTTPStatus(status).phrase}
        for status in statuses
    }


# the error responses to declare in OpenAPI, by kind of endpoint
PUBLIC_RESPONSES = documented(500, 504)  # 504: past api_request_timeout_ms (middleware)
PROTECTED_RESPONSES = documented(401, 403, 422, 500, 503, 504)
BODY_RESPONSES = documented(400, 413)  # 400: a body that is not even text


def error_response(
    status: int,
    code: str,
    message: str,
    request_id: str | None,
    *,
    details: Sequence[ErrorDetail] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """The one error shape (used by the handlers, and by the middleware that answers before
    the application runs)."""
    body = ErrorBody(
        error=ErrorInfo(
            code=code,
            message=mask_text(message),
            request_id=request_id,
            details=None if details is None else list(details),
        )
    )
    if request_id is not None:
        headers = {**(headers or {}), REQUEST_ID_HEADER: request_id}
    return JSONResponse(body.model_dump(mode="json"), status, headers=headers)


def request_id_of(request: Request) -> str | None:
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return request_id


def _status_of(exc: Exception) -> tuple[int, str]:
    for cls in type(exc).__mro__:
        if cls in _MAPPING:
            return _MAPPING[cls]
    return 500, "internal"


async def _fraudscore_error(request: Request, exc: Exception) -> JSONResponse:
    status, code = _status_of(exc)
    if isinstance(exc, RejectedInputError):
        code = exc.code
    if status >= 500:
        log.warning("%s %s: %s", request.method, request.url.path, mask_text(str(exc)))
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return error_response(status, code, str(exc), request_id_of(request), headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        ErrorDetail(
            loc=[mask_text(part) if isinstance(part, str) else part for part in e["loc"]],
            message=mask_text(e["msg"]),
            type=e["type"],
        )
        for e in exc.errors()
    ]
    where = ", ".join(".".join(str(p) for p in d.loc) for d in details)
    message = f"the request is not valid: {where}"
    return error_response(422, "invalid_request", message, request_id_of(request), details=details)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own: no such route (404), method not allowed (405), ..."""
    assert isinstance(exc, HTTPException)
    phrase = HTTPStatus(exc.status_code).phrase
    code = _HTTP_CODES.get(exc.status_code) or phrase.lower().replace(" ", "_")
    message = exc.detail if isinstance(exc.detail, str) else phrase
    return error_response(
        exc.status_code, code, message, request_id_of(request), headers=exc.headers
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal", "internal error", request_id_of(request))


def install(app: FastAPI) -> None:
    """Register the handlers that turn every exception into the error shape."""
    app.add_exception_handler(FraudscoreError, _fraudscore_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)
