"""The audit sink's metrics and readiness, served with ``/healthz`` and ``/readyz`` on
``FRAUDSCORE_AUDIT_HTTP_HOST:FRAUDSCORE_AUDIT_HTTP_PORT`` (port 0: a free one, logged) by a
daemon thread beside its event loop (:mod:`app.http_server`, :mod:`app.probes`).

Updated once per audit checkpoint (an Iceberg commit), never per decision. Its lag behind
the decisions topic is the lag of the consumer group ``FRAUDSCORE_AUDIT_GROUP_ID``, to which
it commits its position after every checkpoint: any Kafka lag exporter reports it.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.http_server import BackgroundHttpServer
from app.metrics import new_registry
from app.probes import create_probe_app
from app.settings import FraudscoreSettings

if TYPE_CHECKING:
    from app.audit_maintenance import MaintenanceReport

log = logging.getLogger(__name__)

_COMMIT_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class AuditMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else new_registry()
        self.positioned = False  # ready: the table's position is known and the reader seeked
        self.rows = Counter(
            "fraudscore_audit_rows", "Decisions appended to the audit table", registry=r
        )
        self.commits = Counter(
            "fraudscore_audit_commits", "Audit checkpoints committed to Iceberg", registry=r
        )
        self.conflicts = Counter(
            "fraudscore_audit_commit_conflicts",
            "Audit commits that lost a race to another writer and were staged again",
            registry=r,
        )
        self.commit_seconds = Histogram(
            "fraudscore_audit_commit_duration_seconds",
            "Time to stage and commit one audit checkpoint (retries included)",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        self.snapshots = Gauge(
            "fraudscore_audit_snapshots",
            "Snapshots in the audit table's metadata after the last commit or maintenance run",
            registry=r,
        )
        self.last_commit = Gauge(
            "fraudscore_audit_last_commit_timestamp_seconds",
            "Wall-clock time of the last audit commit (Unix seconds)",
            registry=r,
        )

        self.maintenance_runs = Counter(
            "fraudscore_audit_maintenance_runs",
            "Maintenance runs the sink completed between its checkpoints",
            registry=r,
        )
        self.maintenance_failures = Counter(
            "fraudscore_audit_maintenance_failures",
            "Maintenance runs the sink gave up after losing commit races in a row",
            registry=r,
        )
        self.maintenance_seconds = Histogram(
            "fraudscore_audit_maintenance_duration_seconds",
            "Time of one maintenance run of the sink (the next checkpoint waits for it)",
            buckets=_COMMIT_BUCKETS,
            registry=r,
        )
        self.maintained_items = Counter(
            "fraudscore_audit_maintained",
            "What the sink's maintenance did: days compacted or tagged, snapshots expired, "
            "orphan files removed",
            ["action"],
            registry=r,
        )
        self.last_maintenance = Gauge(
            "fraudscore_audit_last_maintenance_timestamp_seconds",
            "Wall-clock time of the sink's last completed maintenance run (Unix seconds)",
            registry=r,
        )

    def committed(self, rows: int, seconds: float, snapshots: int) -> None:
        self.rows.inc(rows)
        self.commits.inc()
        self.commit_seconds.observe(seconds)
        self.snapshots.set(snapshots)
        self.last_commit.set(time.time())

    def maintained(self, report: MaintenanceReport, seconds: float, snapshots: int) -> None:
        self.maintenance_runs.inc()
        self.maintenance_seconds.observe(seconds)
        self.maintained_items.labels("compacted_days").inc(len(report.compacted))
        self.maintained_items.labels("tagged_days").inc(len(report.tagged))
        self.maintained_items.labels("expired_snapshots").inc(len(report.expired))
        self.maintained_items.labels("removed_orphans").inc(len(report.orphans or ()))
        self.snapshots.set(snapshots)
        self.last_maintenance.set(time.time())

    def problems(self) -> list[str]:
        return [] if self.positioned else ["the audit table's position is not read yet"]


def start_audit_http(settings: FraudscoreSettings, metrics: AuditMetrics) -> BackgroundHttpServer:
    server = BackgroundHttpServer(
        create_probe_app("fraudscore audit sink", metrics.problems, metrics.registry),
        settings.audit_http_host,
        settings.audit_http_port,
        name="audit-http",
    )
    server.start()
    log.info("audit sink HTTP on %s (/metrics, /healthz, /readyz)", server.url)
    return server
