"""Two workers in one group: a killed member's partitions move to the survivor (restored from
the changelog) and back; a paused member (a zombie) is fenced when it wakes up."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from app.process import WorkerProcess
from tests.fault.conftest import Load
from tests.fault.scenario import feed, finish
from tests.support.deployment import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.fault]

RATE = 2_500.0  # slower input, so that traffic flows across every rebalance


_ASSIGNED = re.compile(r"partitions assigned: \[([\d, ]*)\]")


def _assigned_counts(text: str) -> list[int]:
    return [len(m.group(1).split(",")) if m.group(1) else 0 for m in _ASSIGNED.finditer(text)]


async def _takes_over(worker: WorkerProcess, dep: Deployment, since: int) -> bool:
    """Wait until ``worker``, after byte ``since`` of its log, has been assigned every
    partition AND has started the ones it did not own before (each start's InitProducerId
    comes after the restore, which waits for the previous owner's open transaction to end)."""
    deadline = time.monotonic() + dep.settings.session_timeout_ms / 1000 + 60
    total = dep.settings.partitions
    while time.monotonic() < deadline:
        raw = worker.log_path.read_bytes()
        before, after = (part.decode(errors="replace") for part in (raw[:since], raw[since:]))
        owned_before = (_assigned_counts(before) or [0])[-1]
        start = next(
            (m.end() for m in _ASSIGNED.finditer(after) if _assigned_counts(m.group(0)) == [total]),
            None,
        )
        if start is not None and after[start:].count("ready at offset") >= total - owned_before:
            return True
        await asyncio.sleep(0.25)
    return False


async def _start_both(dep: Deployment) -> tuple[WorkerProcess, WorkerProcess]:
    w1, w2 = dep.start("w1"), dep.start("w2")
    for worker in (w1, w2):
        assert await worker.wait_for_log("ready at offset"), dep.logs()
    return w1, w2


async def test_survivor_takes_over_a_killed_member_and_gives_back(
    deployment: Deployment, load: Load
) -> None:
    dep = deployment
    feeding = feed(dep, load.count, RATE)
    w1, w2 = await _start_both(dep)
    await asyncio.sleep(2.0)
    since = w2.log_path.stat().st_size
    assert w1.kill() == -9
    assert await _takes_over(w2, dep, since), dep.logs()
    w1_again = dep.start("w1")  # same static id: the group rebalances partitions back
    assert await w1_again.wait_for_log("ready at offset"), dep.logs()
    await finish(dep, feeding, w1_again, w2)


async def test_a_paused_zombie_is_fenced_when_it_wakes(deployment: Deployment, load: Load) -> None:
    dep = deployment
    w2 = dep.start("w2")
    assert await w2.wait_for_log("ready at offset"), dep.logs()
    # w1 joins second, takes half the partitions, then freezes itself in the middle of a
    # checkpoint: outputs sent, offsets and commit not yet. The input starts only now, so
    # that it still flows however long w1 took to start.
    w1 = dep.start("w1", failpoints="checkpoint.after_outputs=5:stop")
    assert await w1.wait_for_log("ready at offset"), dep.logs()
    feeding = feed(dep, load.count, RATE)
    since = w2.log_path.stat().st_size
    for _ in range(600):
        if w1.frozen:
            break
        await asyncio.sleep(0.05)
    assert w1.frozen, dep.logs()
    # no heartbeats: w1's partitions move to w2, and w1's group generation is stale
    assert await _takes_over(w2, dep, since), dep.logs()
    w1.resume()  # SIGCONT: its offset commit and its transaction must be refused
    assert await w1.wait_for_log("was fenced by a newer owner", timeout_s=30), dep.logs()
    await finish(dep, feeding, w1, w2)
