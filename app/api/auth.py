"""Who is calling: bearer JWTs, verified against the configured issuer, audience and keys.

Keys (exactly one source; ``FRAUDSCORE_API_...``):

- ``JWKS_URL``: the issuer's JSON Web Key Set, fetched and cached by PyJWT's ``PyJWKClient``;
- ``JWKS_FILE``: the same, from a file;
- ``JWT_SECRET``: a shared HS256 secret, for development and tests;
- none of them, in the ``dev`` environment only: the built-in development secret
  (:data:`DEV_SECRET`), so that ``fraudscore api token`` can mint tokens for the demo.

Outside ``dev`` a missing key, a placeholder secret or one shorter than 32 bytes is refused
at start (:class:`~app.api.errors.ApiConfigError`). The algorithms a token may use follow from
the key (HS256 for a secret, the key's own algorithm for a JWK, and JWKS keys must be
asymmetric), never from the token, so a public key cannot be used as an HMAC secret.

A token must carry ``exp``, ``iss``, ``aud`` and ``sub``, and its ``roles`` claim (a list of
strings) grants :class:`Role` s: ``service`` (feature lookups), ``analyst`` (audit, labels)
and ``admin`` (models, policies). Unknown roles are ignored. ``require(...)`` is the FastAPI
dependency that lets through tokens with at least one of the roles given.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol

import jwt
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from app.api.errors import (
    ApiConfigError,
    AuthenticationError,
    PermissionDeniedError,
    UnavailableError,
)
from app.settings import FraudscoreSettings

DEV_SECRET = "fraudscore-development-secret-never-use-in-production"  # noqa: S105
_PLACEHOLDERS = frozenset({DEV_SECRET, "changethis", "changeme", "change-me", "secret"})
MIN_SECRET_BYTES = 32
MAX_SUBJECT_CHARS = 200  # the admin log's actor column
_ASYMMETRIC = frozenset({"RSA", "EC", "OKP"})
_REQUIRED_CLAIMS = ["exp", "iss", "aud", "sub"]


class Role(StrEnum):
    SERVICE = "service"  # feature lookups at authorization time
    ANALYST = "analyst"  # decisions, audit trail, labels
    ADMIN = "admin"  # model promotion, policy changes


@dataclass(frozen=True, slots=True)
class Principal:
    """The caller a valid token names."""

    subject: str
    roles: frozenset[Role]


class KeySource(Protocol):
    def key_for(self, token: str) -> tuple[Any, list[str]]:
        """The key that verifies ``token`` and the algorithms allowed with it."""
        ...


@dataclass(frozen=True, slots=True)
class SharedSecret:
    secret: bytes

    def key_for(self, token: str) -> tuple[Any, list[str]]:
        return self.secret, ["HS256"]


@dataclass(frozen=True, slots=True)
class KeySet:
    """A JSON Web Key Set at hand (from a file)."""

    keys: jwt.PyJWKSet

    def key_for(self, token: str) -> tuple[Any, list[str]]:
        kid = jwt.get_unverified_header(token).get("kid")
        candidates = [k for k in self.keys.keys if kid is None or k.key_id == kid]
        if len(candidates) != 1:
            raise jwt.InvalidTokenError(f"no single key of the key set matches kid {kid!r}")
        return _verifying(candidates[0])


@dataclass(frozen=True, slots=True)
class RemoteKeySet:
    """The issuer's JSON Web Key Set at a URL, cached (blocking fetch: call from a thread)."""

    client: jwt.PyJWKClient

    def key_for(self, token: str) -> tuple[Any, list[str]]:
        try:
            return _verifying(self.client.get_signing_key_from_jwt(token))
        except jwt.PyJWKClientConnectionError as exc:
            raise UnavailableError(f"cannot fetch the issuer's key set: {exc}") from exc


