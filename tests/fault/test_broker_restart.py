"""The broker stops and starts again mid-stream; the worker recovers by itself."""

from __future__ import annotations

import asyncio

import pytest

from app.broker import LocalBroker
from tests.fault.conftest import Load
from tests.fault.scenario import feed, finish
from tests.support.deployment import Deployment

pytestmark = [pytest.mark.integration, pytest.mark.fault]


async def test_worker_recovers_from_a_broker_restart(
    deployment: Deployment, load: Load, local_broker: LocalBroker | None
) -> None:
    if local_broker is None:
        pytest.skip("FRAUDSCORE_KAFKA_BOOTSTRAP names an external broker: not ours to restart")
    dep = deployment
    feeding = feed(dep, load.count, 2_500.0)
    worker = dep.start("w1")
    assert await worker.wait_for_log("ready at offset"), dep.logs()
    await asyncio.sleep(2.0)
    await asyncio.to_thread(local_broker.down)
    await asyncio.sleep(3.0)
    await asyncio.to_thread(local_broker.up)
    await finish(dep, feeding, worker)
    assert worker.process.returncode == 0
