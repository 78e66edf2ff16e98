"""Reading card state written by an older version: a registry of one-step migrations.

Policy:

- The encoded :class:`~features.card.CardState` is a msgpack array whose first element is its
  layout version (``CardState`` is ``array_like``, ``v`` first), so any reader can tell the
  version of a state without knowing its layout.
- A change to what the worker remembers about a card (a new feature that needs new state, a
  different unit, a new field) bumps :data:`features.card.STATE_VERSION` and registers, here,
  the step from the previous version: ``register(N, step)`` where ``step`` turns the decoded
  msgpack array of version N into the array of version N + 1 (``v`` included).
- :func:`migrate` applies the registered steps one after the other until the state is at the
  current version, then decodes it. A state newer than this build, or older than the oldest
  version with an unbroken chain of steps, is refused (:class:`StateVersionError`).
- Savepoints record the version their states were written with (``docs/SAVEPOINTS.md``);
  importing one migrates every state, so a savepoint taken by an older fraudscore starts a
  newer one. The changelog itself is not migrated in place: a worker decodes only the current
  version, and a deployment whose state version changes starts from a savepoint.

Registered steps:

- ``1 -> 2`` (:func:`v1_to_v2`, issue 4's full feature set). Version 1 kept only the card's
  events of the last 10 min + 5 s as ``(time, amount, merchant)``; they carry over into the
  exact list with an unknown MCC (``""``, counted as one category by ``distinct_mccs_24h``)
  and no location, into the hourly buckets, and into the last-seen merchants. Everything
  version 1 never had starts empty: older history, devices, MCCs, the decayed amount profile,
  the dropped-event memory. So a migrated card's long windows and "new" flags see only those
  last 10 minutes at first, and fill up as the card is used.
- ``2 -> 3`` (:func:`v2_to_v3`, faster feature updates and duplicate detection): the data
  regrouped, the exact list's columns and its dropped-event memory as one nested array, the
  hourly buckets as another, so that a decoded state is updated in place without rebuilding
  its columns; and the remembered transaction ids, which version 2 did not keep, start
  empty: a duplicate of a transaction decided before the migration is not recognised.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from features.card import STATE_VERSION, CardState, decode_state
from features.errors import StateVersionError
from features.history import EMPTY_PROFILE
from features.windows import HourBuckets

UNKNOWN_MCC = ""  # the MCC of events migrated from version 1, which did not keep it

Layout = list[Any]  # a decoded state array: [version, ...fields of that version]
Step = Callable[[Layout], Layout]

_steps: dict[int, Step] = {}
_generic = msgspec.msgpack.Decoder()


def register(from_version: int, step: Step) -> None:
    """Register the migration of a state from ``from_version`` to ``from_version + 1``."""
    if from_version >= STATE_VERSION:
        raise ValueError(
            f"a migration from version {from_version} must target at most {STATE_VERSION}"
        )
    if from_version in _steps:
        raise ValueError(f"a migration from state version {from_version} is registered already")
    _steps[from_version] = step


def unregister(from_version: int) -> None:
    """Remove a registered step (for tests)."""
    _steps.pop(from_version, None)


def oldest_readable_version() -> int:
    """The oldest state version :func:`migrate` can bring to the current one."""
    version = STATE_VERSION
    while version - 1 in _steps:
        version -= 1
    return version


def can_migrate(version: int) -> bool:
    return oldest_readable_version() <= version <= STATE_VERSION


def state_version(raw: bytes) -> int:
    """The layout version of an encoded state (the first element of its msgpack array)."""
    return _version_of(_decode_layout(raw))


def migrate(raw: bytes) -> CardState:
    """Decode an encoded state of any readable version as a current :class:`CardState`."""
    layout = _decode_layout(raw)
    version = _version_of(layout)
    if version == STATE_VERSION:
        return _decode(raw)
    if not can_migrate(version):
        raise StateVersionError(
            f"card state version {version} cannot be read: this build reads versions "
            f"{oldest_readable_version()} to {STATE_VERSION}"
        )
    while version < STATE_VERSION:
        layout = _steps[version](layout)
        version += 1
        if _version_of(layout) != version:
            raise StateVersionError(f"the migration to state version {version} mislabelled it")
    return _decode(msgspec.msgpack.encode(layout))


def _decode(raw: bytes) -> CardState:
    try:
        return decode_state(raw)
    except (msgspec.DecodeError, ValueError) as exc:
        raise StateVersionError(f"card state does not decode: {exc}") from exc


def _decode_layout(raw: bytes) -> Layout:
    try:
        layout = _generic.decode(raw)
    except msgspec.DecodeError as exc:
        raise StateVersionError(f"card state is not msgpack: {exc}") from exc
    if not isinstance(layout, list) or not layout:
        raise StateVersionError("card state is not a msgpack array with its version first")
    return layout


def _version_of(layout: Layout) -> int:
    version = layout[0]
    if not isinstance(version, int) or isinstance(version, bool):
        raise StateVersionError(f"card state version {version!r} is not an integer")
    return version


def v1_to_v2(layout: Layout) -> Layout:
    """Version 1 ``[1, newest_ms, [[time, amount, merchant], ...]]`` to the version 2 array."""
    _, newest_ms, events = layout
    times = [t for t, _, _ in events]
    amounts = [amount for _, amount, _ in events]
    merchants = [merchant for _, _, merchant in events]
    buckets = HourBuckets([], [], [])
    seen_merchants: dict[str, int] = {}
    for t, amount, merchant in events:
        buckets.add(t, amount)
        seen_merchants[merchant] = max(t, seen_merchants.get(merchant, t))
    nothing = [None] * len(events)
    return [
        2, newest_ms, times, amounts, merchants, [UNKNOWN_MCC] * len(events), nothing, nothing,
        None, None, buckets.hours, buckets.counts, buckets.sums, list(EMPTY_PROFILE),
        {}, seen_merchants, {},
    ]  # fmt: skip


def v2_to_v3(layout: Layout) -> Layout:
    """Version 2 (flat columns) to version 3 (the exact list and the buckets nested)."""
    _, newest_ms, *exact, hours, counts, sums, profile, devices, merchants, mccs = layout
    return [3, newest_ms, exact, [hours, counts, sums], profile, devices, merchants, mccs, [], []]


register(1, v1_to_v2)
register(2, v2_to_v3)
