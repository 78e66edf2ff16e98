"""``fraudscore demo``: real transactions scored by a real worker on the local broker.

Starts a worker process, feeds generated traffic (with some malformed records), follows the
decisions and dead letters as a ``read_committed`` consumer would, and sums them up. The
screen is drawn by the caller through :class:`DemoView`, so this module stays free of rich.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import msgspec
from aiokafka import AIOKafkaConsumer

from app.loadgen import LoadgenResult, produce
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from models.synthetic import generate
from sinks.kafka import client_options, ensure_topics, topic_partitions


class DemoView(Protocol):
    def sent(self, n: int) -> None: ...

    def decided(self, decision: dict[str, object]) -> None: ...

    def dead_lettered(self, reason: str) -> None: ...


@dataclass(slots=True)
class DemoSummary:
    loadgen: LoadgenResult | None = None
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
    timeout_s: float = 120.0,
) -> DemoSummary:
    await ensure_topics(settings)
    fraud_ids = {
        s.record["transaction_id"]
        for s in generate(count, cards=cards, seed=seed)
        if s.scenario is not None
    }
    summary = DemoSummary()
    follower = await _follower(settings)
    worker = WorkerProcess(settings, demo_log(settings))
    started = time.monotonic()
    try:
        watch = _Watch(settings, view, summary, fraud_ids)
        follow = asyncio.create_task(watch.follow(follower, count, malformed))
        summary.loadgen = await produce(
            settings,
            count=count,
            cards=cards,
            seed=seed,
            rate=rate,
            malformed=malformed,
            on_progress=view.sent,
        )
        await asyncio.wait_for(follow, timeout_s)
    finally:
        summary.elapsed_s = time.monotonic() - started
        worker.stop()
        await follower.stop()
    return summary


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

    async def follow(self, consumer: AIOKafkaConsumer, count: int, malformed: int) -> None:
        summary = self.summary
        while summary.decided < count or sum(summary.dead_letters.values()) < malformed:
            for tp, records in (await consumer.getmany(timeout_ms=250)).items():
                for record in records:
                    if tp.topic == self.settings.dlq_topic:
                        self._dead_letter(dict(record.headers))
                    else:
                        self._decision(msgspec.json.decode(record.value or b"{}"))

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
