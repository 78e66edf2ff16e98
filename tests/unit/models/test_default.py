"""The default model against the classic velocity rule, on held-out synthetic traffic."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from features.card import CARD_FEATURE_NAMES
from features.merchant import MERCHANT_FEATURE_NAMES
from features.schema import FEATURE_NAMES
from models.default import MODEL_VERSION, featurize, train_default_model
from models.policy import Policy, velocity_rule
from models.scorer import Scorer
from models.synthetic import DEFAULT_CARDS, SCENARIOS, generate

POLICY = Policy()
HELD_OUT_SEED = 1234  # the default model trains on seed 7


@pytest.fixture(scope="module")
def model() -> Scorer:
    return train_default_model()


@pytest.fixture(scope="module")
def held_out(model: Scorer) -> tuple[list[str | None], np.ndarray, np.ndarray, np.ndarray]:
    """(scenarios, labels, model scores, rule flags) of 30,000 transactions at 1 % fraud."""
    items = list(generate(30_000, cards=DEFAULT_CARDS, seed=HELD_OUT_SEED, fraud_rate=0.01))
    vectors, labels = featurize(items)
    rule = np.asarray([float(velocity_rule(v, POLICY)) for v in vectors])
    scores = np.asarray(model.score_batch(vectors))
    return [i.scenario for i in items], np.asarray(labels), scores, rule


def test_identity(model: Scorer) -> None:
    assert model.version == MODEL_VERSION == "default-gbc-2"
    assert model.feature_names == FEATURE_NAMES


def test_the_model_clearly_beats_the_velocity_rule(
    held_out: tuple[list[str | None], np.ndarray, np.ndarray, np.ndarray],
) -> None:
    _, labels, scores, rule = held_out
    assert labels.sum() >= 150
    model_ap, rule_ap = (
        average_precision_score(labels, scores),
        average_precision_score(labels, rule),
    )
    assert model_ap >= 0.5
    assert model_ap >= rule_ap + 0.4
    assert roc_auc_score(labels, scores) >= 0.95
    assert roc_auc_score(labels, rule) < 0.7


def test_every_scenario_is_mostly_flagged_and_genuine_rarely(
    held_out: tuple[list[str | None], np.ndarray, np.ndarray, np.ndarray],
) -> None:
    scenarios, labels, scores, _ = held_out
    flagged = scores >= POLICY.review_threshold
    caught = Counter(s for s, f in zip(scenarios, flagged, strict=True) if s is not None and f)
    total = Counter(s for s in scenarios if s is not None)
    for scenario in SCENARIOS:
        assert caught[scenario] >= 0.6 * total[scenario], (scenario, caught, total)
    assert flagged[labels == 0].mean() < 0.03


def test_the_model_learned_the_merchant_risk_features(model: Scorer) -> None:
    importances = dict(zip(FEATURE_NAMES, model.model.feature_importances_, strict=True))
    assert importances["merchant_fraud_share_30d"] > 0.01
    assert importances["merchant_labelled_30d"] > 0.0
    assert importances["merchant_fraud_share_7d"] > 0.0


def test_a_merchant_with_a_fraud_history_raises_scores_and_flags(model: Scorer) -> None:
    """The same held-out rows, scored as if their merchant had five labelled transactions in
    the last 7 and 30 days, all fraud, then all genuine: fraud history alone moves them."""
    items = generate(5_000, cards=DEFAULT_CARDS, seed=HELD_OUT_SEED, fraud_rate=0.01)
    cards = [v[: len(CARD_FEATURE_NAMES)] for v in featurize(items)[0]]
    assert len(MERCHANT_FEATURE_NAMES) == 6
    risky = np.asarray(model.score_batch([(*v, 0.0, 0.0, 5.0, 1.0, 5.0, 1.0) for v in cards]))
    clean = np.asarray(model.score_batch([(*v, 0.0, 0.0, 5.0, 0.0, 5.0, 0.0) for v in cards]))
    assert risky.mean() > clean.mean()
    flagged = (risky >= POLICY.review_threshold).sum(), (clean >= POLICY.review_threshold).sum()
    assert flagged[0] > flagged[1]
