"""``GET /v1/cards/{card_id}/features`` end to end: two real workers on the session's broker,
each owning one of the input topic's two partitions; the API finds the owner of a card's
partition in the consumer group's assignment and forwards to it. The answers equal an
offline replay (features.stream over each partition's log, in offset order); an unknown card
is 404; a partition whose owner died is 503 until the group gives it to the other worker."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.api.application import create_app
from app.api.auth import Role
from app.loadgen import produce
from app.process import WorkerProcess
from app.settings import FraudscoreSettings
from features.card_summary import is_expired, summarize
from features.stream import MemoryCardStore, process
from features.validation import Rejection, decode_transaction
from tests.support.api import bearer, token
from tests.support.kafka import read_partitions, read_topic

COUNT, CARDS, SEED = 400, 40, 7


@pytest.fixture
def settings(api_settings: FraudscoreSettings) -> FraudscoreSettings:
    return api_settings.model_copy(update={"partitions": 2, "checkpoint_interval_ms": 200})


@pytest.fixture
def workers(settings: FraudscoreSettings, tmp_path: Path) -> Iterator[list[WorkerProcess]]:
    started = [
        WorkerProcess(
            settings.model_copy(update={"var_dir": tmp_path / name}), tmp_path / f"{name}.log"
        )
        for name in ("w1", "w2")
    ]
    try:
        yield started
    finally:
        for worker in started:
            worker.stop()


async def _replayed(settings: FraudscoreSettings) -> dict[str, tuple[int, dict[str, float]]]:
    """Card -> (partition, features) by replaying each input partition's log offline."""
    logs = await read_partitions(settings, settings.input_topic)
    out: dict[str, tuple[int, dict[str, float]]] = {}
    for partition, records in logs.items():
        store = MemoryCardStore()
        for record in records:
            txn = decode_transaction(record.value, max_bytes=settings.max_record_bytes)
            if not isinstance(txn, Rejection):
                process(store, txn, settings.stream_params)
        assert store.partition is not None
        stream_time = store.partition.stream_time_ms
        assert stream_time is not None
        for card_id, state in store.states.items():
            if not is_expired(state, stream_time, settings.stream_params):
                out[card_id] = (partition, summarize(state, stream_time).values)
    return out


def _until_ok(client: TestClient, card_id: str, timeout_s: float) -> dict[str, object]:
    deadline, headers = time.monotonic() + timeout_s, bearer(token(Role.SERVICE))
    while True:
        response = client.get(f"/v1/cards/{card_id}/features", headers=headers)
        if response.status_code == 200:
            body: dict[str, object] = response.json()
            return body
        assert time.monotonic() < deadline, response.text
        time.sleep(0.2)


async def test_any_card_is_answered_by_its_partitions_owner(
    settings: FraudscoreSettings, workers: list[WorkerProcess]
) -> None:
    for worker in workers:
        assert await worker.wait_for_log("worker HTTP on", timeout_s=60), worker.log_tail()
    sent = await produce(settings, count=COUNT, cards=CARDS, seed=SEED, rate=0)
    await read_topic(settings, settings.decisions_topic, expect=sent.valid)
    expected = await _replayed(settings)
    assert {partition for partition, _ in expected.values()} == {0, 1}
    headers = bearer(token(Role.SERVICE))
    with TestClient(create_app(settings)) as client:
        for card_id, (partition, features) in sorted(expected.items()):
            body = _until_ok(client, card_id, timeout_s=60)
            assert body["partition"] == partition, card_id
            assert body["features"] == features, card_id
            assert body["feature_schema_version"] == 3

        unknown = client.get("/v1/cards/no-such-card/features", headers=headers)
        assert unknown.status_code == 404, unknown.text
        assert unknown.json()["error"]["code"] == "not_found"

        # the owner of one card's partition dies (no goodbye): 503 until the group notices
        card_id, (partition, features) = next(iter(sorted(expected.items())))
        _, url = await client.app.state.resources.owners.owner(card_id, fresh=True)  # type: ignore[attr-defined]
        owner = next(w for w in workers if f"worker HTTP on {url} " in w.log_path.read_text())
        owner.kill()
        gone = client.get(f"/v1/cards/{card_id}/features", headers=headers)
        assert gone.status_code == 503, gone.text
        assert gone.json()["error"]["code"] == "unavailable"
        # the survivor takes the partition over, restores it and answers the same values
        body = _until_ok(client, card_id, timeout_s=120)
        assert body["features"] == features
