"""``fraudscore demo``: real transactions scored by a real worker on the local broker.

First the merchant risk: the registry database is brought to this build's schema, the labels
of the traffic's synthetic history (:func:`models.default.history_labels`: chargebacks and
verdicts about the same cards and merchants in the weeks before) go to the labels topic, and
the merchant-risk aggregator (``fraudscore merchant-risk``) runs until it has published the
snapshot of the traffic's day, so the worker's decisions carry merchant features. Then it
starts a worker process, feeds generated traffic (with some malformed records), follows the
decisions and dead letters as a ``read_committed`` consumer would, and sums them up. The last
``authorized`` transactions of the stream are sent by the authorizer (:mod:`app.authorizer`)
instead of the load generator: one by one, each waiting for its decision, so the summary
shows the latency an authorization service sees. The screen is drawn by the caller through
:class:`DemoView`, so this module stays free of rich.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Protocol

import msgspec
from aiokafka import AIOKafkaConsumer

from app.authorizer import AuthorizerResult, authorize
from app.db.engine import create_db_engine
from app.db.merchant_risk import published_days
from app.db.migration import upgrade
from app.loadgen import LoadgenResult, produce, send_labels
from app.pacer import paced_records
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from features.merchant import day_of, version_name
from models.default import history_labels
from models.synthetic import DEFAULT_START_MS, SyntheticTransaction, generate
from sinks.kafka import bulk_producer, client_options, ensure_topics, topic_partitions


class DemoView(Protocol):
    def sent(self, n: int) -> None: ...

    def decided(self, decision: dict[str, object]) -> None: ...

    def dead_lettered(self, reason: str) -> None: ...


@dataclass(slots=True)
class DemoSummary:
    loadgen: LoadgenResult | None = None
    authorizer: AuthorizerResult | None = None
    outcomes: Counter[str] = field(default_factory=Counter)
    reasons: Counter[str] = field(default_factory=Counter)
    dead_letters: Counter[str] = field(default_factory=Counter)
    fraud_outcomes: Counter[str] = field(default_factory=Counter)
    history_labels: int = 0  # sent to the merchant-risk aggregator
    merchant_snapshots: Counter[str] = field(default_factory=Counter)  # version -> decisions
    known_merchants: int = 0  # decisions at a merchant with labels in the last 30 days
    elapsed_s: float = 0.0

    @property
    def decided(self) -> int:
        return sum(self.outcomes.values())


async def run_demo(
    settings: FraudscoreSettings,
    view: DemoView,
    *,
    count: int,
    rate: float,
    cards: int,
    seed: int,
    malformed: int,
    authorized: int = 0,
    authorized_rate: float = 0,
    timeout_s: float = 120.0,
) -> DemoSummary:
    await ensure_topics(settings)
    generated = count - authorized  # by the load generator; then the authorizer's
    fraud_ids = _fraud_ids(generate(generated, cards=cards, seed=seed))
    fraud_ids |= _fraud_ids(islice(generate(count, cards=cards, seed=seed), generated, None))
    summary = DemoSummary()
    await asyncio.to_thread(_upgrade_registry, settings)
    log = demo_log(settings, "merchant-risk")
    aggregator = WorkerProcess(settings, log, command="merchant-risk")
    worker: WorkerProcess | None = None
    follower: AIOKafkaConsumer | None = None
    started = time.monotonic()
    try:
        summary.history_labels = await _send_history(settings, cards=cards, seed=seed)
        await _snapshot_published(settings, aggregator, day_of(DEFAULT_START_MS), timeout_s)
        follower = await _follower(settings)
        worker = WorkerProcess(settings, demo_log(settings))
        started = time.monotonic()
        watch = _Watch(settings, view, summary, fraud_ids, caught_up_at=generated)
        follow = asyncio.create_task(watch.follow(follower, count, malformed))
        summary.loadgen = await produce(
            settings,
            count=generated,
            cards=cards,
            seed=seed,
            rate=rate,
            malformed=malformed,
            on_progress=view.sent,
        )
        if authorized:  # once the worker has caught up: the steady state, not a backlog
            await asyncio.wait_for(watch.caught_up.wait(), timeout_s)
            records = paced_records(authorized, cards, seed, skip=generated)
            summary.authorizer = await authorize(
                settings, records, rate=authorized_rate, view=_SentOnly(view)
            )
        await asyncio.wait_for(follow, timeout_s)
    finally:
        summary.elapsed_s = time.monotonic() - started
        if worker is not None:
            worker.stop()
        if follower is not None:
            await follower.stop()
        aggregator.stop()
    return summary


def _upgrade_registry(settings: FraudscoreSettings) -> None:
    """Bring the registry database (labels, snapshots) to this build's schema."""
    engine = create_db_engine(settings)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


