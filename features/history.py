"""A card's longer memory: last-seen times for the "new" flags and a decayed amount profile.

Last seen (``new_device``, ``new_merchant``, ``new_mcc``): per value, the newest event time at
which an *earlier-arrived* transaction of the card used it. A value is new for a transaction
at ``t`` when no earlier-arrived transaction used it with an event time after ``t - 30 d``
(one that arrived earlier but happened after ``t``, out of order, counts as seen). The
current transaction is recorded only after its flags are computed. Values last seen 30 days +
``max_out_of_orderness`` or more before the card's newest event time count as forgotten, and
are dropped from the maps whenever the card's newest event time enters a new UTC day
(:func:`forget`). At most ``cap`` values per kind are remembered; over the cap the least
recently seen go (ties by value), so the flags are exact while the card used at most ``cap``
distinct values of a kind in its last 30 days + ``max_out_of_orderness``. A missing device id
is never new (0) and not remembered. The maps are updated in place (:func:`remember`);
:func:`features.card.observe` reads the flags from them inline, on its hot path.

Decayed amount profile (``amount_zscore``): an exponentially weighted mean and variance of
the amount (major unit, float), updated in *arrival* order. Before an event at ``t``, all
weights decay by ``0.5 ** (dt / half_life)`` with ``dt = max(0, t - last_ms)`` (an event
earlier than ``last_ms`` decays nothing); the event then enters with weight 1. The z-score of
a transaction is taken against the profile *before* it: ``(x - mean) / sqrt(var + 1)`` (the
+1 keeps a flat history from dividing by zero), 0.0 for a card's first transaction. West's
weighted update, plain float operations in a fixed order: identical bits on replay.
"""

from __future__ import annotations

from math import sqrt
from typing import Final

LastSeen = dict[str, int]
Profile = tuple[float, float, float, int]  # (weight, mean, weighted M2, last event time ms)
EMPTY_PROFILE: Final[Profile] = (0.0, 0.0, 0.0, 0)
VARIANCE_FLOOR: Final = 1.0


def remember(last_seen: LastSeen, value: str | None, t: int, cap: int) -> None:
    """Record ``value`` as seen at ``t`` in ``last_seen`` (in place), at most ``cap`` values:
    over the cap the least recently seen go."""
    if value is None:
        return
    seen = last_seen.get(value)
    if seen is not None and seen >= t:
        return
    last_seen[value] = t
    if seen is None and len(last_seen) > cap:
        keep = sorted(last_seen.items(), key=lambda item: (item[1], item[0]))[-cap:]
        last_seen.clear()
        last_seen.update(keep)


def forget(last_seen: LastSeen, through: int) -> None:
    """Drop the values last seen at or before ``through`` (in place)."""
    for value in [v for v, last in last_seen.items() if last <= through]:
        del last_seen[value]


def zscore(profile: Profile, x: float) -> float:
    """The z-score of amount ``x`` against the profile (before ``x`` enters it)."""
    weight, mean, m2, _ = profile
    if weight == 0.0:
        return 0.0
    return (x - mean) / sqrt(m2 / weight + VARIANCE_FLOOR)


def update_profile(profile: Profile, x: float, t: int, half_life_ms: int) -> Profile:
    """The profile after amount ``x`` at event time ``t`` arrived."""
    weight, mean, m2, last_ms = profile
    if t > last_ms:
        decay = 0.5 ** ((t - last_ms) / half_life_ms)
        weight, m2, last_ms = weight * decay, m2 * decay, t
    weight += 1.0
    delta = x - mean
    mean += delta / weight
    m2 += delta * (x - mean)
    return weight, mean, m2, last_ms
