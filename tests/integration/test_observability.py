"""Two real worker processes on the real broker, seen from outside as an operator sees them:
``/healthz``, ``/readyz`` and ``/metrics`` over HTTP, and their JSON log lines.

One input partition for two workers: one of them owns it (ready), the other has nothing to
do (not ready). The metrics of both, added up, must tell exactly what was fed: records in,
decisions by outcome, dead letters by reason, late records, checkpoints and the records
they carried.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from app.loadgen import produce
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from tests.support.audit import start_sink
from tests.support.kafka import read_topic
from tests.support.metrics import Series, by_label, parse, value
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration

VALID, MALFORMED, CARDS, SEED = 800, 20, 150, 29


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> FraudscoreSettings:
    return isolated_settings(
        kafka_bootstrap, unique, tmp_path / "var", partitions=1, log_format="json"
    )


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - our own test URL
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def _address(process: WorkerProcess, line: str = "worker HTTP on") -> str:
    """The process's HTTP address, from its log (port 0: it chose a free one)."""
    assert await process.wait_for_log(line, timeout_s=60), process.log_tail()
    found = re.search(rf"{line} (http://[0-9.]+:\d+)", process.log_path.read_text())
    assert found is not None
    return found.group(1)


async def _until(condition: str, check: object, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting until {condition}"
        await asyncio.sleep(0.2)


def _scrape(*urls: str) -> Series:
    """The workers' metrics, added up sample by sample."""
    total: Series = {}
    for url in urls:
        status, text = _get(f"{url}/metrics")
        assert status == 200
        for key, number in parse(text).items():
            total[key] = total.get(key, 0.0) + number
    return total


async def test_metrics_and_probes_tell_what_was_fed(
    settings: FraudscoreSettings, tmp_path: Path
) -> None:
    topic = {"topic": settings.input_topic}
    first = WorkerProcess(
        settings.model_copy(update={"var_dir": tmp_path / "w1"}), tmp_path / "w1.log"
    )
    second: WorkerProcess | None = None
    sink = start_sink(settings, tmp_path / "sink.log", audit_checkpoint_interval_ms=300)
    try:
        url1 = await _address(first)
        assert _get(f"{url1}/healthz") == (200, '{"status":"alive","problems":[]}')
        status, body = _get(f"{url1}/readyz")  # at once: still loading, nothing assigned
        assert status == 503, body
        assert json.loads(body)["status"] == "not_ready"
        await _until("the first worker is ready", lambda: _get(f"{url1}/readyz")[0] == 200)

        second = WorkerProcess(
            settings.model_copy(update={"var_dir": tmp_path / "w2"}), tmp_path / "w2.log"
        )
        url2 = await _address(second)

        def one_ready_one_idle() -> bool:
            answers = sorted([_get(f"{url1}/readyz"), _get(f"{url2}/readyz")])
            return [code for code, _ in answers] == [200, 503] and (
                "assigned no input partition" in answers[1][1]
            )

        await _until("one worker owns the partition and the other idles", one_ready_one_idle)

        sent = await produce(
            settings, count=VALID, cards=CARDS, seed=SEED, rate=0, malformed=MALFORMED
        )
        assert (sent.valid, sent.malformed) == (VALID, MALFORMED)
        decisions = await read_topic(settings, settings.decisions_topic, expect=VALID)
        dead = await read_topic(settings, settings.dlq_topic, expect=MALFORMED)
        lag = ("fraudscore_worker_consumer_lag", frozenset({**topic, "partition": "0"}.items()))
        await _until(
            "the metrics count every record and the lag is refreshed",
            lambda: (
                value(_scrape(url1, url2), "fraudscore_worker_records_in_total", topic)
                == VALID + MALFORMED
                and _scrape(url1, url2).get(lag) == 0
            ),
            timeout_s=15,
        )
        series = _scrape(url1, url2)
        sink_url = await _address(sink, "audit sink HTTP on")
        await _until("the sink is ready", lambda: _get(f"{sink_url}/readyz")[0] == 200, 60)
        await _until(
            "the sink appended every decision",
            lambda: value(_scrape(sink_url), "fraudscore_audit_rows_total") == VALID,
            timeout_s=60,
        )
        sink_series = _scrape(sink_url)
        owner = url1 if _get(f"{url1}/readyz")[0] == 200 else url2
        print(f"sample /metrics of the worker owning the partition:\n{_get(owner + '/metrics')[1]}")
    finally:
        codes = [worker.stop() for worker in (first, second, sink) if worker is not None]
    assert codes == [0, 0, 0], first.log_tail()
    commits = value(sink_series, "fraudscore_audit_commits_total")
    assert commits >= 1
    assert value(sink_series, "fraudscore_audit_commit_duration_seconds_count") == commits
    assert value(sink_series, "fraudscore_audit_snapshots") >= commits

    values = [msgspec.json.decode(record.value) for record in decisions]
    assert by_label(series, "fraudscore_worker_decisions_total", "outcome") == Counter(
        decision["decision"] for decision in values
    )
    assert by_label(series, "fraudscore_worker_dead_letters_total", "reason") == Counter(
        dict(record.headers)["fraudscore.reason"].decode() for record in dead
    )
    late = sum(decision["late"] for decision in values)
    assert value(series, "fraudscore_worker_late_records_total", topic) == late
    out = "fraudscore_worker_records_out_total"
    assert value(series, out, {"topic": settings.decisions_topic}) == VALID
    assert value(series, out, {"topic": settings.dlq_topic}) == MALFORMED
    assert value(series, out, {"topic": settings.late_topic}) == late

    checkpoints = value(series, "fraudscore_worker_checkpoints_total")
    assert checkpoints >= 1
    assert value(series, "fraudscore_worker_checkpoint_records_count") == checkpoints
    assert value(series, "fraudscore_worker_checkpoint_records_sum") == VALID + MALFORMED
    total_step = {"step": "total"}
    assert value(series, "fraudscore_worker_checkpoint_duration_seconds_count", total_step) == (
        checkpoints
    )
    assert value(series, "fraudscore_worker_event_to_decision_seconds_count") == VALID
    assert value(series, "fraudscore_worker_ingest_to_commit_seconds_count") == VALID + MALFORMED
    assert value(series, "fraudscore_worker_ready") == 1  # one of two
    assert value(series, "fraudscore_worker_partitions", {"state": "active"}) == 1
    assert value(series, "fraudscore_worker_state_keys", {"partition": "0"}) > 0
    model = {values[0]["model_version"]}
    assert {
        dict(labels)["model_version"] for (name, labels) in series if "pipeline_info" in name
    } == model

    _check_json_log(first.log_path)


def _check_json_log(path: Path) -> None:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    fields = {"timestamp", "level", "logger", "message", "process", "service", "component"}
    assert all(fields <= line.keys() for line in lines)
    assert {line["component"] for line in lines} == {"worker"}
    assert all("worker_id" in line for line in lines if line["logger"].startswith("app.worker"))
    assert any(line.get("partition") == 0 for line in lines), "no line names its partition"
    sample = next(line for line in lines if "partition" in line)
    print("sample JSON log line:", json.dumps(sample))
