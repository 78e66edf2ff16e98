"""Failpoints: kill this process with SIGKILL at the Nth pass through a named step.

For the fault tests only (``FRAUDSCORE_FAILPOINTS``, empty in production): they make a crash
land exactly inside a checkpoint — after the changelog sends, after the offsets, between the
commit and the RocksDB write — where random kills land only by luck. A step with no armed
failpoint costs one dictionary lookup per checkpoint, nothing per event.

Spec: comma-separated ``step=N`` pairs, e.g. ``checkpoint.after_offsets=5,restore.read=2``.
Steps: ``checkpoint.after_changelog``, ``checkpoint.after_outputs``,
``checkpoint.after_offsets``, ``checkpoint.after_commit``, ``restore.read``.
"""

from __future__ import annotations

import os
import signal

STEPS = frozenset(
    {
        "checkpoint.after_changelog",
        "checkpoint.after_outputs",
        "checkpoint.after_offsets",
        "checkpoint.after_commit",
        "restore.read",
    }
)


class Failpoints:
    def __init__(self, spec: str) -> None:
        self._left: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            step, _, count = item.partition("=")
            if step not in STEPS or not count.isdigit() or int(count) < 1:
                raise ValueError(
                    f"bad failpoint {item!r}: use step=N with a step in {sorted(STEPS)}"
                )
            self._left[step] = int(count)

    def hit(self, step: str) -> None:
        left = self._left.get(step)
        if left is None:
            return
        if left <= 1:
            os.kill(os.getpid(), signal.SIGKILL)
        self._left[step] = left - 1


NONE = Failpoints("")
