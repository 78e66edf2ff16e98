"""Latency percentiles, as the benchmarks and the authorizer report them."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in [0, 100]) of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """p50, p99, p99.9 and the maximum of some latencies, in ms (NaN when there are none)."""

    count: int
    p50: float
    p99: float
    p999: float
    max: float

    @classmethod
    def of(cls, values_ms: Sequence[float]) -> LatencySummary:
        ordered = sorted(values_ms)
        return cls(
            count=len(ordered),
            p50=percentile(ordered, 50),
            p99=percentile(ordered, 99),
            p999=percentile(ordered, 99.9),
            max=ordered[-1] if ordered else float("nan"),
        )

    def as_dict(self) -> dict[str, float | None]:
        """The percentiles and maximum in ms (3 decimals; null when there are none)."""
        values = {"p50": self.p50, "p99": self.p99, "p99.9": self.p999, "max": self.max}
        return {k: None if math.isnan(v) else round(v, 3) for k, v in values.items()}
