"""How good a score is at finding fraud: the metrics of the out-of-time evaluation.

All functions take one score per transaction (higher = more suspicious; a rule gives 0 or 1)
and the transaction's label (1 = fraud):

- ``auc_roc`` and ``average_precision`` (scikit-learn's, over transactions);
- ``recall_at_1pct_fpr``: the largest share of fraud caught by any threshold that flags at
  most 1 % of genuine transactions (:func:`recall_at_fpr`);
- ``card_precision_top100``: per day, the 100 cards with the highest score of the day are
  what an analyst team can check; the share of them that had fraud that day, averaged over
  the days (:func:`card_precision_at_k`). Ties at the 100th place are broken at random, in
  expectation: a rule that fires for fewer than 100 cards fills the rest of its list with
  cards drawn from the ones it did not flag.

A day with fewer than ``k`` fraud cards caps what even a perfect ranking reaches; the cap
is reported next to the figure (:func:`card_precision_bound`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

DAY_MS = 86_400_000
TOP_CARDS = 100
MAX_FPR = 0.01


@dataclass(frozen=True, slots=True)
class Metrics:
    auc_roc: float
    average_precision: float
    recall_at_1pct_fpr: float
    card_precision_top100: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def evaluate(
    scores: np.ndarray, labels: np.ndarray, cards: np.ndarray, event_time_ms: np.ndarray
) -> Metrics:
    """All four metrics of ``scores`` against ``labels`` (both classes must occur)."""
    return Metrics(
        auc_roc=float(roc_auc_score(labels, scores)),
        average_precision=float(average_precision_score(labels, scores)),
        recall_at_1pct_fpr=recall_at_fpr(scores, labels, MAX_FPR),
        card_precision_top100=card_precision_at_k(scores, labels, cards, event_time_ms, TOP_CARDS),
    )


def recall_at_fpr(scores: np.ndarray, labels: np.ndarray, max_fpr: float) -> float:
    """The highest recall of a threshold whose false-positive rate is at most ``max_fpr``."""
    fpr, tpr, _ = roc_curve(labels, scores)
    return float(tpr[fpr <= max_fpr].max())


def _card_days(
    scores: np.ndarray, labels: np.ndarray, cards: np.ndarray, event_time_ms: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (day, card): the day, the card's highest score that day and whether it had fraud."""
    day = event_time_ms // DAY_MS
    _, card_code = np.unique(cards, return_inverse=True)
    pairs, index = np.unique(
        np.stack([day, card_code.astype(np.int64)], axis=1), axis=0, return_inverse=True
    )
    best = np.full(len(pairs), -np.inf)
    np.maximum.at(best, index, scores.astype(np.float64))
    fraud = np.zeros(len(pairs), dtype=np.int64)
    np.maximum.at(fraud, index, labels.astype(np.int64))
    return pairs[:, 0], best, fraud


def card_precision_at_k(
    scores: np.ndarray,
    labels: np.ndarray,
    cards: np.ndarray,
    event_time_ms: np.ndarray,
    k: int = TOP_CARDS,
) -> float:
    """Mean over UTC days of the share of fraud cards among the day's ``k`` top-scored cards.

    A card's score for the day is its highest; ties at the ``k``-th place count in
    expectation; a day with fewer than ``k`` cards divides by its number of cards.
    """
    days, best, fraud = _card_days(scores, labels, cards, event_time_ms)
    precisions = []
    for day in np.unique(days):
        on_day = days == day
        precisions.append(_expected_precision(best[on_day], fraud[on_day], k))
    return float(np.mean(precisions))


def _expected_precision(scores: np.ndarray, fraud: np.ndarray, k: int) -> float:
    k = min(k, len(scores))
    cut = np.sort(scores)[::-1][k - 1]
    above, tied = scores > cut, scores == cut
    slots = k - int(above.sum())
    expected = fraud[above].sum() + fraud[tied].sum() * slots / tied.sum()
    return float(expected / k)


def card_precision_bound(
    labels: np.ndarray, cards: np.ndarray, event_time_ms: np.ndarray, k: int = TOP_CARDS
) -> float:
    """The card precision of a perfect ranking: per day, fraud cards (at most ``k``) / ``k``."""
    return card_precision_at_k(labels.astype(np.float64), labels, cards, event_time_ms, k)
