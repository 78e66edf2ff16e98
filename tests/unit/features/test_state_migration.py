"""The state migration registry, exercised with a test-only version 0 layout.

No version before 1 was ever written, so the v0 layout here is made up: the same fields, but
amounts in 1/100 of the major unit instead of 1/10,000. Its step is registered per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from features.card import STATE_VERSION, CardState, encode_state
from features.errors import StateVersionError
from features.state_migration import (
    can_migrate,
    migrate,
    oldest_readable_version,
    register,
    state_version,
    unregister,
)

V1 = CardState(
    v=1,
    newest_ms=1_767_225_660_000,
    events=((1_767_225_600_000, 123_400, "m_a"), (1_767_225_660_000, 5_000, "m_b")),
)
V0 = [0, 1_767_225_660_000, [[1_767_225_600_000, 1234, "m_a"], [1_767_225_660_000, 50, "m_b"]]]


def _v0_to_v1(layout: list[Any]) -> list[Any]:
    _, newest_ms, events = layout
    return [1, newest_ms, [[t, cents * 100, merchant] for t, cents, merchant in events]]


@pytest.fixture
def v0_registered() -> Iterator[None]:
    register(0, _v0_to_v1)
    try:
        yield
    finally:
        unregister(0)


def test_the_current_version_decodes_unchanged() -> None:
    assert STATE_VERSION == 1
    raw = encode_state(V1)
    assert state_version(raw) == 1
    assert migrate(raw) == V1


@pytest.mark.usefixtures("v0_registered")
def test_a_registered_step_brings_an_old_state_to_the_current_version() -> None:
    raw = msgspec.msgpack.encode(V0)
    assert state_version(raw) == 0
    assert oldest_readable_version() == 0
    assert can_migrate(0)
    assert migrate(raw) == V1


def test_without_a_step_an_old_state_is_refused() -> None:
    assert oldest_readable_version() == STATE_VERSION
    assert not can_migrate(0)
    with pytest.raises(StateVersionError, match="version 0 cannot be read"):
        migrate(msgspec.msgpack.encode(V0))


def test_a_newer_state_is_refused() -> None:
    raw = msgspec.msgpack.encode([STATE_VERSION + 1, 0, []])
    assert not can_migrate(STATE_VERSION + 1)
    with pytest.raises(StateVersionError, match=f"version {STATE_VERSION + 1}"):
        migrate(raw)


@pytest.mark.usefixtures("v0_registered")
def test_steps_are_registered_once_and_only_below_the_current_version() -> None:
    with pytest.raises(ValueError, match="registered already"):
        register(0, _v0_to_v1)
    with pytest.raises(ValueError, match="must target"):
        register(STATE_VERSION, _v0_to_v1)


def test_a_step_that_mislabels_its_output_is_caught() -> None:
    register(0, lambda layout: layout)  # forgets to bump the version
    try:
        with pytest.raises(StateVersionError, match="mislabelled"):
            migrate(msgspec.msgpack.encode(V0))
    finally:
        unregister(0)


@pytest.mark.parametrize(
    "raw",
    [b"\xc1", msgspec.msgpack.encode({"v": 1}), msgspec.msgpack.encode(["1", 0, []])],
    ids=["not-msgpack", "not-an-array", "version-not-int"],
)
def test_garbage_is_refused_with_a_state_version_error(raw: bytes) -> None:
    with pytest.raises(StateVersionError):
        migrate(raw)


def test_a_current_version_state_with_a_broken_layout_is_refused() -> None:
    with pytest.raises(StateVersionError, match="does not decode"):
        migrate(msgspec.msgpack.encode([1, "not a time", []]))
