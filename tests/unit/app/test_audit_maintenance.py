"""When the audit sink's maintenance schedule says a run is due, and what it includes."""

from __future__ import annotations

from datetime import timedelta

from app.audit_maintenance import MaintenancePlan, MaintenanceSchedule
from app.settings import FraudscoreSettings


def _schedule(**overrides: float) -> MaintenanceSchedule:
    settings = FraudscoreSettings(
        audit_maintenance_interval_s=300,
        audit_compaction_interval_s=3600,
        audit_maintenance_keep=7,
        audit_maintenance_min_age_s=60,
        audit_orphan_min_age_h=48,
    ).model_copy(update=overrides)
    return MaintenanceSchedule(settings, started=0.0)


def test_runs_come_one_interval_apart_and_compaction_with_orphans_on_its_own_interval() -> None:
    schedule = _schedule()
    assert schedule.due(0.0) is None  # nothing at start
    assert schedule.due(299.0) is None
    light = MaintenancePlan(keep=7, min_age=timedelta(minutes=1))
    assert schedule.due(300.0) == light
    assert schedule.due(301.0) is None  # the next one is due 300 s after this one
    assert schedule.due(650.0) == light
    full = schedule.due(3600.0)
    assert full == MaintenancePlan(7, timedelta(minutes=1), True, timedelta(hours=48))
    assert schedule.due(3700.0) is None
    assert schedule.due(3900.0) == light


def test_an_interval_of_zero_is_never() -> None:
    off = _schedule(audit_maintenance_interval_s=0, audit_compaction_interval_s=0)
    assert off.due(1e9) is None
    compaction_only = _schedule(audit_maintenance_interval_s=0)
    assert compaction_only.due(300.0) is None
    plan = compaction_only.due(3600.0)
    assert plan is not None
    assert plan.compact
