"""``generate --kafka``: the dataset's transactions and labels on the real broker, as in Parquet."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pyarrow.parquet as pq
import pytest

from app.generate import DatasetSpec, generate_dataset
from sinks.parquet import LABELS_FILE, TRANSACTIONS_FILE
from tests.support.kafka import read_topic
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration


async def test_generated_records_reach_the_input_and_labels_topics(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    settings = isolated_settings(kafka_bootstrap, unique, tmp_path / "var")
    spec = DatasetSpec(cards=200, days=4, seed=3, fraud_rate=0.05, per_card_daily=1.5)
    result = await generate_dataset(settings, spec, tmp_path / "data", kafka=True)
    assert result.topics == (settings.input_topic, settings.labels_topic)

    transactions = pq.read_table(tmp_path / "data" / TRANSACTIONS_FILE).to_pydict()
    sent = await read_topic(settings, settings.input_topic, expect=result.transactions)
    assert sorted(r.value for r in sent) == sorted(transactions["value"])
    assert all(r.key == msgspec.json.decode(r.value)["card_id"].encode() for r in sent)

    labels = pq.read_table(tmp_path / "data" / LABELS_FILE).to_pydict()
    arrived = await read_topic(settings, settings.labels_topic, expect=result.labels)
    assert len(arrived) == result.labels == len(labels["transaction_id"]) > 0
    decoded = [msgspec.json.decode(r.value) for r in arrived]
    assert {d["transaction_id"] for d in decoded} == set(labels["transaction_id"])
    assert set(decoded[0]) == {
        "transaction_id", "card_id", "merchant_id", "label", "event_time", "reported_at",
    }  # fmt: skip
    assert all(r.key == d["card_id"].encode() for r, d in zip(arrived, decoded, strict=True))
