"""Failpoints: kill (or freeze) this process at the Nth pass through a named step.

For the fault tests only (``FRAUDSCORE_FAILPOINTS``, empty in production): they make a crash
land exactly inside a checkpoint — after the changelog sends, after the offsets, between the
commit and the RocksDB write — where random kills land only by luck. A step with no armed
failpoint costs one dictionary lookup per checkpoint, nothing per event.

Spec: comma-separated ``step=N`` pairs, e.g. ``checkpoint.after_offsets=5,restore.read=2``;
``step=N:stop`` sends SIGSTOP instead of SIGKILL, freezing the process mid-step (a zombie in
the making: the fault suite lets its partitions move, then wakes it with SIGCONT).
Steps: ``checkpoint.after_changelog``, ``checkpoint.after_outputs``,
``checkpoint.after_offsets``, ``checkpoint.after_commit``, ``restore.read``; and in the audit
sink ``audit.before_commit`` (data files written, catalog not yet swapped) and
``audit.after_commit`` (swapped, monitoring offsets not yet committed); and in the
merchant-risk aggregator ``merchant_risk.after_dead_letters`` (dead letters committed, the
database transaction not begun) and ``merchant_risk.before_db`` (every checkpoint, before its
database transaction).
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
        "audit.before_commit",
        "audit.after_commit",
        "merchant_risk.after_dead_letters",
        "merchant_risk.before_db",
    }
)


_SIGNALS = {"kill": signal.SIGKILL, "stop": signal.SIGSTOP}


class Failpoints:
    def __init__(self, spec: str) -> None:
        self._armed: dict[str, tuple[int, signal.Signals]] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            step, _, rest = item.partition("=")
            count, _, action = rest.partition(":")
            if step not in STEPS or not count.isdigit() or int(count) < 1:
                raise ValueError(
                    f"bad failpoint {item!r}: use step=N[:kill|:stop], step in {sorted(STEPS)}"
                )
            if (action or "kill") not in _SIGNALS:
                raise ValueError(f"bad failpoint {item!r}: the action is :kill or :stop")
            self._armed[step] = (int(count), _SIGNALS[action or "kill"])

    def hit(self, step: str) -> None:
        armed = self._armed.get(step)
        if armed is None:
            return
        left, signum = armed
        if left > 1:
            self._armed[step] = (left - 1, signum)
            return
        del self._armed[step]
        os.kill(os.getpid(), signum)


NONE = Failpoints("")
