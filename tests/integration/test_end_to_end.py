"""The first end-to-end path on the real broker: input → worker process → decisions + DLQ.

The reference is the pure pipeline run sequentially over each input partition's log with an
in-memory store: every decision the worker committed must equal it byte for byte (features,
score, decision, reasons), which a duplicate-id check alone would not show.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import msgspec
import pytest

from app.loadgen import produce
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from models.synthetic import generate, malformed_records
from tests.support.kafka import read_partitions, read_topic
from tests.support.reference import reference_of
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration

VALID, MALFORMED, CARDS, SEED = 2000, 50, 300, 11


@pytest.fixture
def settings(kafka_bootstrap: str, unique: str, tmp_path: Path) -> FraudscoreSettings:
    return isolated_settings(kafka_bootstrap, unique, tmp_path / "var")


async def test_transactions_are_decided_exactly_once_with_correct_features(
    settings: FraudscoreSettings, tmp_path: Path
) -> None:
    worker = WorkerProcess(settings, tmp_path / "worker.log")
    try:
        sent = await produce(
            settings, count=VALID, cards=CARDS, seed=SEED, rate=0, malformed=MALFORMED
        )
        decisions = await read_topic(settings, settings.decisions_topic, expect=VALID)
        dead = await read_topic(settings, settings.dlq_topic, expect=MALFORMED)
    finally:
        exit_code = worker.stop()
    assert exit_code == 0, worker.log_tail()
    assert (sent.valid, sent.malformed) == (VALID, MALFORMED)

    ids = Counter(msgspec.json.decode(r.value)["transaction_id"] for r in decisions)
    assert len(ids) == VALID, worker.log_tail()
    assert set(ids.values()) == {1}, f"duplicates: {[i for i, n in ids.items() if n > 1][:5]}"
    expected_ids = {s.record["transaction_id"] for s in generate(VALID, cards=CARDS, seed=SEED)}
    assert set(ids) == expected_ids

    inputs = await read_partitions(settings, settings.input_topic)
    expected = reference_of(settings, inputs).decisions
    mismatched = [
        r.value
        for r in decisions
        if expected[msgspec.json.decode(r.value)["transaction_id"]] != r.value
    ]
    assert not mismatched, (
        f"{len(mismatched)} decisions differ from the reference, e.g. {mismatched[0]!r}"
    )

    assert len(dead) == MALFORMED
    for record in dead:
        headers = dict(record.headers)
        assert headers["fraudscore.source.topic"] == settings.input_topic.encode()
        source = inputs[int(headers["fraudscore.source.partition"])]
        original = next(r for r in source if r.offset == int(headers["fraudscore.source.offset"]))
        assert record.value == original.value  # the original bytes, untouched
    sample = next(iter(generate(1, cards=CARDS, seed=SEED))).record
    expected_reasons = Counter(
        reason for _, reason in malformed_records(MALFORMED, seed=SEED, valid_sample=sample)
    )
    assert Counter(dict(r.headers)["fraudscore.reason"].decode() for r in dead) == expected_reasons
