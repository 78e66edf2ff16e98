"""Great-circle distance and travel speed between two located transactions.

Distances use the haversine formula on a sphere of radius :data:`EARTH_RADIUS_KM` (the IUGG
mean radius, 6371.0088 km); the spherical model errs by at most ~0.5 % against the WGS 84
ellipsoid, far below what matters for "impossible travel". Plain float math, so the same
inputs always give the same bits on the same build.
"""

from __future__ import annotations

from math import asin, cos, radians, sin, sqrt
from typing import Final

EARTH_RADIUS_KM: Final = 6371.0088
_MS_PER_HOUR: Final = 3_600_000


def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points given in decimal degrees."""
    phi1, phi2 = radians(lat1), radians(lat2)
    half_dphi = (phi2 - phi1) / 2.0
    half_dlambda = radians(lon2 - lon1) / 2.0
    a = sin(half_dphi) ** 2 + cos(phi1) * cos(phi2) * sin(half_dlambda) ** 2
    return 2.0 * EARTH_RADIUS_KM * asin(min(1.0, sqrt(a)))


def speed_kmh(start: tuple[int, float, float], end: tuple[int, float, float]) -> float:
    """Speed in km/h between two ``(event_time_ms, lat, lon)``; 0.0 if no time passed."""
    elapsed_ms = abs(end[0] - start[0])
    if elapsed_ms == 0:
        return 0.0
    return haversine_km(start[1], start[2], end[1], end[2]) * _MS_PER_HOUR / elapsed_ms
