"""How long the worker's checkpoints take, step by step, summed up in its log.

A decision becomes visible when its checkpoint commits, so its latency is its wait for the
checkpoint to start plus the checkpoint itself. :class:`CheckpointStats` keeps the duration
of every step of every checkpoint (``wait``: from the oldest record it carries being
processed to the checkpoint's start; ``outputs``: changelog, decisions, dead letters and late
copies produced and flushed; ``offsets``: ``send_offsets_to_transaction``, or the offset
commit at least once; ``commit``: ``commit_transaction``; ``store``: the RocksDB writes after
it; ``total``: ``outputs`` to ``store``) and logs one INFO line per ``period_s`` with the count,
the records carried, and p50/p99/max of each step in milliseconds (and once more at close).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

log = logging.getLogger(__name__)

STEPS = ("wait", "outputs", "offsets", "commit", "store", "total")


class CheckpointStats:
    def __init__(self, period_s: float = 30.0) -> None:
        self.period_s = period_s
        self._durations: dict[str, list[float]] = {step: [] for step in STEPS}
        self._records = 0
        self._since = time.monotonic()

    def add(self, durations: dict[str, float], records: int) -> None:
        """One committed checkpoint: seconds per step (any of :data:`STEPS`)."""
        for step, seconds in durations.items():
            self._durations[step].append(seconds)
        self._records += records
        if time.monotonic() - self._since >= self.period_s:
            self.flush()

    def flush(self) -> None:
        """Log the summary of the checkpoints since the last one (if any), and start over."""
        count = len(self._durations["total"])
        if count:
            steps = ", ".join(
                f"{step} {_summary(values)}" for step, values in self._durations.items() if values
            )
            log.info(
                "checkpoints in the last %.0fs: %d, %d records; ms p50/p99/max: %s",
                time.monotonic() - self._since,
                count,
                self._records,
                steps,
            )
        self._durations = {step: [] for step in STEPS}
        self._records = 0
        self._since = time.monotonic()


def _summary(seconds: Iterable[float]) -> str:
    ordered = sorted(seconds)
    last = len(ordered) - 1

    def ms(q: float) -> str:
        return f"{ordered[min(last, int(q * len(ordered)))] * 1000:.1f}"

    return f"{ms(0.5)}/{ms(0.99)}/{ordered[-1] * 1000:.1f}"
