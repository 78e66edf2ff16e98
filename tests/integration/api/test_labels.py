"""``POST /v1/labels`` publishes to the real broker what the aggregator reads back."""

from __future__ import annotations

import asyncio

import httpx2 as httpx

from app.api.auth import Role
from models.label import LabelRecord, decode_label
from tests.integration.api.conftest import ServedApi
from tests.support.api import bearer, token
from tests.support.kafka import read_partitions

LABEL = {
    "transaction_id": "tx_1_000000042",
    "card_id": "tok_kuoedknqwbnpqzlyhxcu",
    "merchant_id": "m_qzhbfj",
    "label": "fraud",
    "event_time": "2026-01-01T09:30:00.250Z",
    "reported_at": "2026-01-20T10:00:00+01:00",
}


def test_a_label_is_published_keyed_by_card_as_the_aggregator_reads_it(
    served_api: ServedApi,
) -> None:
    headers = bearer(token(Role.ANALYST))
    with httpx.Client(base_url=served_api.url, timeout=30) as client:
        first = client.post("/v1/labels", json=LABEL, headers=headers)
        assert first.status_code == 202, first.text
        second = client.post("/v1/labels", json={**LABEL, "label": "genuine"}, headers=headers)
        assert second.status_code == 202, second.text
    settings = served_api.settings
    published = asyncio.run(read_partitions(settings, settings.labels_topic))
    records = [r for partition in published.values() for r in partition]
    assert len(records) == 2
    assert {(r.partition, r.offset) for r in records} == {
        (first.json()["partition"], first.json()["offset"]),
        (second.json()["partition"], second.json()["offset"]),
    }
    decoded = [decode_label(r.value, r.key, max_bytes=settings.max_record_bytes) for r in records]
    assert sorted(decoded, key=lambda label: label.label) == [  # type: ignore[union-attr]
        LabelRecord(
            "tx_1_000000042",
            "tok_kuoedknqwbnpqzlyhxcu",
            "m_qzhbfj",
            verdict,
            1767259800250,
            1768899600000,
        )
        for verdict in ("fraud", "genuine")
    ]
