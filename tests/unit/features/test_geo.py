"""Haversine distance and speed on known distances."""

from __future__ import annotations

import math

from features.geo import EARTH_RADIUS_KM, haversine_km, speed_kmh

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday


def test_known_distances() -> None:
    assert 340.0 < haversine_km(51.5074, -0.1278, 48.8566, 2.3522) < 346.0  # London-Paris
    assert haversine_km(10.0, 20.0, 10.0, 20.0) == 0.0
    assert math.isclose(haversine_km(0.0, 0.0, 0.0, 180.0), math.pi * EARTH_RADIUS_KM)
    assert math.isclose(haversine_km(90.0, 0.0, -90.0, 0.0), math.pi * EARTH_RADIUS_KM)


def test_speed() -> None:
    one_degree = haversine_km(0.0, 0.0, 0.0, 1.0)
    assert math.isclose(speed_kmh((T0, 0.0, 0.0), (T0 + 1_800_000, 0.0, 1.0)), 2 * one_degree)
    assert speed_kmh((T0, 0.0, 0.0), (T0, 0.0, 1.0)) == 0.0
