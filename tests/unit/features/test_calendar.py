"""Local-time flags on known dates and offsets."""

from __future__ import annotations

from features.calendar import local_time_flags

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday


def test_local_time_flags() -> None:
    assert local_time_flags(T0, 0) == (0, 0, 1)  # Thursday 00:00
    assert local_time_flags(T0, -60) == (23, 0, 0)  # Wednesday 23:00
    assert local_time_flags(T0 + 2 * 86_400_000, 330) == (5, 1, 1)  # Saturday 05:30
    assert local_time_flags(T0 + 2 * 86_400_000, 360) == (6, 1, 0)  # Saturday 06:00
    assert local_time_flags(T0 + 4 * 86_400_000 - 1, 0) == (23, 1, 0)  # Sunday 23:59
    assert local_time_flags(T0 + 4 * 86_400_000, 0) == (0, 0, 1)  # Monday 00:00
