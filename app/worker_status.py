"""What a worker's ``/readyz`` answers: is the model loaded, and are all the partitions it was
assigned restored?

The worker's loop (and the threads restoring partitions) write it; the HTTP thread reads it.
A worker is ready when its pipeline (model and policy) is loaded, it has been assigned at
least one input partition, and none of its partitions is still being restored from the
changelog. A worker of a group with more workers than partitions is therefore not ready:
it processes nothing, and a card-feature lookup must not be routed to it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class WorkerStatus(Collector):
    """Readiness, thread-safe; also a collector of ``fraudscore_worker_ready`` and
    ``fraudscore_worker_partitions{state}``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipeline: str | None = None  # a description of the model and policy in use
        self._joined = False  # the group has given this worker its assignment
        self._assigned: set[int] = set()
        self._restoring: set[int] = set()

    def pipeline_loaded(self, description: str) -> None:
        with self._lock:
            self._pipeline = description

    def rebalancing(self) -> None:
        """The group is taking partitions away (a rebalance), or took them (lost)."""
        with self._lock:
            self._joined = False

    def restoring(self, partitions: Iterable[int]) -> None:
        """The group assigned ``partitions`` (perhaps none) and their state is being
        restored."""
        with self._lock:
            self._joined = True
            self._assigned.update(partitions)
            self._restoring.update(partitions)

    def restored(self, partition: int) -> None:
        with self._lock:
            self._restoring.discard(partition)

    def released(self, partitions: Iterable[int]) -> None:
        """``partitions`` were revoked, lost or closed."""
        with self._lock:
            self._assigned.difference_update(partitions)
            self._restoring.difference_update(partitions)

    def problems(self) -> list[str]:
        """Why the worker is not ready; empty: it is."""
        with self._lock:
            problems = []
            if self._pipeline is None:
                problems.append("the model is not loaded yet")
            if not self._joined:
                problems.append("waiting for the consumer group to assign partitions")
            elif not self._assigned:
                problems.append("the consumer group assigned no input partition to this worker")
            if self._restoring:
                restoring = ", ".join(map(str, sorted(self._restoring)))
                problems.append(f"restoring partitions {restoring} from the changelog")
            return problems

    def partitions(self) -> tuple[list[int], list[int]]:
        """(assigned, still restoring), sorted."""
        with self._lock:
            return sorted(self._assigned), sorted(self._restoring)

    def collect(self) -> Iterator[Metric]:
        assigned, restoring = self.partitions()
        yield GaugeMetricFamily(
            "fraudscore_worker_ready",
            "1 when the model is loaded and every assigned partition is restored (/readyz)",
            value=0 if self.problems() else 1,
        )
        partitions = GaugeMetricFamily(
            "fraudscore_worker_partitions",
            "Input partitions assigned to this worker, by state (restoring or active)",
            labels=["state"],
        )
        partitions.add_metric(["restoring"], len(restoring))
        partitions.add_metric(["active"], len(assigned) - len(restoring))
        yield partitions

    def describe(self) -> Iterator[Metric]:
        return self.collect()
