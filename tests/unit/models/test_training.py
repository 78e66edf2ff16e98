"""Training without skew: offline vectors equal the online pipeline's; labels as of a cut-off."""

from __future__ import annotations

import json
import zlib

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier

from features.card import CARD_FEATURE_NAMES
from features.merchant import LabelSnapshots, MemorySnapshots, snapshot
from features.schema import FEATURE_NAMES
from features.stream import MemoryCardStore
from models.errors import TrainingError
from models.evaluation import DAY_MS
from models.label import FRAUD, GENUINE, LabelRecord
from models.pipeline import Pipeline, SourceRecord
from models.policy import Policy
from models.scorer import Scorer
from models.synthetic import DEFAULT_START_MS, Labeller, encode_record, malformed_records, simulate
from models.training import (
    FeatureTable,
    LabelBook,
    Split,
    TrainingConfig,
    TrainingRun,
    build_features,
    train,
)

SEED = 4


@pytest.fixture(scope="module")
def log() -> tuple[list[SourceRecord], list[LabelRecord]]:
    """30 days of 500 cards at 5 % fraud, as the input topic would carry them, and labels."""
    items = list(simulate(cards=500, days=30, seed=SEED, fraud_rate=0.05))
    labeller = Labeller(SEED)
    labels = [label for label in map(labeller, items) if label is not None]
    records = [
        SourceRecord("tx", 0, offset, item.key, encode_record(item.record))
        for offset, item in enumerate(items)
    ]
    return records, labels


@pytest.fixture(scope="module")
def table(log: tuple[list[SourceRecord], list[LabelRecord]]) -> FeatureTable:
    merchants = LabelSnapshots(label.fact() for label in log[1])
    return build_features(log[0], max_record_bytes=8192, merchants=merchants)


def _published(labels: list[LabelRecord]) -> MemorySnapshots:
    """Every day's snapshot as the aggregator publishes it when it has all these labels."""
    facts = [label.fact() for label in labels]
    first = min(label.event_time_ms for label in labels) // DAY_MS
    return MemorySnapshots(snapshot(facts, day) for day in range(first, first + 40))


def _online_features(
    records: list[SourceRecord], partitions: int, merchants: MemorySnapshots
) -> dict[int, tuple[float, ...]]:
    """What workers output: records spread over partitions by key, odd batch sizes each."""
    rng = np.random.default_rng(1)
    x = np.zeros((2, len(FEATURE_NAMES)))
    scorer = Scorer(DummyClassifier().fit(x, [0, 1]), "dummy", FEATURE_NAMES)
    pipeline = Pipeline(scorer=scorer, policy=Policy(), max_record_bytes=8192, merchants=merchants)
    out: dict[int, tuple[float, ...]] = {}
    for partition in range(partitions):
        log = [r for r in records if zlib.crc32(r.key or b"") % partitions == partition]
        store, start = MemoryCardStore(), 0
        while start < len(log):
            batch = log[start : start + int(rng.integers(1, 500))]
            for _, decision in pipeline.run(batch, store).decisions:
                out[decision.source.offset] = tuple(decision.features.values())
            start += len(batch)
    return out


def test_training_vectors_are_the_online_vectors(
    log: tuple[list[SourceRecord], list[LabelRecord]], table: FeatureTable
) -> None:
    online = _online_features(log[0], partitions=3, merchants=_published(log[1]))
    assert len(online) == len(table.offsets) == len(log[0])
    for offset, row in zip(table.offsets.tolist(), table.x.tolist(), strict=True):
        assert tuple(row) == online[offset]
    merchant_columns = table.x[:, len(CARD_FEATURE_NAMES) :]
    assert (merchant_columns > 0).any()  # the merchant features were compared, not just zeros


