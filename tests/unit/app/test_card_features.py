"""The worker's card route (real store in tmp_path, no broker) and the routing helpers."""

from __future__ import annotations

from pathlib import Path

from aiokafka.partitioner import DefaultPartitioner
from confluent_kafka import TopicPartition
from confluent_kafka.admin._group import MemberAssignment, MemberDescription
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from app.api.auth import Role
from app.card_features import LocalCards
from app.card_owner import advertised_client_id, advertised_url, owners_of
from app.worker_http import create_worker_app
from app.worker_status import WorkerStatus
from features.card import observe
from features.card_summary import summarize
from features.stream import PartitionState
from sinks.kafka import key_partition
from sinks.rocksdb import CheckpointMeta, PartitionStore
from sinks.rocksdb_memory import shared_memory
from tests.support.api import api_settings, bearer, token
from tests.support.oracle import T0, txn_of

ROUTE = "/internal/v1/partitions/{}/cards/{}/features"


def test_the_worker_answers_committed_state_404_503_and_421(tmp_path: Path) -> None:
    settings = api_settings(tmp_path / "var")
    status = WorkerStatus()
    cards = LocalCards(status, settings.stream_params)
    store = PartitionStore(tmp_path / "p0", shared_memory(settings.state_memory_mb))
    state, _ = observe(None, txn_of(0, T0, (0, 0, 0, 1234, 1, 2, None, None, 0)))
    store.put("card0", state)
    store.put_partition_state(PartitionState(1, T0 + 5000, 0, 0, 0))
    store.write(list(store.dirty()), CheckpointMeta(input_next_offset=1))
    store.put("card1", state)  # uncommitted: not visible
    app = create_worker_app(status, CollectorRegistry(), cards, settings)
    service = bearer(token(Role.SERVICE))
    with TestClient(app) as client:
        status.restoring([0])
        assert client.get(ROUTE.format(0, "card0"), headers=service).status_code == 503
        cards.add(0, store)
        status.restored(0)
        assert client.get(ROUTE.format(0, "card0")).status_code == 401
        assert (
            client.get(ROUTE.format(0, "card0"), headers=bearer(token(Role.ANALYST))).status_code
            == 403
        )
        body = client.get(ROUTE.format(0, "card0"), headers=service).json()
        assert body["features"] == summarize(state, T0 + 5000).values
        assert body["features"]["txn_count_24h"] == 1.0
        assert body["as_of"] == "2026-01-01T00:00:05.000Z"
        assert body["as_of_watermark"] == "2026-01-01T00:00:00.000Z"
        assert body["checkpoint"]["input_next_offset"] == 1
        assert client.get(ROUTE.format(0, "card1"), headers=service).status_code == 404
        missed = client.get(ROUTE.format(1, "card0"), headers=service)
        assert (missed.status_code, missed.json()["error"]["code"]) == (421, "not_owner")
    store.close()


def test_key_partition_is_the_java_clients() -> None:
    every = list(range(7))
    for i in range(500):
        key = f"card-{i}".encode()
        assert key_partition(key, 7) == DefaultPartitioner()(key, every, every)


def test_the_owner_of_a_partition_is_the_member_assigned_it_that_advertises_a_url() -> None:
    url = "http://127.0.0.1:4567"
    assert advertised_url(advertised_client_id(url)) == url
    assert advertised_url("rdkafka") is None
    assert advertised_url("fraudscore-worker@not a url") is None
    members = [
        MemberDescription(
            "m1", advertised_client_id(url), "/127.0.0.1",
            MemberAssignment([TopicPartition("tx", 0), TopicPartition("other", 1)]),
        ),
        MemberDescription("m2", "rdkafka", "/h", MemberAssignment([TopicPartition("tx", 1)])),
    ]  # fmt: skip
    assert owners_of(members, "tx") == {0: url}
