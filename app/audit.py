"""The audit sink (``fraudscore audit-sink``) and the audit table as the settings configure it.

The sink reads every partition of the decisions topic with ``read_committed`` and appends what
it read to the Iceberg audit table once per audit checkpoint: every
``audit_checkpoint_interval_ms`` (30 s) or ``audit_checkpoint_max_records`` (50,000
decisions), and once more on SIGTERM. It never scores anything: it records the decisions the
workers committed.

Where it resumes is what the table says (``sinks.iceberg.committed_position``), never the
consumer group: the group's offsets are committed after each checkpoint for monitoring only.
A checkpoint that loses a commit race (another sink, maintenance) is staged again on the new
head, which drops what that head already holds; see docs/AUDIT.md for the whole argument.

Between checkpoints it maintains the table when its schedule says so
(:mod:`app.audit_maintenance`: tags and expiry every ``audit_maintenance_interval_s``,
compaction and orphan removal every ``audit_compaction_interval_s``), on its own handle.
"""

from __future__ import annotations

import asyncio
import logging
import random
import signal
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError, OffsetOutOfRangeError
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from sqlalchemy.exc import SQLAlchemyError

from app.audit_maintenance import MaintenancePlan, MaintenanceSchedule, maintain
from app.audit_metrics import AuditMetrics, start_audit_http
from app.db.engine import with_password
from app.failpoint import Failpoints
from app.settings import FraudscoreSettings
from models.pipeline import DecisionRecord
from sinks.errors import AuditError
from sinks.iceberg import (
    AuditPosition,
    AuditTable,
    CommittedDecision,
    from_epoch_ms,
    load_table,
    open_table,
)
from sinks.kafka import (
    CHECKPOINT_HEADER,
    PROCESSED_AT_HEADER,
    audit_reader,
    ensure_topics,
    topic_partitions,
)

log = logging.getLogger(__name__)

CATALOG_NAME = "fraudscore"
_POLL_MS = 200  # longest wait for records: bounds how late a due checkpoint or SIGTERM is seen
_decoder = msgspec.json.Decoder(DecisionRecord)


def catalog_properties(settings: FraudscoreSettings) -> dict[str, str]:
    """The SQL catalog's properties, all from the settings (never ``~/.pyiceberg.yaml``).
    They hold the catalog password and the S3 secret key: never log them."""
    audit_dir = settings.audit_dir.resolve()
    uri = settings.audit_catalog_uri
    if uri is None:
        audit_dir.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{audit_dir / 'catalog.db'}"
    url = with_password(uri, settings.audit_catalog_password, "FRAUDSCORE_AUDIT_CATALOG_PASSWORD")
    warehouse = settings.audit_warehouse or (audit_dir / "warehouse").as_uri()
    return {
        "uri": url.render_as_string(hide_password=False),
        "warehouse": warehouse,
        **s3_properties(settings),
    }


def s3_properties(settings: FraudscoreSettings) -> dict[str, str]:
    """pyiceberg's FileIO properties for an s3:// warehouse (unused by a file:// one)."""
    properties = {
        "s3.region": settings.audit_s3_region,
        "s3.force-virtual-addressing": str(not settings.audit_s3_path_style_access).lower(),
    }
    if settings.audit_s3_endpoint is not None:
        properties["s3.endpoint"] = settings.audit_s3_endpoint
    if settings.audit_s3_access_key_id is not None:
        properties["s3.access-key-id"] = settings.audit_s3_access_key_id
    if settings.audit_s3_secret_access_key is not None:
        properties["s3.secret-access-key"] = settings.audit_s3_secret_access_key.get_secret_value()
    return properties


def _catalog(settings: FraudscoreSettings) -> SqlCatalog:
    properties = catalog_properties(settings)
    try:
        return SqlCatalog(CATALOG_NAME, **properties)
    except SQLAlchemyError:  # another process created the catalog's own tables at that moment
        return SqlCatalog(CATALOG_NAME, **properties)


def open_audit_table(settings: FraudscoreSettings) -> AuditTable:
    """The audit table, created with the configured properties if missing (for writers)."""
    return open_table(_catalog(settings), settings.audit_table, settings.audit_table_properties)


def load_audit_table(settings: FraudscoreSettings) -> AuditTable:
    """The audit table, which must exist (for readers)."""
    return load_table(_catalog(settings), settings.audit_table)


