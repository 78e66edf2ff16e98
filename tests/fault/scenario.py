"""The shape every fault test shares: feed the input while faults happen, then let the
survivors catch up, stop them cleanly and check everything against the crash-free run; last,
an audit sink must turn the decisions into exactly one audit row each."""

from __future__ import annotations

import asyncio

from app.loadgen import LoadgenResult, produce
from app.process import WorkerProcess
from tests.fault.conftest import CARDS, MALFORMED, RATE, SEED
from tests.support.audit import assert_audited
from tests.support.deployment import Deployment, assert_exactly_once
from tests.support.reference import Reference, reference
from tests.support.steps import Steps


def feed(dep: Deployment, count: int, rate: float = RATE) -> asyncio.Task[LoadgenResult]:
    """Produce ``count`` transactions (plus malformed records) at ``rate`` per second, in
    the background."""
    return asyncio.create_task(
        produce(dep.settings, count=count, cards=CARDS, seed=SEED, rate=rate, malformed=MALFORMED)
    )


class SteppedFeed:
    """The input in ``steps`` equal parts, each sent (at ``RATE``) once :meth:`step` allows it
    (:mod:`tests.support.steps`): a kill plan steps it at every worker start."""

    def __init__(self, dep: Deployment, count: int, steps: int) -> None:
        self._steps = Steps(-(-(count + MALFORMED) // steps))
        self.task = asyncio.create_task(
            produce(
                dep.settings,
                count=count,
                cards=CARDS,
                seed=SEED,
                rate=RATE,
                malformed=MALFORMED,
                before_batch=self._steps.held,
            )
        )

    def step(self) -> None:
        self._steps.step()

    def rest(self) -> asyncio.Task[LoadgenResult]:
        """Let the rest of the input go; the feed's task, for :func:`finish`."""
        self._steps.open()
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
