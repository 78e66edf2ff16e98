"""The evaluation metrics on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from models.evaluation import (
    DAY_MS,
    card_precision_at_k,
    card_precision_bound,
    evaluate,
    recall_at_fpr,
)


def test_recall_at_a_false_positive_rate() -> None:
    labels = np.asarray([1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    scores = np.asarray([0.9, 0.8, 0.3, 0.1, 0.85, 0.7, 0.2, 0.2, 0.2, 0.2, 0.1, 0.1, 0.1, 0.1])
    assert recall_at_fpr(scores, labels, 0.0) == 0.25  # above 0.85: one of four
    assert recall_at_fpr(scores, labels, 0.1) == 0.5  # one genuine of ten may be flagged
    assert recall_at_fpr(scores, labels, 1.0) == 1.0


def test_card_precision_takes_each_cards_best_score_of_the_day() -> None:
    cards = np.asarray(["a", "a", "b", "c", "a", "b"], dtype=object)
    times = np.asarray([0, 10, 20, 30, DAY_MS, DAY_MS + 5])
    labels = np.asarray([0, 1, 0, 0, 0, 1])
    scores = np.asarray([0.9, 0.1, 0.5, 0.2, 0.3, 0.4])
    # day 0: a (0.9, had fraud), b (0.5), c (0.2); day 1: b (0.4, fraud), a (0.3)
    assert card_precision_at_k(scores, labels, cards, times, k=1) == pytest.approx((1 + 1) / 2)
    assert card_precision_at_k(scores, labels, cards, times, k=2) == pytest.approx(
        (1 / 2 + 1 / 2) / 2
    )
    assert card_precision_bound(labels, cards, times, k=2) == pytest.approx(0.5)


def test_ties_at_the_cut_count_in_expectation() -> None:
    cards = np.asarray(list("abcd"), dtype=object)
    times = np.zeros(4, dtype=np.int64)
    labels = np.asarray([1, 1, 0, 0])
    rule = np.asarray([1.0, 0.0, 0.0, 0.0])
    # a is flagged; the second place goes to one of b, c, d: a fraud one with chance 1/3
    assert card_precision_at_k(rule, labels, cards, times, k=2) == pytest.approx((1 + 1 / 3) / 2)


def test_evaluate_puts_them_together() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.05).astype(np.int64)
    scores = labels * 0.5 + rng.random(2000) * 0.6
    cards = np.asarray([f"c{i % 300}" for i in range(2000)], dtype=object)
    times = np.arange(2000) * (3 * DAY_MS // 2000)
    metrics = evaluate(scores, labels, cards, times)
    assert 0.9 < metrics.auc_roc <= 1.0
    assert metrics.recall_at_1pct_fpr > 0.5
    assert set(metrics.as_dict()) == {
        "auc_roc", "average_precision", "recall_at_1pct_fpr", "card_precision_top100",
    }  # fmt: skip