def _verifying(key: jwt.PyJWK) -> tuple[Any, list[str]]:
    if key.key_type not in _ASYMMETRIC or key.algorithm_name.startswith("HS"):
        raise jwt.InvalidTokenError("the key set's keys must be asymmetric (RSA, EC or OKP)")
    return key.key, [key.algorithm_name]


class VerifiedTokens:
    """Tokens verified recently, with their principals. A service sends the same bearer token
    with every lookup, and verifying it again each time was ~15 % of a card lookup's CPU in
    the worker (py-spy, docs/BENCHMARKS.md). An entry is trusted until the token's ``exp``
    (with the leeway) or ``max_age_s`` after its verification, whichever is first, so a key
    taken out of a key set stops admitting its tokens within ``max_age_s``; at most ``size``
    entries, the least recently used dropped first. Thread-safe."""

    def __init__(self, size: int = 1024, max_age_s: float = 60.0) -> None:
        self.size, self.max_age_s = size, max_age_s
        self._entries: OrderedDict[str, tuple[Principal, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, token: str, now: float) -> Principal | None:
        with self._lock:
            entry = self._entries.get(token)
            if entry is None:
                return None
            if now >= entry[1]:
                del self._entries[token]
                return None
            self._entries.move_to_end(token)
            return entry[0]

    def put(self, token: str, principal: Principal, expires: float, now: float) -> None:
        with self._lock:
            self._entries[token] = (principal, min(expires, now + self.max_age_s))
            self._entries.move_to_end(token)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)


