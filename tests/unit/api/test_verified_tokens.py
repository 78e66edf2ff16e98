"""A verified token is trusted again without a second verification, but never beyond its
expiry (with the leeway), never longer than the cache's maximum age, and only the newest
``size`` tokens are kept; a token that fails verification is never remembered."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from app.api.auth import Principal, Role, TokenVerifier, VerifiedTokens, token_verifier
from app.api.errors import AuthenticationError
from tests.support.api import OTHER_SECRET, api_settings, token

ANALYST = Principal("analyst", frozenset({Role.ANALYST}))


class CountingKeys:
    """The verifier's own key source, counting how often a token is verified."""

    def __init__(self, verifier: TokenVerifier) -> None:
        self.inner, self.calls = verifier.keys, 0

    def key_for(self, token: str) -> tuple[Any, list[str]]:
        self.calls += 1
        return self.inner.key_for(token)


@pytest.fixture
def verifier(tmp_path: Path) -> tuple[TokenVerifier, CountingKeys]:
    plain = token_verifier(api_settings(tmp_path))
    keys = CountingKeys(plain)
    counted = TokenVerifier(
        keys, plain.issuer, plain.audience, plain.leeway_s, plain.secret, plain.dev_key
    )
    return counted, keys


def test_a_token_is_verified_once_then_trusted_from_the_cache(
    verifier: tuple[TokenVerifier, CountingKeys],
) -> None:
    tokens, keys = verifier
    good = token(Role.SERVICE)
    first = tokens.verify(good)
    assert tokens.verify(good) == first
    assert tokens.known(good) == first
    assert keys.calls == 1
    assert Role.SERVICE in first.roles


def test_a_token_that_fails_is_never_remembered(
    verifier: tuple[TokenVerifier, CountingKeys],
) -> None:
    tokens, keys = verifier
    forged = token(Role.ADMIN, secret=OTHER_SECRET)
    for _ in range(2):
        with pytest.raises(AuthenticationError):
            tokens.verify(forged)
    assert keys.calls == 2
    assert tokens.known(forged) is None


def test_an_entry_ends_at_the_tokens_expiry_or_its_maximum_age_whichever_is_first() -> None:
    cache = VerifiedTokens(max_age_s=60.0)
    now = time.time()
    cache.put("short", ANALYST, expires=now + 10, now=now)
    cache.put("long", ANALYST, expires=now + 3600, now=now)
    assert cache.get("short", now + 9.9) == ANALYST
    assert cache.get("short", now + 10) is None
    assert cache.get("long", now + 59.9) == ANALYST
    assert cache.get("long", now + 60) is None


def test_only_the_most_recently_used_tokens_are_kept() -> None:
    cache = VerifiedTokens(size=2)
    now = time.time()
    cache.put("a", ANALYST, now + 600, now)
    cache.put("b", ANALYST, now + 600, now)
    assert cache.get("a", now) == ANALYST  # a is now the most recent
    cache.put("c", ANALYST, now + 600, now)
    assert cache.get("b", now) is None
    assert cache.get("a", now) == ANALYST
    assert cache.get("c", now) == ANALYST
