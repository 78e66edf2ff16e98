"""The merchant-risk aggregator SIGKILLed at random moments and inside its checkpoint (after
its dead letters committed, before its database transaction) while labels flow: every valid
label stored exactly once, every bad one dead-lettered exactly once, every snapshot published
once and equal to the crash-free recount.

One labels partition, labels produced in order of report time: then which labels a snapshot
holds is fixed by the input (all reported before its cut-off, none after), so every published
snapshot must equal :class:`features.merchant.LabelSnapshots` over all the labels.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from random import Random

import msgspec
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.db import migration
from app.db.engine import create_db_engine
from app.db.merchant_risk import load_all, positions
from app.db.tables import Label
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from features.merchant import LabelSnapshots, day_of
from features.windows import DAY_MS
from models.label import FRAUD, GENUINE, LabelRecord
from tests.support.kafka import read_topic
from tests.support.labels import send_labels, until
from tests.support.settings import isolated_settings

pytestmark = [pytest.mark.integration, pytest.mark.fault]

START_DAY = 20_400
LABELS, BAD_EVERY, KILLS = 3_000, 50, 6
STEP_KILLS = ["merchant_risk.after_dead_letters=2", "merchant_risk.before_db=3"]
READY = "merchant-risk aggregator ready"
_FAILPOINT_PATIENCE_S = 60


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> FraudscoreSettings:
    return isolated_settings(
        kafka_bootstrap,
        unique,
        tmp_path / "var",
        partitions=1,
        merchant_risk_checkpoint_interval_ms=50,
    )


@pytest.fixture
def engine(settings: FraudscoreSettings) -> Iterator[Engine]:
    engine = create_db_engine(settings)
    migration.upgrade(engine)
    yield engine
    engine.dispose()


def _stream(seed: int) -> tuple[list[tuple[bytes, bytes]], list[LabelRecord], list[int]]:
    """Records in order of report time over ~40 days; every BAD_EVERY-th is invalid. Returns
    the records, the valid labels and the offsets of the invalid ones."""
    rng = Random(seed)
    records: list[tuple[bytes, bytes]] = []
    valid: list[LabelRecord] = []
    bad: list[int] = []
    for i in range(LABELS):
        reported = START_DAY * DAY_MS + i * (40 * DAY_MS // LABELS)
        event = reported - rng.randrange(DAY_MS, 30 * DAY_MS)
        fraud = rng.random() < 0.3
        label = LabelRecord(
            f"tx_{i}",
            f"tok_{rng.randrange(200)}",
            f"m_{rng.randrange(20)}",
            FRAUD if fraud else GENUINE,
            event,
            reported,
        )
        if i % BAD_EVERY == BAD_EVERY - 1:
            bad.append(len(records))
            records.append((label.key, msgspec.json.encode({**label.wire(), "label": "?"})))
        else:
            valid.append(label)
            records.append((label.key, msgspec.json.encode(label.wire())))
    return records, valid, bad


def _start(settings: FraudscoreSettings, log: Path, failpoints: str = "") -> WorkerProcess:
    return WorkerProcess(
        settings.model_copy(update={"failpoints": failpoints}), log, command="merchant-risk"
    )


async def _kill(process: WorkerProcess, failpoints: str, rng: Random) -> str:
    """SIGKILL ``process``: by its failpoint, or by us at a random moment after it is ready."""
    if failpoints:
        for _ in range(_FAILPOINT_PATIENCE_S * 20):
            if process.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
    else:
        assert await process.wait_for_log(READY), process.log_tail()
        await asyncio.sleep(rng.uniform(0.1, 1.5))
    fired = process.process.poll() is not None
    assert process.kill() == -9, f"the aggregator exited on its own:\n{process.log_tail()}"
    return failpoints.partition("=")[0] if fired else "random"


async def test_sigkills_leave_every_label_once_and_every_snapshot_right(
    settings: FraudscoreSettings, engine: Engine, tmp_path: Path, processes: list[WorkerProcess]
) -> None:
    records, valid, bad = _stream(seed=2026)
    feeding = asyncio.create_task(send_labels(settings, records, chunk=15, pause_s=0.25))
    rng, kills = Random(7), Counter[str]()
    for i in range(KILLS):
        failpoints = "" if i % 2 == 0 else STEP_KILLS[(i // 2) % len(STEP_KILLS)]
        process = _start(settings, tmp_path / f"aggregator-{i}.log", failpoints)
        processes.append(process)
        kills[await _kill(process, failpoints, rng)] += 1
    assert await feeding == len(records)
    last = _start(settings, tmp_path / "aggregator-last.log")
    processes.append(last)
    assert await last.wait_for_log(READY), last.log_tail()  # SIGTERM is handled from then on
    done = await until(lambda: positions(engine, settings.labels_topic).get(0) == len(records))
    assert last.stop() == 0, last.log_tail()
    assert done, last.log_tail()
    # kills landed with dead letters committed and the database not, and before the database
    assert kills["merchant_risk.after_dead_letters"] > 0, kills
    assert kills["merchant_risk.before_db"] > 0, kills

    with Session(engine) as session:
        stored = Counter(session.scalars(select(Label.transaction_id)))
    assert stored == Counter(label.transaction_id for label in valid)

    dead = await read_topic(settings, settings.labels_dlq_topic, expect=len(bad))
    offsets = Counter(int(dict(r.headers)["fraudscore.source.offset"]) for r in dead)
    assert offsets == Counter(bad), "each bad label dead-lettered exactly once"

    expected = LabelSnapshots(label.fact() for label in valid)
    published = list(load_all(engine, 7))
    last_reported = max(label.reported_at_ms for label in valid)
    first_day = day_of(min(label.reported_at_ms for label in valid)) + 2
    due_until = day_of(last_reported - settings.merchant_risk_label_lateness_ms) + 1
    assert [s.day for s in published] == list(range(first_day, due_until + 1))
    for made in published:
        assert made == expected.snapshot_for(made.day), made.version
    assert any(made.counts for made in published)  # so the comparison compared something
