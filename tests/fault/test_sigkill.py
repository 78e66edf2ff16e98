"""SIGKILL at random moments and at every checkpoint step; and with the disk lost too.

After each kill the worker is restarted with the same static membership id. At the end every
check of ``assert_exactly_once`` holds: each transaction decided exactly once, byte-identical
to the crash-free run, state equal to it, and kcat agrees.
"""

from __future__ import annotations

import asyncio
from random import Random

import pytest

from tests.fault.conftest import SEED, Load
from tests.fault.scenario import SteppedFeed, finish
from tests.support.deployment import Deployment, aborted_decisions

pytestmark = [pytest.mark.integration, pytest.mark.fault]

# A failpoint kills the worker at the Nth pass of a step: inside the checkpoint transaction
# after the changelog / after all outputs / after the offsets, and after the commit before
# RocksDB is written; "restore.read" kills it while it rebuilds state from the changelog.
# a loaded machine can take a minute just to start a worker (imports, default model)
_FAILPOINT_PATIENCE_S = 120
STEP_KILLS = [
    "checkpoint.after_changelog=7",
    "checkpoint.after_outputs=5",
    "checkpoint.after_offsets=9",
    "checkpoint.after_commit=6",
]


async def _run_with_kills(
    dep: Deployment, plan: list[str | None], feed: SteppedFeed, rng: Random, lose_disk: bool
) -> int:
    """Start, kill and restart the worker once per plan item, with the next step of the input
    on its way each time; returns the number of kills."""
    kills = 0
    for failpoints in plan:
        if lose_disk:
            dep.lose_disk("w1")
        worker = dep.start("w1", failpoints=failpoints or "")
        # The next part of the input goes out once the worker is ready (or dead already), so
        # that it arrives while the worker runs: a backlog would be decided in a few large
        # checkpoints, fewer than a failpoint may be waiting for.
        ready = await worker.wait_for_log("ready at offset")
        feed.step()
        if failpoints:  # the failpoint kills it; if the step is never reached, we do
            for _ in range(_FAILPOINT_PATIENCE_S * 20):
                if worker.process.poll() is not None:
                    break
                await asyncio.sleep(0.05)
        else:
            assert ready, dep.logs()
            await asyncio.sleep(rng.uniform(0.05, 1.5))
        kills += worker.kill() == -9
    return kills


def _plan(kills: int) -> list[str | None]:
    """Every other kill random, the others at each checkpoint step in turn."""
    return [None if i % 2 == 0 else STEP_KILLS[(i // 2) % len(STEP_KILLS)] for i in range(kills)]


async def _scenario(dep: Deployment, load: Load, plan: list[str | None], *, lose_disk: bool) -> int:
    feed = SteppedFeed(dep, load.count, len(plan))
    kills = await _run_with_kills(dep, plan, feed, Random(SEED), lose_disk)
    await finish(dep, feed.rest())
    return kills


async def test_random_sigkills_and_kills_inside_checkpoints(
    deployment: Deployment, load: Load
) -> None:
    kills = await _scenario(deployment, load, _plan(load.kills), lose_disk=False)
    assert kills >= min(8, load.kills)
    # proof that kills landed inside transactions: aborted decisions exist in the log
    assert await aborted_decisions(deployment.settings, load.count) > 0


async def test_lost_disk_on_every_restart(deployment: Deployment, load: Load) -> None:
    plan: list[str | None] = [None, "checkpoint.after_offsets=4", None, "restore.read=1", None]
    kills = await _scenario(deployment, load, plan, lose_disk=True)
    assert kills >= 4
