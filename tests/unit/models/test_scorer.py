"""The scorer: predict_proba's bits, the same alone or in any batch; training is deterministic."""

from __future__ import annotations

from random import Random

import numpy as np
import pytest
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.tree import DecisionTreeClassifier

from features.card import FeatureVector
from features.schema import FEATURE_NAMES
from models.default import featurize, train_default_model
from models.scorer import Scorer
from models.synthetic import generate


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    return train_default_model(seed=3, count=8000)


@pytest.fixture(scope="module")
def rows() -> list[FeatureVector]:
    """Realistic rows plus extremes: zeros, huge amounts, bursts, exact split values."""
    vectors, _ = featurize(generate(2500, cards=2000, seed=21, fraud_rate=0.05))
    rng = Random(5)
    extremes = [
        _row(amount=0.0, txn_count_60s=1.0, amount_sum_60s=0.0, distinct_merchants_10m=1.0),
        _row(amount=1e12, txn_count_60s=1.0, amount_sum_60s=1e12, amount_zscore=1e9),
        _row(amount=0.01, txn_count_60s=500.0, amount_sum_60s=5.0, speed_kmh=1e5),
        *(tuple(rng.uniform(0, 5000) for _ in FEATURE_NAMES) for _ in range(200)),
    ]
    return [*vectors, *extremes]


def _row(**by_name: float) -> FeatureVector:
    return tuple(by_name.get(name, 0.0) for name in FEATURE_NAMES)


def _bits(scores: list[float]) -> bytes:
    return np.asarray(scores, dtype=np.float64).tobytes()


def test_the_default_model_is_compiled_to_predict_probas_bits(
    scorer: Scorer, rows: list[FeatureVector]
) -> None:
    assert scorer.compiled
    expected = scorer.model.predict_proba(np.asarray(rows, dtype=np.float64))[:, 1]
    assert _bits(scorer.score_batch(rows)) == expected.tobytes()
    contributions = scorer.contributions(rows[:50])
    assert contributions is not None
    assert len(contributions) == 50


def test_other_models_are_scored_by_predict_proba() -> None:
    x = np.asarray([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.9]])
    model = DecisionTreeClassifier(random_state=0).fit(x, [0, 1, 0, 1])
    tree = Scorer(model=model, version="tree", feature_names=("a", "b"))
    assert not tree.compiled
    assert tree.score_batch([(0.0, 1.0), (1.0, 0.0)]) == [0.0, 1.0]
    assert tree.contributions([(0.0, 1.0)]) is None


def test_batch_scores_equal_single_scores_bit_for_bit(
    scorer: Scorer, rows: list[FeatureVector]
) -> None:
    single = [scorer.score(row) for row in rows]
    assert all(0.0 <= s <= 1.0 for s in single)
    for size in (2, 3, 7, 64, 333, 1000, len(rows)):  # size 1 is `single`
        batched = [
            s for i in range(0, len(rows), size) for s in scorer.score_batch(rows[i : i + size])
        ]
        assert _bits(batched) == _bits(single), f"batch size {size}"


def test_a_rows_score_does_not_depend_on_its_neighbours(
    scorer: Scorer, rows: list[FeatureVector]
) -> None:
    order = list(range(len(rows)))
    Random(1).shuffle(order)
    shuffled = scorer.score_batch([rows[i] for i in order])
    straight = scorer.score_batch(rows)
    assert _bits([straight[i] for i in order]) == _bits(shuffled)


def test_training_is_deterministic(scorer: Scorer, rows: list[FeatureVector]) -> None:
    again = train_default_model(seed=3, count=8000)
    assert again.version == scorer.version == "default-gbc-2+seed3.n8000"
    assert _bits(again.score_batch(rows)) == _bits(scorer.score_batch(rows))


def test_scores_separate_the_classes(scorer: Scorer) -> None:
    vectors, labels = featurize(generate(4000, cards=10_000, seed=22, events_per_second=40.0))
    scores = np.asarray(scorer.score_batch(vectors))
    fraud = np.asarray(labels) == 1
    assert fraud.any()
    assert np.median(scores[fraud]) > 0.5 > np.quantile(scores[~fraud], 0.95)


def test_empty_batch_and_wrong_width(scorer: Scorer) -> None:
    assert scorer.score_batch([]) == []
    with pytest.raises(ValueError, match=f"{len(FEATURE_NAMES)} features"):
        scorer.score_batch([(1.0, 2.0)])
    with pytest.raises(ValueError, match=f"{len(FEATURE_NAMES)} features"):
        scorer.contributions([(0.0,) * len(FEATURE_NAMES), (1.0, 2.0)])


def test_the_model_must_fit_the_feature_names() -> None:
    x = np.asarray([[0.0, 1.0], [1.0, 0.0], [0.5, 0.5], [0.2, 0.9]])
    model = GradientBoostingClassifier(n_estimators=2, random_state=0).fit(x, [0, 1, 0, 1])
    with pytest.raises(ValueError, match="takes 2 features"):
        Scorer(model=model, version="tiny", feature_names=FEATURE_NAMES)
    assert Scorer(model=model, version="tiny", feature_names=("a", "b")).score((0.0, 1.0)) < 0.5
