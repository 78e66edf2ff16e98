"""The shape every fault test shares: feed the input while faults happen, then let the
survivors catch up, stop them cleanly and check everything against the crash-free run; last,
an audit sink must turn the decisions into exactly one audit row each."""

from __future__ import annotations

import asyncio
import sys

from app.loadgen import LoadgenResult, produce
from app.process import WorkerProcess
from tests.fault.conftest import CARDS, MALFORMED, RATE, SEED
from tests.support.audit import assert_audited
from tests.support.deployment import Deployment, assert_exactly_once
from tests.support.reference import Reference, reference


def feed(dep: Deployment, count: int, rate: float = RATE) -> asyncio.Task[LoadgenResult]:
    """Produce ``count`` transactions (plus malformed records) at ``rate`` per second, in
    the background."""
    return asyncio.create_task(
        produce(dep.settings, count=count, cards=CARDS, seed=SEED, rate=rate, malformed=MALFORMED)
    )


class SteppedFeed:
    """The input in ``steps`` equal parts, each sent (at ``RATE``) once :meth:`step` allows it.

    A kill plan steps it at every worker start, so every worker it kills has input arriving:
    a feed that runs ahead of the plan leaves the later kills to land on an idle worker, and
    their failpoints to wait for checkpoints that never come."""

    def __init__(self, dep: Deployment, count: int, steps: int) -> None:
        self._size = -(-(count + MALFORMED) // steps)
        self._allowed = 0
        self._more = asyncio.Event()
        self.task = asyncio.create_task(
            produce(
                dep.settings,
                count=count,
                cards=CARDS,
                seed=SEED,
                rate=RATE,
                malformed=MALFORMED,
                before_batch=self._held,
            )
        )

    async def _held(self, sent: int) -> None:
        while sent >= self._allowed:
            self._more.clear()
            await self._more.wait()

    def step(self) -> None:
        self._allowed += self._size
        self._more.set()

    def rest(self) -> asyncio.Task[LoadgenResult]:
        """Let the rest of the input go; the feed's task, for :func:`finish`."""
        self._allowed = sys.maxsize
        self._more.set()
        return self.task


async def finish(
    dep: Deployment, feeding: asyncio.Task[LoadgenResult], *running: WorkerProcess
) -> Reference:
    """Wait for the input, let ``running`` workers (or a fresh one) catch up, stop them with
    SIGTERM, and assert exactly-once against the reference."""
    sent = await feeding
    assert sent.malformed == MALFORMED
    ref = await reference(dep.settings)
    workers = list(running) or [dep.start("w1")]
    for worker in workers:
        assert await worker.wait_for_log("ready at offset"), dep.logs()
    await dep.wait_caught_up(ref.input_ends)
    for worker in workers:
        assert worker.stop() == 0, worker.log_tail()
    await assert_exactly_once(dep, ref)
    await assert_audited(dep.settings, len(ref.decisions), dep.log_dir / "audit-sink.log")
    return ref