@dataclass(frozen=True, slots=True)
class TokenVerifier:
    keys: KeySource
    issuer: str
    audience: str
    leeway_s: int
    secret: bytes | None  # the HS256 secret when that is the key: dev tokens can be minted
    dev_key: bool  # the built-in development secret is in use
    verified: VerifiedTokens = field(default_factory=VerifiedTokens, compare=False, repr=False)

    @property
    def may_block(self) -> bool:
        """Whether verifying may wait for the network (a key set URL's fetch)."""
        return isinstance(self.keys, RemoteKeySet)

    def known(self, token: str) -> Principal | None:
        """The principal of ``token`` if it was verified recently and is still trusted."""
        return self.verified.get(token, time.time())

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; :class:`AuthenticationError` says what is wrong."""
        now = time.time()
        known = self.verified.get(token, now)
        if known is not None:
            return known
        try:
            key, algorithms = self.keys.key_for(token)
            claims = jwt.decode(
                token,
                key,
                algorithms=algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.InvalidTokenError as exc:
            raise AuthenticationError(f"invalid bearer token: {exc}") from None
        principal = _principal(claims)
        self.verified.put(token, principal, float(claims["exp"]) + self.leeway_s, now)
        return principal


def _principal(claims: dict[str, Any]) -> Principal:
    subject, roles = claims["sub"], claims.get("roles", [])
    if not isinstance(subject, str) or not 0 < len(subject) <= MAX_SUBJECT_CHARS:
        raise AuthenticationError(f"the token's sub must be 1-{MAX_SUBJECT_CHARS} characters")
    if not isinstance(roles, list):
        raise AuthenticationError("the token's roles claim must be a list of strings")
    known = {role.value for role in Role}
    return Principal(subject, frozenset(Role(r) for r in roles if r in known))


def token_verifier(settings: FraudscoreSettings) -> TokenVerifier:
    """The verifier the settings configure; :class:`ApiConfigError` if they cannot work."""
    sources = [
        s
        for s in (settings.api_jwt_secret, settings.api_jwks_file, settings.api_jwks_url)
        if s is not None
    ]
    if len(sources) > 1:
        raise ApiConfigError(
            "set only one of FRAUDSCORE_API_JWT_SECRET, FRAUDSCORE_API_JWKS_FILE and "
            "FRAUDSCORE_API_JWKS_URL"
        )
    keys: KeySource
    secret: bytes | None = None
    if settings.api_jwks_url is not None:
        keys = RemoteKeySet(jwt.PyJWKClient(settings.api_jwks_url, cache_keys=True))
    elif settings.api_jwks_file is not None:
        keys = KeySet(_read_key_set(settings.api_jwks_file))
    else:
        secret = _secret(settings)
        keys = SharedSecret(secret)
    return TokenVerifier(
        keys=keys,
        issuer=settings.api_jwt_issuer,
        audience=settings.api_jwt_audience,
        leeway_s=settings.api_jwt_leeway_s,
        secret=secret,
        dev_key=secret == DEV_SECRET.encode(),
    )


def _secret(settings: FraudscoreSettings) -> bytes:
    dev = settings.environment == "dev"
    if settings.api_jwt_secret is None:
        if not dev:
            raise ApiConfigError(
                f"no token key configured for the {settings.environment} environment: set "
                "FRAUDSCORE_API_JWKS_URL or FRAUDSCORE_API_JWKS_FILE (or, for development, "
                "FRAUDSCORE_API_JWT_SECRET)"
            )
        return DEV_SECRET.encode()
    secret = settings.api_jwt_secret.get_secret_value()
    if not dev and (secret in _PLACEHOLDERS or len(secret.encode()) < MIN_SECRET_BYTES):
        raise ApiConfigError(
            f"FRAUDSCORE_API_JWT_SECRET is a placeholder or shorter than {MIN_SECRET_BYTES} "
            f"bytes: refused in the {settings.environment} environment (e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`)"
        )
    return secret.encode()


def _read_key_set(path: Path) -> jwt.PyJWKSet:
    try:
        keys = jwt.PyJWKSet.from_json(path.read_text())
    except (OSError, json.JSONDecodeError, jwt.PyJWKSetError, jwt.InvalidKeyError) as exc:
        raise ApiConfigError(f"cannot read the key set {path}: {exc}") from exc
    for key in keys.keys:
        try:
            _verifying(key)
        except jwt.InvalidTokenError as exc:
            raise ApiConfigError(f"{path}: {exc}") from None
    return keys


def mint_token(
    verifier: TokenVerifier, subject: str, roles: Iterable[Role], ttl_s: int, now: float
) -> str:
    """A token the verifier accepts, signed with its HS256 secret (development and tests)."""
    if verifier.secret is None:
        raise ApiConfigError(
            "tokens can only be minted with a shared secret; with a key set, get them from "
            "its issuer"
        )
    claims = {
        "iss": verifier.issuer,
        "aud": verifier.audience,
        "sub": subject,
        "roles": [role.value for role in roles],
        "iat": int(now),
        "exp": int(now) + ttl_s,
    }
    return jwt.encode(claims, verifier.secret, algorithm="HS256")


# --- FastAPI dependencies -------------------------------------------------------------------
_bearer = HTTPBearer(
    auto_error=False, description="A JWT from the configured issuer, with a roles claim"
)


async def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller, from the ``Authorization: Bearer`` header. Verified on the event loop (a
    sync dependency would cost each request a hop to a pool thread and back, which, beside a
    worker's busy scoring loop, means waiting for the GIL twice more), except with a key set
    URL, whose fetch blocks: then in a thread, unless the token was verified recently."""
    if credentials is None:
        raise AuthenticationError("missing bearer token (Authorization: Bearer <JWT>)")
    verifier: TokenVerifier = request.app.state.verifier
    token = credentials.credentials
    if verifier.may_block and verifier.known(token) is None:
        return await run_in_threadpool(verifier.verify, token)
    return verifier.verify(token)


def require(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A dependency that admits a caller with at least one of ``roles``."""
    allowed = frozenset(roles)
    names = " or ".join(sorted(allowed))

    async def authorized(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if principal.roles.isdisjoint(allowed):
            raise PermissionDeniedError(f"this endpoint needs the role {names}")
        return principal

    return authorized
