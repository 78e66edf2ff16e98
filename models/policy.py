"""The decision policy: a model score plus hard rules → APPROVE, REVIEW or DECLINE, with reasons.

:func:`decide` is pure: the same score, features and policy always give the same decision.
Thresholds are inclusive: a score equal to ``decline_threshold`` declines, a score equal to
``review_threshold`` goes to review.

The hard rule is the classic velocity rule: more than ``velocity_count_above`` transactions
totalling more than ``velocity_amount_above`` within the last 60 s forces at least REVIEW,
whatever the model says.

Reason codes (stable, upper snake case; the outcome's reasons come first):

- ``SCORE_ABOVE_DECLINE_THRESHOLD``: score >= decline threshold (DECLINE);
- ``SCORE_ABOVE_REVIEW_THRESHOLD``: score >= review threshold, below decline (REVIEW);
- ``VELOCITY_60S``: the velocity rule fired (at least REVIEW);
- ``MANY_MERCHANTS_10M``, ``HIGH_AMOUNT``: signals that explain a REVIEW or DECLINE; they are
  not given on APPROVE, which has no reasons.

Amounts are in the transaction currency's major unit, as in the features.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from features.card import FEATURE_NAMES, FeatureVector

SCORE_ABOVE_DECLINE_THRESHOLD = "SCORE_ABOVE_DECLINE_THRESHOLD"
SCORE_ABOVE_REVIEW_THRESHOLD = "SCORE_ABOVE_REVIEW_THRESHOLD"
VELOCITY_60S = "VELOCITY_60S"
MANY_MERCHANTS_10M = "MANY_MERCHANTS_10M"
HIGH_AMOUNT = "HIGH_AMOUNT"

_AMOUNT = FEATURE_NAMES.index("amount")
_COUNT_60S = FEATURE_NAMES.index("txn_count_60s")
_SUM_60S = FEATURE_NAMES.index("amount_sum_60s")
_MERCHANTS_10M = FEATURE_NAMES.index("distinct_merchants_10m")


class Outcome(StrEnum):
    APPROVE = "APPROVE"
    REVIEW = "REVIEW"
    DECLINE = "DECLINE"


@dataclass(frozen=True, slots=True)
class Policy:
    version: str = "default-1"
    review_threshold: float = 0.5
    decline_threshold: float = 0.85
    velocity_count_above: int = 3  # the rule fires on more than this many transactions in 60 s
    velocity_amount_above: float = 1000.0  # ... totalling more than this
    many_merchants_10m: int = 5  # MANY_MERCHANTS_10M from this many distinct merchants
    high_amount: float = 1000.0  # HIGH_AMOUNT from this amount

    def __post_init__(self) -> None:
        if not 0.0 <= self.review_threshold <= self.decline_threshold <= 1.0:
            raise ValueError(
                "need 0 <= review_threshold <= decline_threshold <= 1, got "
                f"{self.review_threshold} and {self.decline_threshold}"
            )


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reasons: tuple[str, ...]


def velocity_rule(features: FeatureVector, policy: Policy) -> bool:
    """The classic rule: too many transactions totalling too much within 60 s."""
    return (
        features[_COUNT_60S] > policy.velocity_count_above
        and features[_SUM_60S] > policy.velocity_amount_above
    )


_APPROVED = Decision(Outcome.APPROVE, ())


def decide(score: float, features: FeatureVector, policy: Policy) -> Decision:
    """The outcome for a scored transaction, and why."""
    if not 0.0 <= score <= 1.0:  # NaN included
        raise ValueError(f"score must be a probability, got {score}")
    if len(features) != len(FEATURE_NAMES):
        raise ValueError(f"expected {len(FEATURE_NAMES)} features, got {len(features)}")
    velocity = velocity_rule(features, policy)
    if score >= policy.decline_threshold:
        outcome, reasons = Outcome.DECLINE, [SCORE_ABOVE_DECLINE_THRESHOLD]
    elif score >= policy.review_threshold:
        outcome, reasons = Outcome.REVIEW, [SCORE_ABOVE_REVIEW_THRESHOLD]
    elif velocity:
        outcome, reasons = Outcome.REVIEW, []
    else:
        return _APPROVED  # most transactions: no reasons to build
    if velocity:
        reasons.append(VELOCITY_60S)
    return Decision(outcome, (*reasons, *_signals(features, policy)))


def _signals(features: FeatureVector, policy: Policy) -> list[str]:
    signals = []
    if features[_MERCHANTS_10M] >= policy.many_merchants_10m:
        signals.append(MANY_MERCHANTS_10M)
    if features[_AMOUNT] >= policy.high_amount:
        signals.append(HIGH_AMOUNT)
    return signals
