"""The pure pipeline: outputs in offset order, bad records to the DLQ, replay-stable bytes."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest

from features.transaction import Transaction
from models.default import train_default_model
from models.pipeline import (
    MemoryCardStore,
    Pipeline,
    SourceRecord,
    encode_decision,
    format_amount,
    format_event_time,
)
from models.policy import Policy
from models.synthetic import encode_record, generate


@pytest.fixture(scope="module")
def pipeline() -> Pipeline:
    return Pipeline(scorer=train_default_model(), policy=Policy(), max_record_bytes=8192)


def _log(count: int, seed: int = 3) -> list[SourceRecord]:
    return [
        SourceRecord("tx", 0, offset, item.key, encode_record(item.record))
        for offset, item in enumerate(generate(count, cards=40, seed=seed))
    ]


def _decisions(pipeline: Pipeline, log: list[SourceRecord], batch: int) -> list[bytes]:
    store, out = MemoryCardStore(), list[bytes]()
    for start in range(0, len(log), batch):
        result = pipeline.run(log[start : start + batch], store)
        out.extend(encode_decision(decision) for _, decision in result.decisions)
    return out


def test_batch_boundaries_do_not_change_a_single_byte(pipeline: Pipeline) -> None:
    log = _log(600)
    whole = _decisions(pipeline, log, batch=len(log))
    assert len(whole) == 600
    for batch in (1, 7, 64):
        assert _decisions(pipeline, log, batch) == whole


def test_decisions_follow_offsets_and_carry_their_source(pipeline: Pipeline) -> None:
    log = _log(50)
    result = pipeline.run(log, MemoryCardStore())
    assert [d.source.offset for _, d in result.decisions] == list(range(50))
    key, first = result.decisions[0]
    assert key == first.card_id.encode() == log[0].key
    assert first.model_version == pipeline.scorer.version
    assert list(first.features) == list(pipeline.scorer.feature_names)


def test_bad_records_become_dead_letters_and_the_rest_is_decided(pipeline: Pipeline) -> None:
    good = _log(3)
    log = [
        good[0],
        SourceRecord("tx", 0, 1, b"k", b"not json"),
        SourceRecord("tx", 0, 2, b"someone-else", good[1].value),  # keyed by another card
        SourceRecord("tx", 0, 3, good[2].key, good[2].value),
    ]
    result = pipeline.run(log, MemoryCardStore())
    assert [d.source.offset for _, d in result.decisions] == [0, 3]
    reasons = {letter.record.offset: letter.rejection.reason for letter in result.dead_letters}
    assert reasons == {1: "malformed_json", 2: "key_mismatch"}


def test_state_is_kept_per_card_in_the_store(pipeline: Pipeline) -> None:
    log = _log(200)
    store = MemoryCardStore()
    pipeline.run(log, store)
    cards = {record.key.decode() for record in log if record.key}
    assert set(store.states) == cards
    assert sum(len(s.times) for s in store.states.values()) <= 200


@pytest.mark.parametrize(
    ("minor", "scale", "text"),
    [(1234, 2, "12.34"), (5, 2, "0.05"), (1234, 0, "1234"), (1, 3, "0.001"), (0, 2, "0.00")],
)
def test_amounts_are_formatted_exactly(minor: int, scale: int, text: str) -> None:
    txn = Transaction("t", "c", minor, scale, "USD", "m", "5411", 0)
    assert format_amount(txn) == text


def test_event_time_is_rfc3339_utc_with_milliseconds() -> None:
    assert format_event_time(1_767_225_600_007) == "2026-01-01T00:00:00.007Z"


def test_a_shadow_model_is_recorded_beside_the_live_score_and_never_decides(
    pipeline: Pipeline,
) -> None:
    shadow = train_default_model(seed=8, count=3000)
    shadowed = dataclasses.replace(pipeline, shadow=shadow)
    log = _log(300)
    live = pipeline.run(log, MemoryCardStore()).decisions
    both = shadowed.run(log, MemoryCardStore()).decisions
    vectors = [tuple(d.features.values()) for _, d in live]
    assert [d.shadow_score for _, d in both] == shadow.score_batch(vectors)
    assert {d.shadow_model_version for _, d in both} == {shadow.version}
    assert [d.score for _, d in both] != [d.shadow_score for _, d in both]
    unshadowed = [
        msgspec.structs.replace(d, shadow_score=None, shadow_model_version=None) for _, d in both
    ]
    assert unshadowed == [d for _, d in live]  # the decision is the live model's alone
    record = msgspec.json.decode(encode_decision(both[0][1]))
    assert list(record)[-3:] == ["source", "shadow_score", "shadow_model_version"]


def test_without_a_shadow_the_record_has_no_shadow_fields(pipeline: Pipeline) -> None:
    _, decision = pipeline.run(_log(1), MemoryCardStore()).decisions[0]
    record = msgspec.json.decode(encode_decision(decision))
    assert list(record)[-2:] == ["features", "source"]
    assert "shadow_score" not in record
