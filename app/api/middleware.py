"""Pure ASGI middleware: the request id, the request body size limit and the deadline.

:class:`RequestIdMiddleware` gives every request an id (the client's ``X-Request-ID`` if it
is a short token, else a new one), keeps it in the request state for the error responses and
sends it back as a header. :class:`BodyLimitMiddleware` refuses a body larger than the limit:
at once when ``Content-Length`` says so, else (a chunked body) as soon as the bytes read pass
it, so an oversized body is never held in memory. :class:`DeadlineMiddleware` answers 504
when the application has not started its response within the deadline; what it was doing
goes on unobserved (a request handled in a thread cannot be stopped from outside: the audit
SQL bounds its DuckDB query itself) and its late answer is dropped.
"""

from __future__ import annotations

import asyncio
import re
import uuid

from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api.handlers import REQUEST_ID_HEADER, error_response

_CLIENT_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = _header(scope, b"x-request-id")
        request_id = given if given and _CLIENT_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        await self.app(scope, receive, send_with_id)


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            response = error_response(
                413, "payload_too_large", self._message, scope.get("state", {}).get("request_id")
            )
            await response(scope, receive, send)
            return
        await self.app(scope, self._counting(receive), send)

    @property
    def _message(self) -> str:
        return f"the request body is larger than {self.max_bytes} bytes"

    def _counting(self, receive: Receive) -> Receive:
        read = 0

        async def counted() -> Message:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > self.max_bytes:
                    # FastAPI passes an HTTPException raised while it reads the body through
                    # to the handlers (anything else would become a 400)
                    raise HTTPException(413, self._message)
            return message

        return counted


class DeadlineMiddleware:
    def __init__(self, app: ASGIApp, timeout_s: float) -> None:
        self.app = app
        self.timeout_s = timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = abandoned = False

        async def guarded(message: Message) -> None:
            nonlocal started
            if abandoned:
                return  # the late answer of a request already answered 504
            started = started or message["type"] == "http.response.start"
            await send(message)

        task = asyncio.ensure_future(self.app(scope, receive, guarded))
        done, _ = await asyncio.wait({task}, timeout=self.timeout_s)
        if done or started:  # finished, or already answering: let it end its response
            await task
            return
        abandoned = True
        task.add_done_callback(_retrieve)
        task.cancel()
        message = f"the request took longer than its deadline of {self.timeout_s * 1000:g} ms"
        request_id = scope.get("state", {}).get("request_id")
        await error_response(504, "timeout", message, request_id)(scope, receive, send)


def _retrieve(task: asyncio.Future[None]) -> None:
    """Collect an abandoned request's outcome: it has been answered 504 already."""
    if not task.cancelled():
        task.exception()


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
