"""Calendar features in the transaction's local time.

Local time is the event time (epoch ms, UTC) shifted by the UTC offset the event_time string
carried (``Transaction.utc_offset_min``; 0, i.e. UTC, for epoch-ms input and ``Z``). Integer
arithmetic only, proleptic Gregorian calendar; 1970-01-01 was a Thursday.

- ``local_hour``: 0..23;
- ``local_weekend``: 1 on Saturday and Sunday, else 0;
- ``local_night``: 1 for local hours 0 to 5 (00:00:00.000 to 05:59:59.999), else 0.
"""

from __future__ import annotations

from typing import Final

NIGHT_END_HOUR: Final = 6  # night is [00:00, 06:00) local time
_MS_PER_MINUTE: Final = 60_000
_MS_PER_HOUR: Final = 3_600_000
_MS_PER_DAY: Final = 86_400_000
_THURSDAY: Final = 3  # weekday of 1970-01-01, Monday = 0


def local_time_flags(event_time_ms: int, utc_offset_min: int) -> tuple[int, int, int]:
    """``(local_hour, local_weekend, local_night)`` of an event time and UTC offset."""
    local_ms = event_time_ms + utc_offset_min * _MS_PER_MINUTE
    hour = local_ms // _MS_PER_HOUR % 24
    weekday = (local_ms // _MS_PER_DAY + _THURSDAY) % 7
    return hour, int(weekday >= 5), int(hour < NIGHT_END_HOUR)