async def _send_history(settings: FraudscoreSettings, *, cards: int, seed: int) -> int:
    """Send the labels of the traffic's synthetic history to the labels topic; return how
    many."""
    labels = history_labels(seed, cards)
    producer = bulk_producer(settings)
    await producer.start()
    try:
        await send_labels(producer, settings, labels)
    finally:
        await producer.stop()
    return len(labels)


async def _snapshot_published(
    settings: FraudscoreSettings, aggregator: WorkerProcess, day: int, timeout_s: float
) -> None:
    """Wait until the aggregator has published the merchant snapshot of ``day``."""
    delay = settings.merchant_risk_delay_days
    engine = create_db_engine(settings)
    deadline = time.monotonic() + timeout_s
    try:
        while day not in await asyncio.to_thread(published_days, engine, delay):
            if aggregator.process.poll() is not None or time.monotonic() > deadline:
                raise TimeoutError(
                    f"the merchant-risk aggregator did not publish {version_name(day, delay)}"
                    f" (log: {aggregator.log_path})"
                )
            await asyncio.sleep(0.25)
    finally:
        engine.dispose()


def _fraud_ids(transactions: Iterable[SyntheticTransaction]) -> set[object]:
    return {s.record["transaction_id"] for s in transactions if s.scenario is not None}


@dataclass(frozen=True, slots=True)
class _SentOnly:
    """The authorizer's progress on the demo's screen: its sends (decisions show anyway)."""

    view: DemoView

    def sent(self, n: int) -> None:
        self.view.sent(n)

    def answered(self, outcome: str, *, fell_back: bool) -> None:
        pass


async def _follower(settings: FraudscoreSettings) -> AIOKafkaConsumer:
    """A read_committed consumer positioned at the current end of decisions and DLQ."""
    consumer = AIOKafkaConsumer(
        **client_options(settings),
        group_id=None,
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    tps = await topic_partitions(settings, settings.decisions_topic, settings.dlq_topic)
    consumer.assign(tps)
    for tp, end in (await consumer.end_offsets(tps)).items():
        consumer.seek(tp, end)
    return consumer


@dataclass(slots=True)
class _Watch:
    """Follows decisions and dead letters into the summary until all have arrived."""

    settings: FraudscoreSettings
    view: DemoView
    summary: DemoSummary
    fraud_ids: set[object]
    caught_up_at: int  # decisions seen when ``caught_up`` is set
    caught_up: asyncio.Event = field(default_factory=asyncio.Event)

    async def follow(self, consumer: AIOKafkaConsumer, count: int, malformed: int) -> None:
        summary = self.summary
        while summary.decided < count or sum(summary.dead_letters.values()) < malformed:
            for tp, records in (await consumer.getmany(timeout_ms=250)).items():
                for record in records:
                    if tp.topic == self.settings.dlq_topic:
                        self._dead_letter(dict(record.headers))
                    else:
                        self._decision(msgspec.json.decode(record.value or b"{}"))
            if summary.decided >= self.caught_up_at:
                self.caught_up.set()

    def _dead_letter(self, headers: dict[str, bytes]) -> None:
        reason = headers.get("fraudscore.reason", b"?").decode()
        self.summary.dead_letters[reason] += 1
        self.view.dead_lettered(reason)

    def _decision(self, decision: dict[str, object]) -> None:
        outcome = str(decision["decision"])
        self.summary.outcomes[outcome] += 1
        self.summary.reasons.update(map(str, decision["reasons"]))  # type: ignore[call-overload]
        if decision["transaction_id"] in self.fraud_ids:
            self.summary.fraud_outcomes[outcome] += 1
        self.summary.merchant_snapshots[str(decision.get("merchant_risk_version"))] += 1
        features = decision.get("features")
        if isinstance(features, dict) and features.get("merchant_labelled_30d", 0.0) > 0.0:
            self.summary.known_merchants += 1
        self.view.decided(decision)


def demo_log(settings: FraudscoreSettings, process: str = "worker") -> Path:
    """Where the demo's worker (or merchant-risk aggregator) writes its log."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return settings.var_dir / f"demo-{process}.log"
