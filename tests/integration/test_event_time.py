"""Event time end to end: an untidy log (duplicate deliveries, late arrivals, cards going
dormant past a short TTL) through real workers on the real broker.

The same input is decided by two deployments: one whose worker is SIGKILLed in the middle
(between a checkpoint's commit and its RocksDB write) and restarted, and one uninterrupted.
Both must give byte-identical decisions, equal to the pure pipeline replayed over each
partition's log; dead letters (the duplicates) and late copies once each; local and restored
state, the partitions' watermarks and counters included, equal to the replay's; expired
cards tombstoned in the changelog. The offline path must give the decisions' features.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import msgspec
import pytest

from app.settings import FraudscoreSettings
from features.card import CARD_FEATURE_NAMES
from features.offline import replay_records
from features.stream import PARTITION_KEY, Outcome
from sinks.kafka import ensure_topics
from tests.support.deployment import Deployment, assert_exactly_once
from tests.support.kafka import Record, read_partitions, read_topic, send_input
from tests.support.reference import Reference, reference
from tests.support.settings import isolated_settings
from tests.support.traffic import untidy

pytestmark = pytest.mark.integration

COUNT, CARDS, SEED = 4_000, 300, 31
EVENTS_PER_SECOND = COUNT / (4 * 86_400)  # four days of event time
TTL_MS = 25 * 3_600_000  # the shortest allowed: cards idle for a day expire


def _deployment(bootstrap: str, unique: str, tmp_path: Path, name: str) -> Deployment:
    settings = isolated_settings(
        bootstrap,
        unique,
        tmp_path / name,
        card_state_ttl_ms=TTL_MS,
        session_timeout_ms=6_000,
        checkpoint_max_records=200,  # many checkpoints: the kill lands between two of them
        fetch_max_records=200,
    )
    own = f"{unique}-{name}"  # the input topic is shared, everything else is the deployment's
    settings = settings.model_copy(
        update={
            "decisions_topic": f"decisions-{own}",
            "dlq_topic": f"tx-{own}.dlq",
            "late_topic": f"tx-{own}.late",
            "changelog_topic": f"state-{own}.changelog",
            "group_id": f"fraudscore-{own}",
        }
    )
    (tmp_path / name).mkdir()
    return Deployment(settings, tmp_path / name)


async def _decide(dep: Deployment, ref: Reference, kill_at_commit: int | None) -> None:
    if kill_at_commit is not None:  # the failpoint SIGKILLs it after that many commits
        killed = dep.start("w1", failpoints=f"checkpoint.after_commit={kill_at_commit}")
        for _ in range(1_200):
            if killed.process.poll() is not None:
                break
            await asyncio.sleep(0.05)
        assert killed.kill() == -9, dep.logs()
        done = sum((await dep.committed_offsets()).values())
        assert 0 < done < sum(ref.input_ends.values()), "the kill was not in the middle"
    worker = dep.start("w1")
    await dep.wait_caught_up(ref.input_ends)
    assert worker.stop() == 0, worker.log_tail()
    await assert_exactly_once(dep, ref)


async def test_an_untidy_log_is_decided_identically_with_and_without_a_restart(
    kafka_bootstrap: str, unique: str, tmp_path: Path
) -> None:
    restarted = _deployment(kafka_bootstrap, unique, tmp_path, "restarted")
    uninterrupted = _deployment(kafka_bootstrap, unique, tmp_path, "uninterrupted")
    for dep in (restarted, uninterrupted):
        await ensure_topics(dep.settings)
    records = untidy(COUNT, cards=CARDS, seed=SEED, events_per_second=EVENTS_PER_SECOND, hold_up=30)
    await send_input(restarted.settings, records)
    ref = await reference(restarted.settings)
    assert len(ref.decisions) == COUNT
    assert len(ref.dead_letters) == len(records) - COUNT > 0  # the duplicate deliveries
    assert len(ref.late) > 0
    try:
        await _decide(restarted, ref, kill_at_commit=6)
        await _decide(uninterrupted, ref, kill_at_commit=None)
    finally:
        restarted.stop_all()
        uninterrupted.stop_all()
    settings = restarted.settings
    first = await _decisions(settings)
    assert first == await _decisions(uninterrupted.settings)
    await _assert_expired_cards_were_tombstoned(settings, ref)
    inputs = await read_partitions(settings, settings.input_topic)
    _assert_offline_features(settings, inputs, first)


async def _decisions(settings: FraudscoreSettings) -> dict[str, bytes]:
    records = await read_topic(settings, settings.decisions_topic, expect=COUNT)
    return {msgspec.json.decode(r.value)["transaction_id"]: r.value for r in records}


async def _assert_expired_cards_were_tombstoned(
    settings: FraudscoreSettings, ref: Reference
) -> None:
    """A card's last changelog record is a tombstone exactly when it expired for good."""
    for partition, records in (await read_partitions(settings, settings.changelog_topic)).items():
        last = {r.key.decode(): r.value for r in records}
        gone = {card for card, value in last.items() if value is None}
        assert gone, f"p{partition}: no card expired"
        assert gone == last.keys() - ref.states[partition].keys() - {PARTITION_KEY}


def _assert_offline_features(
    settings: FraudscoreSettings, inputs: dict[int, list[Record]], decisions: dict[str, bytes]
) -> None:
    """The offline path over each partition's log gives the features the worker decided with."""
    compared = 0
    for log in inputs.values():
        records = [msgspec.json.decode(r.value) for r in log]
        outcomes = replay_records(records, settings.stream_params)
        for record, outcome in zip(records, outcomes, strict=True):
            assert isinstance(outcome, Outcome)
            if outcome.vector is None:
                continue
            decided = msgspec.json.decode(decisions[record["transaction_id"]])
            assert tuple(decided["features"][name] for name in CARD_FEATURE_NAMES) == outcome.vector
            assert decided["late"] == outcome.late
            compared += 1
    assert compared == COUNT
