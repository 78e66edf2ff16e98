"""Hot swap on the real broker: a running worker process switches to a newly promoted model,
a new policy and a shadow model mid-stream, without a restart, and loses or repeats nothing.

The registry starts with m1 active. Batch A is decided; then, while batch B is flowing, m2 is
promoted, a new policy is set and m3 is put in shadow; once the worker logs the switch, batch
C is sent. Under read_committed every transaction is decided exactly once; A is all m1, C is
all m2 + policy-1 + shadow m3; within each partition the versions switch once, in offset
order; and every decision equals, byte for byte, the pure pipeline of the versions it names
run over that partition's whole log (so the shadow score is m3's and the decision m2's alone).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from pydantic import SecretStr

from app.db import migration, registry
from app.db.engine import create_db_engine
from app.db.session import registry_session
from app.loadgen import produce
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from features.stream import MemoryCardStore
from models.artefact import load_artefact
from models.pipeline import Pipeline, SourceRecord, encode_decision
from models.policy import Policy
from tests.support.artefact import make_artefact
from tests.support.kafka import Record, read_partitions, read_topic
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration

CARDS = 300
A, B, C = 1500, 3000, 1500  # transactions per batch; B is sent at RATE while the swap happens
RATE = 1000.0
OLD = ("m1", None, "default-1")
NEW = ("m2", "m3", "policy-1")
SWITCHED = "now scoring with model m2, shadow m3, policy policy-1"


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> FraudscoreSettings:
    settings = isolated_settings(
        kafka_bootstrap,
        unique,
        tmp_path / "var",
        database_url=SecretStr(f"sqlite:///{tmp_path / 'registry.db'}"),
        registry_poll_ms=200,
    )
    engine = create_db_engine(settings)
    migration.upgrade(engine)
    engine.dispose()
    with registry_session(settings) as session:
        for version, trees in (("m1", 5), ("m2", 20), ("m3", 40)):
            artefact = make_artefact(tmp_path / "models" / version, version, trees)
            registry.register_model(session, artefact, "test")
        registry.promote(session, "m1", "test")
    return settings


def _versions(value: bytes) -> tuple[str, str | None, str]:
    d = msgspec.json.decode(value)
    return d["model_version"], d.get("shadow_model_version"), d["policy_version"]


def _references(
    settings: FraudscoreSettings, logs: dict[int, list[Record]]
) -> dict[tuple[str, str | None, str], dict[str, bytes]]:
    """Per version triple: transaction id → decision of that pipeline over the whole logs."""
    models = {
        version: load_artefact(settings.var_dir.parent / "models" / version)
        for version in ("m1", "m2", "m3")
    }
    pipelines = {
        OLD: Pipeline(models["m1"], Policy(), settings.max_record_bytes),
        NEW: Pipeline(
            models["m2"],
            Policy(version="policy-1", decline_threshold=0.7),
            settings.max_record_bytes,
            shadow=models["m3"],
        ),
    }
    out: dict[tuple[str, str | None, str], dict[str, bytes]] = {}
    for versions, pipeline in pipelines.items():
        out[versions] = {}
        for records in logs.values():
            batch = [SourceRecord(r.topic, r.partition, r.offset, r.key, r.value) for r in records]
            for _, decision in pipeline.run(batch, MemoryCardStore()).decisions:
                out[versions][decision.transaction_id] = encode_decision(decision)
    return out


async def _swap_while_b_flows(settings: FraudscoreSettings, worker: WorkerProcess) -> None:
    flowing = asyncio.create_task(produce(settings, count=B, cards=CARDS, seed=2, rate=RATE))
    await asyncio.sleep(1.0)
    with registry_session(settings) as session:
        registry.promote(session, "m2", "test")
        registry.set_policy(session, "test", Policy(), {"decline_threshold": 0.7})
        registry.shadow(session, "m3", "test")
    assert await worker.wait_for_log(SWITCHED, timeout_s=60), worker.log_tail()
    assert not flowing.done(), "B ended before the swap: raise B or lower RATE"
    await flowing


async def test_a_running_worker_switches_model_policy_and_shadow_exactly_once(
    settings: FraudscoreSettings, tmp_path: Path
) -> None:
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        await produce(settings, count=A, cards=CARDS, seed=1, rate=0)
        before = await read_topic(settings, settings.decisions_topic, expect=A)
        await _swap_while_b_flows(settings, worker)
        await produce(settings, count=C, cards=CARDS, seed=3, rate=0)
        decisions = await read_topic(settings, settings.decisions_topic, expect=A + B + C)
        pid_throughout = worker.process.poll() is None
    finally:
        exit_code = worker.stop()
    assert pid_throughout, "the worker process ended during the swap"
    assert exit_code == 0, worker.log_tail()

    ids = Counter(msgspec.json.decode(r.value)["transaction_id"] for r in decisions)
    assert len(ids) == A + B + C, f"{A + B + C - len(ids)} decisions missing"
    assert set(ids.values()) == {1}, f"duplicates: {[i for i, n in ids.items() if n > 1][:5]}"

    assert {_versions(r.value) for r in before} == {OLD}
    by_batch = Counter(
        (msgspec.json.decode(r.value)["transaction_id"].split("_")[1], _versions(r.value))
        for r in decisions
    )
    assert by_batch[("1", OLD)] == A
    assert by_batch[("3", NEW)] == C
    assert by_batch[("2", OLD)] + by_batch[("2", NEW)] == B
    assert by_batch[("2", OLD)] > 0
    assert by_batch[("2", NEW)] > 0, "the swap happened after B: nothing switched mid-stream"

    by_partition: dict[int, list[tuple[int, tuple[str, str | None, str]]]] = {}
    for r in decisions:
        source = msgspec.json.decode(r.value)["source"]
        by_partition.setdefault(source["partition"], []).append(
            (source["offset"], _versions(r.value))
        )
    for partition, decided in by_partition.items():
        sequence = [versions for _, versions in sorted(decided)]
        switch = sequence.index(NEW)
        assert sequence == [OLD] * switch + [NEW] * (len(sequence) - switch), (
            f"p{partition}: versions do not switch once, in offset order"
        )

    references = _references(settings, await read_partitions(settings, settings.input_topic))
    for record in decisions:
        transaction_id = msgspec.json.decode(record.value)["transaction_id"]
        assert record.value == references[_versions(record.value)][transaction_id]
