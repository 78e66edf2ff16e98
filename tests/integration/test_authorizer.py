"""The authorizer against a real worker on the real broker: every transaction gets its own
decision; with no worker, every transaction gets the fallback once its window closed."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from app.authorizer import authorize
from app.cli import app
from app.pacer import paced_records
from app.process import WorkerProcess, settings_env
from app.settings import FraudscoreSettings, get_settings
from models.policy import Outcome
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration

CARDS = 200


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> FraudscoreSettings:
    return isolated_settings(kafka_bootstrap, unique, tmp_path / "var")


async def test_every_transaction_gets_its_decision_from_a_running_worker(
    settings: FraudscoreSettings, tmp_path: Path
) -> None:
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        assert await worker.wait_for_log("ready at offset"), worker.log_tail()
        # a wide window: this checks matching on a shared, loaded machine, not speed
        warm = await authorize(
            settings, paced_records(20, CARDS, seed=5), rate=0, timeout_ms=60_000
        )
        assert warm.fell_back == 0, worker.log_tail()
        records = paced_records(300, CARDS, seed=5, skip=20)
        result = await authorize(
            settings, records, rate=200, timeout_ms=10_000, fallback=Outcome.DECLINE
        )
    finally:
        assert worker.stop() == 0, worker.log_tail()
    assert (result.sent, result.decided, result.fell_back, result.late) == (300, 300, 0, 0)
    assert sum(result.outcomes.values()) == 300
    assert result.latency.count == 300
    assert 0 < result.latency.p50 <= result.latency.p99 <= result.latency.max < 10_000


async def test_with_no_worker_every_transaction_falls_back_after_the_timeout(
    settings: FraudscoreSettings,
) -> None:
    started = time.perf_counter()
    result = await authorize(
        settings,
        paced_records(25, CARDS, seed=6),
        rate=0,
        timeout_ms=300,
        fallback=Outcome.REVIEW,
    )
    assert time.perf_counter() - started >= 0.3
    assert (result.decided, result.fell_back) == (0, 25)
    assert result.outcomes == {"APPROVE": 0, "REVIEW": 25, "DECLINE": 0}
    assert result.latency.count == 0
    assert result.answer.p50 == result.answer.max == 300.0


@pytest.fixture
def environment(
    settings: FraudscoreSettings, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FraudscoreSettings]:
    for name, value in settings_env(settings).items():
        if name.startswith("FRAUDSCORE_"):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield settings
    get_settings.cache_clear()


def test_the_command_reports_json_and_refuses_a_bad_transaction(
    environment: FraudscoreSettings,
) -> None:
    runner = CliRunner()
    args = ["authorizer", "--count", "5", "--rate", "0", "--timeout-ms", "100", "--seed", "7"]
    result = runner.invoke(app, [*args, "--output", "json"])
    assert result.exit_code == 0, result.output
    report = msgspec.json.decode(result.stdout.strip().splitlines()[-1])
    assert (report["sent"], report["fell_back"], report["timeout_ms"]) == (5, 5, 100)
    assert report["outcomes"]["APPROVE"] == 5

    refused = runner.invoke(app, ["authorizer", "--transaction", '{"amount": 1}'])
    assert refused.exit_code == 1
    assert "not a valid transaction" in refused.output
