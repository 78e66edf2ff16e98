"""The pure pipeline: outputs in offset order, bad records and duplicates to the DLQ, late
ones flagged and copied, replay-stable bytes, and the offline path's features equal to its."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeClassifier

from features.card import CARD_FEATURE_NAMES
from features.offline import replay_records
from features.schema import FEATURE_NAMES
from features.stream import MemoryCardStore, Outcome
from features.transaction import Transaction
from features.validation import MAX_EVENT_TIME_MS, MIN_EVENT_TIME_MS
from models.default import featurize, train_default_model
from models.pipeline import (
    Pipeline,
    SourceRecord,
    encode_decision,
    format_amount,
    format_event_time,
)
from models.policy import Policy, decide, model_reasons
from models.scorer import Scorer
from models.synthetic import encode_record, generate
from tests.support.traffic import untidy


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


def test_flagged_decisions_are_explained_by_the_model(pipeline: Pipeline) -> None:
    result = pipeline.run(_log(600), MemoryCardStore())
    flagged = [d for _, d in result.decisions if d.decision != "APPROVE"]
    pushes = pipeline.scorer.contributions([tuple(d.features.values()) for d in flagged])
    assert pushes is not None
    explained = [model_reasons(push, pipeline.scorer.feature_names) for push in pushes]
    assert any(explained)  # so the batch test above covers explained decisions too
    for decision, model in zip(flagged, explained, strict=True):
        rules = decide(decision.score, tuple(decision.features.values()), pipeline.policy)
        assert decision.reasons == (*rules.reasons, *model)
    assert all(d.reasons == () for _, d in result.decisions if d.decision == "APPROVE")


def test_a_model_that_cannot_explain_gives_the_rules_reasons_only(pipeline: Pipeline) -> None:
    vectors, labels = featurize(generate(2000, cards=200, seed=5, fraud_rate=0.2))
    tree = DecisionTreeClassifier(max_depth=4, random_state=0).fit(vectors, labels)
    scorer = Scorer(model=tree, version="tree-1", feature_names=FEATURE_NAMES)
    plain = Pipeline(scorer=scorer, policy=Policy(), max_record_bytes=8192)
    decisions = [d for _, d in plain.run(_log(600), MemoryCardStore()).decisions]
    assert any(d.decision != "APPROVE" for d in decisions)
    assert not any(code.startswith("MODEL_") for d in decisions for code in d.reasons)


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
    assert sum(len(s.exact.times) for s in store.states.values()) <= 200


@pytest.mark.parametrize(
    ("minor", "scale", "text"),
    [(1234, 2, "12.34"), (5, 2, "0.05"), (1234, 0, "1234"), (1, 3, "0.001"), (0, 2, "0.00")],
)
def test_amounts_are_formatted_exactly(minor: int, scale: int, text: str) -> None:
    txn = Transaction("t", "c", minor, scale, "USD", "m", "5411", 0)
    assert format_amount(txn) == text


@given(st.integers(0, 10**12), st.integers(0, 4))
def test_amounts_format_as_divmod_did(minor: int, scale: int) -> None:
    txn = Transaction("t", "c", minor, scale, "USD", "m", "5411", 0)
    units, fraction = divmod(minor, 10**scale)
    assert format_amount(txn) == (f"{units}.{fraction:0{scale}d}" if scale else str(minor))


def test_event_time_is_rfc3339_utc_with_milliseconds() -> None:
    assert format_event_time(1_767_225_600_007) == "2026-01-01T00:00:00.007Z"


def _untidy_log(count: int, seed: int = 5) -> list[SourceRecord]:
    return [
        SourceRecord("tx", 0, offset, key, value)
        for offset, (key, value) in enumerate(untidy(count, cards=60, seed=seed))
    ]


def test_duplicates_are_dead_lettered_and_late_ones_decided_flagged_and_copied(
    pipeline: Pipeline,
) -> None:
    log = _untidy_log(3_000)
    result = pipeline.run(log, MemoryCardStore())
    ids = [decision.transaction_id for _, decision in result.decisions]
    assert len(ids) == len(set(ids)) == 3_000  # every generated transaction decided once
    duplicates = [d for d in result.dead_letters if d.rejection.reason == "duplicate_transaction"]
    assert len(duplicates) == len(log) - 3_000 > 0
    assert all(d.record.value in {r.value for r in log[: d.record.offset]} for d in duplicates)
    late = {d.source.offset for _, d in result.decisions if d.late}
    assert late == {record.offset for record in result.late}
    assert 0 < len(late) < 200


def test_the_offline_path_gives_the_online_features(pipeline: Pipeline) -> None:
    log = _untidy_log(2_000, seed=6)
    store = MemoryCardStore()
    online = [
        (
            decision.transaction_id,
            tuple(decision.features[name] for name in CARD_FEATURE_NAMES),
            decision.late,
        )
        for start in range(0, len(log), 97)  # in batches, as the worker runs it
        for _, decision in pipeline.run(log[start : start + 97], store).decisions
    ]
    records = [msgspec.json.decode(record.value) for record in log]
    offline = [
        (record["transaction_id"], outcome.vector, outcome.late)
        for record, outcome in zip(records, replay_records(records), strict=True)
        if isinstance(outcome, Outcome) and outcome.vector is not None
    ]
    assert offline == online


def _strftime(event_time_ms: int) -> str:
    """How decision records have always formatted event time: the oracle for the tables."""
    moment = datetime.fromtimestamp(event_time_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{event_time_ms % 1000:03d}Z"


@given(st.integers(MIN_EVENT_TIME_MS, MAX_EVENT_TIME_MS - 1))
def test_event_time_formats_as_strftime_did(event_time_ms: int) -> None:
    assert format_event_time(event_time_ms) == _strftime(event_time_ms)


@pytest.mark.parametrize(
    "moment",
    ["2000-01-01T00:00:00", "2024-02-29T23:59:59", "2025-12-31T23:59:59", "2099-12-31T23:59:59"],
)
def test_event_time_around_day_and_year_boundaries(moment: str) -> None:
    start = int(datetime.fromisoformat(moment).replace(tzinfo=UTC).timestamp()) * 1000
    for event_time_ms in range(start - 1500, start + 2500, 7):
        assert format_event_time(event_time_ms) == _strftime(event_time_ms)


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
    assert list(record)[-3:] == ["merchant_risk_version", "late", "source"]
    assert "shadow_score" not in record
