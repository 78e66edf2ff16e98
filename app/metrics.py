"""Prometheus plumbing shared by the worker, the audit sink and the API (docs/OBSERVABILITY.md).

Every process builds its own :class:`~prometheus_client.CollectorRegistry` in code
(:func:`new_registry`), never prometheus-client's import-time global one, so two workers, or
two tests, never share a counter. :class:`BatchHistogram` is a histogram fed a whole batch of
observations at once, for latencies the worker measures per record but must not pay a metric
call for per record (docs/adr/0009-prometheus-client-for-metrics.md has the measurements).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Final

import numpy as np
import numpy.typing as npt
from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4

# seconds: from a few milliseconds (a checkpoint) to an hour (a replay, a stalled partition)
LATENCY_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0,
)  # fmt: skip


def new_registry() -> CollectorRegistry:
    """A registry of this process's own, with the standard process, platform and GC metrics
    (``process_cpu_seconds_total``, ``process_resident_memory_bytes``, ``python_info``...)."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in Prometheus' text format (:data:`CONTENT_TYPE`)."""
    return generate_latest(registry)


class BatchHistogram(Collector):
    """A label-less histogram observed a batch at a time: :meth:`observe_many` sorts a batch
    into buckets with plain Python (no lock, no metric call per value), then adds the batch
    to the totals under one lock. Exposed exactly like a prometheus-client ``Histogram``."""

    def __init__(
        self,
        name: str,
        documentation: str,
        buckets: Sequence[float] = LATENCY_BUCKETS,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self._bounds = np.array(sorted(buckets), dtype=np.float64)
        self._counts = [0] * (len(self._bounds) + 1)  # the last one: above every bound
        self._sum = 0.0
        self._lock = threading.Lock()
        if registry is not None:
            registry.register(self)

    def observe_many(self, values: Sequence[float] | npt.NDArray[np.float64]) -> None:
        """Add a batch of observations (numpy sorts them into buckets: ~20 ns a value, where
        a ``Histogram.observe`` call costs ~1 µs)."""
        array = np.asarray(values, dtype=np.float64)
        if not array.size:
            return
        # searchsorted left: the first bound >= value, as bucket le=b holds value <= b
        found = np.bincount(np.searchsorted(self._bounds, array), minlength=len(self._counts))
        total = float(array.sum())
        with self._lock:
            self._counts = [a + int(b) for a, b in zip(self._counts, found, strict=True)]
            self._sum += total

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            counts, total = list(self._counts), self._sum
        cumulative, buckets = 0, []
        for bound, count in zip((*map(str, self._bounds.tolist()), "+Inf"), counts, strict=True):
            cumulative += count
            buckets.append((bound, cumulative))
        yield HistogramMetricFamily(self.name, self.documentation, buckets, sum_value=total)

    def describe(self) -> Iterator[Metric]:
        return self.collect()
