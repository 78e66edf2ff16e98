"""Maintenance of the audit table: compaction of closed days, daily tags, snapshot expiry and
orphan removal, for ``fraudscore audit maintain`` and for the schedule inside the audit sink.

One function, :func:`maintain`, does a run in this order: compaction (if asked), tags, expiry,
orphan removal (if asked). Every step is safe while a sink writes (each commit requires the head
it read to still be in place; docs/AUDIT.md), so the CLI can run beside the sink; inside the
sink, :class:`MaintenanceSchedule` says when a run is due and what it includes, and the sink
runs it between its checkpoints on its own table handle, so the two never race each other.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from app.settings import FraudscoreSettings
from sinks.iceberg import AuditTable


@dataclass(frozen=True, slots=True)
class MaintenancePlan:
    """What one run does: expire what is older than ``min_age`` beyond the newest ``keep``
    snapshots; with ``compact``, compact closed days first; with ``orphan_age``, remove
    orphan files older than that last."""

    keep: int
    min_age: timedelta
    compact: bool = False
    orphan_age: timedelta | None = None


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    compacted: dict[date, int]  # files replaced, per event day compacted
    tagged: dict[date, int]  # snapshot tagged, per commit day
    expired: list[int]  # snapshot ids
    orphans: list[str] | None  # paths deleted; None: not asked


def maintain(table: AuditTable, now: datetime, plan: MaintenancePlan) -> MaintenanceReport:
    """One maintenance run at ``now`` (UTC; its date is the first day not closed)."""
    today = now.date()
    compacted: dict[date, int] = {}
    if plan.compact:
        for day in table.days_to_compact(today):
            files = table.compact_day(day)
            if files:
                compacted[day] = files
    tagged = table.tag_closed_days(today)
    expired = table.expire_snapshots(now - plan.min_age, plan.keep)
    orphans = None if plan.orphan_age is None else table.remove_orphan_files(now - plan.orphan_age)
    return MaintenanceReport(compacted, tagged, expired, orphans)


class MaintenanceSchedule:
    """When the sink's next maintenance run is due, and whether it includes compaction and
    orphan removal (their own, longer interval). Nothing is due at start: the first run comes
    one interval later. Monotonic clock."""

    def __init__(self, settings: FraudscoreSettings, started: float | None = None) -> None:
        self.settings = settings
        started = time.monotonic() if started is None else started
        self._next = self._after(started, settings.audit_maintenance_interval_s)
        self._next_compaction = self._after(started, settings.audit_compaction_interval_s)

    @staticmethod
    def _after(moment: float, interval_s: float) -> float:
        return moment + interval_s if interval_s > 0 else float("inf")

    def due(self, now: float | None = None) -> MaintenancePlan | None:
        """The run due at ``now`` (and the next one scheduled), or None."""
        now = time.monotonic() if now is None else now
        compact = now >= self._next_compaction
        if not compact and now < self._next:
            return None
        s = self.settings
        self._next = self._after(now, s.audit_maintenance_interval_s)
        if compact:
            self._next_compaction = self._after(now, s.audit_compaction_interval_s)
        return MaintenancePlan(
            keep=s.audit_maintenance_keep,
            min_age=timedelta(seconds=s.audit_maintenance_min_age_s),
            compact=compact,
            orphan_age=timedelta(hours=s.audit_orphan_min_age_h) if compact else None,
        )