class AuditSink:
    def __init__(
        self, settings: FraudscoreSettings, table: AuditTable, metrics: AuditMetrics | None = None
    ) -> None:
        self.settings = settings
        self.table = table
        self.metrics = metrics or AuditMetrics()
        self.failpoints = Failpoints(settings.failpoints)
        self.consumer = audit_reader(settings)
        self.maintenance = MaintenanceSchedule(settings)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume and append until ``stop`` is set; then append what is pending."""
        await ensure_topics(self.settings)
        position = await asyncio.to_thread(self.table.position)
        await self.consumer.start()
        try:
            await self._seek(position)
            self.metrics.positioned = True
            log.info(
                "audit sink ready at checkpoint %d, offsets %s",
                position.checkpoint_id,
                position.offsets.get(self.settings.decisions_topic, {}),
            )
            await self._consume(stop)
        finally:
            await self.consumer.stop()

    async def _seek(self, position: AuditPosition) -> None:
        partitions = await topic_partitions(self.settings, self.settings.decisions_topic)
        self.consumer.assign(partitions)
        for tp in partitions:
            if tp.topic in position.offsets and tp.partition in position.offsets[tp.topic]:
                self.consumer.seek(tp, position.offsets[tp.topic][tp.partition])
            else:
                await self.consumer.seek_to_beginning(tp)

    async def _consume(self, stop: asyncio.Event) -> None:
        interval_s = self.settings.audit_checkpoint_interval_ms / 1000
        max_records = self.settings.audit_checkpoint_max_records
        pending: list[CommittedDecision] = []
        due = time.monotonic() + interval_s
        while not stop.is_set():
            fetched = await self._fetch(max_records - len(pending))
            if fetched:
                pending.extend(fetched)
                log.debug("%d decisions pending", len(pending))
            if len(pending) >= max_records or (pending and time.monotonic() >= due):
                await self._checkpoint(pending)
                pending = []
                due = time.monotonic() + interval_s
            plan = self.maintenance.due()
            if plan is not None:
                await asyncio.to_thread(self._maintain, plan)
        if pending:
            await self._checkpoint(pending)

    async def _fetch(self, limit: int) -> list[CommittedDecision]:
        try:
            batches = await self.consumer.getmany(timeout_ms=_POLL_MS, max_records=limit)
        except OffsetOutOfRangeError as exc:
            raise AuditError(
                f"decisions the audit table does not hold yet were deleted from "
                f"{self.settings.decisions_topic} ({exc}); the audit trail has a gap there. "
                "Restore them, or accept the gap by appending a snapshot with later offsets"
            ) from exc
        return [_committed(record) for records in batches.values() for record in records]

    async def _checkpoint(self, pending: Sequence[CommittedDecision]) -> None:
        position = await asyncio.to_thread(self._append, pending)
        await self._report(position)

    def _append(self, pending: Sequence[CommittedDecision]) -> AuditPosition:
        """Append what the table does not hold yet; on a lost race, again on the new head."""
        started, attempt = time.monotonic(), 0
        while True:
            attempt += 1
            staged = self.table.stage(pending, datetime.now(UTC))
            if staged is None:
                log.info("the %d decisions read were all in the table already", len(pending))
                return self.table.position()
            self.failpoints.hit("audit.before_commit")
            position = self.table.commit(staged)
            if position is not None:
                self.failpoints.hit("audit.after_commit")
                self.metrics.committed(
                    staged.rows, time.monotonic() - started, self.table.snapshot_count()
                )
                log.info(
                    "audit checkpoint %d: %d rows in %.0f ms",
                    position.checkpoint_id,
                    staged.rows,
                    (time.monotonic() - started) * 1000,
                )
                return position
            self.metrics.conflicts.inc()
            log.warning(
                "audit checkpoint %d lost a commit race (attempt %d); staging it again",
                staged.checkpoint_id,
                attempt,
            )
            time.sleep(random.uniform(0.0, min(1.0, 0.05 * attempt)))

    def _maintain(self, plan: MaintenancePlan) -> None:
        """A maintenance run between checkpoints, on the sink's own handle (so it never races
        the sink's commits; another writer's it handles like the CLI's run). A run that keeps
        losing races gives up until the next one; any other error stops the sink."""
        started = time.monotonic()
        try:
            report = maintain(self.table, datetime.now(UTC), plan)
        except CommitFailedException:
            self.metrics.maintenance_failures.inc()
            log.warning("audit maintenance kept losing commit races; it tries again next run")
            return
        seconds = time.monotonic() - started
        self.metrics.maintained(report, seconds, self.table.snapshot_count())
        log.info(
            "audit maintenance in %.0f ms: %d days compacted, %d tagged, %d snapshots expired%s",
            seconds * 1000,
            len(report.compacted),
            len(report.tagged),
            len(report.expired),
            "" if report.orphans is None else f", {len(report.orphans)} orphan files removed",
        )

    async def _report(self, position: AuditPosition) -> None:
        """Commit the table's offsets to the consumer group, for lag monitoring only."""
        topic = self.settings.decisions_topic
        offsets = {TopicPartition(topic, p): o for p, o in position.offsets.get(topic, {}).items()}
        try:
            await self.consumer.commit(offsets)
        except KafkaError:
            log.warning("could not commit monitoring offsets to %s", self.settings.audit_group_id)


def _committed(record: ConsumerRecord) -> CommittedDecision:
    try:
        decision = _decoder.decode(record.value)
    except msgspec.DecodeError as exc:
        raise AuditError(
            f"the decision at {record.topic}/{record.partition}@{record.offset} cannot be "
            f"decoded ({exc}); the audit sink stops rather than leave a hole in the trail: "
            "find what wrote it to the decisions topic"
        ) from exc
    headers = dict(record.headers)
    processed_at, checkpoint = headers.get(PROCESSED_AT_HEADER), headers.get(CHECKPOINT_HEADER)
    return CommittedDecision(
        decision,
        record.topic,
        record.partition,
        record.offset,
        None if processed_at is None else from_epoch_ms(int(processed_at)),
        None if checkpoint is None else checkpoint.decode(),
    )


async def serve(settings: FraudscoreSettings) -> None:
    """Run the audit sink until SIGTERM or SIGINT, then append what is pending and exit."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    metrics = AuditMetrics()
    http = start_audit_http(settings, metrics)
    try:
        table = await asyncio.to_thread(open_audit_table, settings)
        await AuditSink(settings, table, metrics).run(stop)
    finally:
        http.stop()
