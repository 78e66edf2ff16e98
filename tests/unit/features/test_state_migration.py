"""The state migration registry: the real steps (v1 -> v2 -> v3) and a test-only v0 layout.

No version before 1 was ever written, so the v0 layout here is made up: the same fields as v1,
but amounts in 1/100 of the major unit instead of 1/10,000. Its step is registered per test.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from features.card import CARD_FEATURE_NAMES, STATE_VERSION, CardState, encode_state, observe
from features.errors import StateVersionError
from features.history import EMPTY_PROFILE
from features.state_migration import (
    UNKNOWN_MCC,
    can_migrate,
    migrate,
    oldest_readable_version,
    register,
    state_version,
    unregister,
)
from features.transaction import Transaction
from features.windows import ExactList, HourBuckets

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, an hour boundary
V1 = [1, T0 + 60_000, [[T0, 123_400, "m_a"], [T0 + 60_000, 5_000, "m_b"], [T0 + 60_000, 1, "m_a"]]]
V0 = [0, T0 + 60_000, [[T0, 1234, "m_a"], [T0 + 60_000, 50, "m_b"], [T0 + 60_000, 0.01, "m_a"]]]
HOUR = T0 // 3_600_000
CURRENT = CardState(
    STATE_VERSION,
    T0 + 60_000,
    ExactList(
        times=[T0, T0 + 60_000, T0 + 60_000],
        amounts=[123_400, 5_000, 1],
        merchants=["m_a", "m_b", "m_a"],
        mccs=[UNKNOWN_MCC] * 3,
        lats=[None] * 3,
        lons=[None] * 3,
        dropped_ms=None,
        dropped_loc=None,
    ),
    HourBuckets(
        hours=[HOUR - 1, HOUR],  # T0 closes the bucket (HOUR - 1) h, (HOUR) h]
        counts=[1, 2],
        sums=[123_400, 5_001],
    ),
    EMPTY_PROFILE,
    {},
    {"m_a": T0 + 60_000, "m_b": T0 + 60_000},
    {},
    [],
    [],
)
# A version 2 state as that version wrote it (flat columns), with every field in use.
V2 = [
    2, T0 + 60_000, [T0, T0 + 60_000], [7, 8], ["m_a", "m_b"], ["5411", "5812"],
    [48.85, None], [2.35, None], T0 - 90_000, [T0 - 95_000, 40.7, -74.0], [HOUR - 1, HOUR],
    [3, 1], [700, 8], [1.5, 2.0, 0.25, T0], {"dev": T0}, {"m_a": T0, "m_b": T0 + 60_000},
    {"5411": T0},
]  # fmt: skip


def _v0_to_v1(layout: list[Any]) -> list[Any]:
    _, newest_ms, events = layout
    return [1, newest_ms, [[t, round(cents * 100), merchant] for t, cents, merchant in events]]


@pytest.fixture
def v0_registered() -> Iterator[None]:
    register(0, _v0_to_v1)
    try:
        yield
    finally:
        unregister(0)


def test_the_current_version_decodes_unchanged() -> None:
    assert STATE_VERSION == 3
    state, _ = observe(None, _txn(T0, "m_a"))
    raw = encode_state(state)
    assert state_version(raw) == 3
    assert migrate(raw) == state


def _txn(t: int, merchant: str) -> Transaction:
    return Transaction("t", "tok", 100, 2, "USD", merchant, "5411", t, "dev", 48.85, 2.35)


def test_a_version_1_state_carries_its_events_over() -> None:
    raw = msgspec.msgpack.encode(V1)
    assert state_version(raw) == 1
    assert can_migrate(1)
    migrated = migrate(raw)
    assert migrated == CURRENT
    assert isinstance(migrated, CardState)


def test_a_version_2_state_is_regrouped_without_loss() -> None:
    migrated = migrate(msgspec.msgpack.encode(V2))
    exact, buckets = migrated.exact, migrated.buckets
    assert migrated.newest_ms == T0 + 60_000
    assert (exact.times, exact.amounts, exact.merchants, exact.mccs) == tuple(V2[2:6])
    assert (exact.lats, exact.lons) == ([48.85, None], [2.35, None])
    assert (exact.dropped_ms, exact.dropped_loc) == (T0 - 90_000, (T0 - 95_000, 40.7, -74.0))
    assert (buckets.hours, buckets.counts, buckets.sums) == tuple(V2[10:13])
    assert migrated.profile == (1.5, 2.0, 0.25, T0)
    assert (migrated.seen_devices, migrated.seen_merchants, migrated.seen_mccs) == tuple(V2[14:])


def test_a_migrated_state_keeps_scoring_from_its_events() -> None:
    _, vector = observe(migrate(msgspec.msgpack.encode(V1)), _txn(T0 + 90_000, "m_a"))
    features = dict(zip(CARD_FEATURE_NAMES, vector, strict=True))
    assert features["txn_count_60s"] == 3.0  # the two at T0 + 60 s and this one
    assert features["txn_count_10m"] == features["txn_count_30d"] == 4.0
    assert features["amount_sum_10m"] == 12.34 + 0.5 + 0.0001 + 1.0
    assert features["distinct_merchants_10m"] == 2.0
    assert features["distinct_mccs_24h"] == 2.0  # the unknown one and 5411
    assert features["new_merchant"] == 0.0
    assert features["new_mcc"] == 1.0
    assert features["seconds_since_prev"] == 30.0


@pytest.mark.usefixtures("v0_registered")
def test_registered_steps_chain_to_the_current_version() -> None:
    raw = msgspec.msgpack.encode(V0)
    assert state_version(raw) == 0
    assert oldest_readable_version() == 0
    assert can_migrate(0)
    assert migrate(raw) == CURRENT


def test_without_a_step_an_old_state_is_refused() -> None:
    assert oldest_readable_version() == 1
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
        migrate(msgspec.msgpack.encode([STATE_VERSION, "not a time", []]))