def test_rejected_records_are_skipped_and_counted(
    log: tuple[list[SourceRecord], list[LabelRecord]],
) -> None:
    good = log[0][:50]
    sample = json.loads(good[0].value)
    bad = [
        SourceRecord("tx", 0, 50 + i, b"k", raw)
        for i, (raw, _) in enumerate(malformed_records(7, seed=1, valid_sample=sample))
    ]
    table = build_features(good + bad, max_record_bytes=8192)
    assert table.rejected == 7
    assert table.offsets.tolist() == list(range(50))


def _label(transaction_id: str, label: str, reported_at_ms: int) -> LabelRecord:
    return LabelRecord(transaction_id, "tok_a", "m_a", label, 0, reported_at_ms)


def test_labels_count_only_as_known_by_the_cutoff() -> None:
    book = LabelBook(
        [
            _label("late", FRAUD, 500),
            _label("early", FRAUD, 100),
            _label("cleared", FRAUD, 100),
            _label("cleared", GENUINE, 300),
            _label("fine", GENUINE, 100),
        ]
    )
    ids = np.asarray(["late", "early", "cleared", "fine", "unlabelled"], dtype=object)
    assert book.fraud(ids, 200).tolist() == [0, 1, 1, 0, 0]
    assert book.fraud(ids, 400).tolist() == [0, 1, 0, 0, 0]
    assert book.fraud(ids).tolist() == [1, 1, 0, 0, 0]


def test_the_split_is_out_of_time_on_day_boundaries() -> None:
    split = Split.out_of_time(
        DEFAULT_START_MS + 5_000,
        DEFAULT_START_MS + 29 * DAY_MS + 7,
        warmup_days=3,
        gap_days=7,
        test_days=5,
    )
    days = [
        (ms - DEFAULT_START_MS) / DAY_MS
        for ms in (split.train_from_ms, split.train_until_ms, split.cutoff_ms, split.test_until_ms)
    ]
    assert days == [3, 18, 25, 30]
    with pytest.raises(TrainingError, match="too few"):
        Split.out_of_time(DEFAULT_START_MS, DEFAULT_START_MS + 10 * DAY_MS, warmup_days=3,
                          gap_days=7, test_days=5)  # fmt: skip


CONFIG = TrainingConfig(warmup_days=2, gap_days=12, test_days=6, max_iter=40)


@pytest.fixture(scope="module")
def run(log: tuple[list[SourceRecord], list[LabelRecord]], table: FeatureTable) -> TrainingRun:
    return train(table, LabelBook(log[1]), CONFIG, version="t", policy=Policy())


def test_the_model_beats_the_rule_out_of_time_and_is_repeatable(
    log: tuple[list[SourceRecord], list[LabelRecord]], table: FeatureTable, run: TrainingRun
) -> None:
    e = run.evaluation
    assert run.counts["test_fraud"] >= 100
    assert run.counts["train_fraud_known_at_cutoff"] < run.counts["train_fraud_eventually"]
    assert e.model.auc_roc >= 0.9 > e.baseline.auc_roc
    assert e.model.average_precision >= e.baseline.average_precision + 0.3
    assert e.model.recall_at_1pct_fpr > e.baseline.recall_at_1pct_fpr
    assert e.model.card_precision_top100 >= e.baseline.card_precision_top100
    assert e.model.card_precision_top100 <= e.card_precision_bound
    again = train(table, LabelBook(log[1]), CONFIG, version="t", policy=Policy())
    assert np.array_equal(again.evaluation.scores, e.scores)


def test_scores_do_not_depend_on_the_batch(table: FeatureTable, run: TrainingRun) -> None:
    vectors = [tuple(row) for row in table.x[:300].tolist()]
    whole = run.scorer.score_batch(vectors)
    assert [run.scorer.score(v) for v in vectors] == whole
    assert run.scorer.score_batch(vectors[7:50]) == whole[7:50]


def test_training_without_labelled_fraud_says_what_to_do(table: FeatureTable) -> None:
    with pytest.raises(TrainingError, match="generate more"):
        train(table, LabelBook([]), CONFIG, version="t", policy=Policy())
