"""``fraudscore demo``: real transactions scored by a real worker on the local broker.

Starts a worker process, feeds generated traffic (with some malformed records), follows the
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
from app.loadgen import LoadgenResult, produce
from app.pacer import paced_records
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from models.synthetic import SyntheticTransaction, generate
from sinks.kafka import client_options, ensure_topics, topic_partitions


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
    follower = await _follower(settings)
    worker = WorkerProcess(settings, demo_log(settings))
    started = time.monotonic()
    try:
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
        worker.stop()
        await follower.stop()
    return summary


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
        self.view.decided(decision)


def demo_log(settings: FraudscoreSettings) -> Path:
    """Where the demo's worker writes its log."""
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    return settings.var_dir / "demo-worker.log"
