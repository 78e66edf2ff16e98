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
  not given on APPROVE, which has no reasons;
- ``MODEL_...``: last, from :func:`model_reasons`, the (at most three) groups of features
  that pushed the model's score furthest towards fraud, strongest first: each feature's
  push is its path contribution in the trees (:mod:`models.trees`), summed over the
  features of a group (:data:`MODEL_REASON_OF_FEATURE`). Only pushes towards fraud count,
  and only a REVIEW or DECLINE is explained (only compiled models can say).

:data:`REASON_TEXT` says every code in words for analysts.

Amounts are in the transaction currency's major unit, as in the features.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

from features.card import FeatureVector
from features.merchant import MERCHANT_FEATURE_NAMES
from features.schema import FEATURE_NAMES

SCORE_ABOVE_DECLINE_THRESHOLD = "SCORE_ABOVE_DECLINE_THRESHOLD"
SCORE_ABOVE_REVIEW_THRESHOLD = "SCORE_ABOVE_REVIEW_THRESHOLD"
VELOCITY_60S = "VELOCITY_60S"
MANY_MERCHANTS_10M = "MANY_MERCHANTS_10M"
HIGH_AMOUNT = "HIGH_AMOUNT"

MAX_MODEL_REASONS = 3
_WINDOWS = {
    "60s": "minute",
    "10m": "10 minutes",
    "1h": "hour",
    "24h": "24 hours",
    "7d": "7 days",
    "30d": "30 days",
}

REASON_TEXT: Final[dict[str, str]] = {
    SCORE_ABOVE_DECLINE_THRESHOLD: "the model's fraud score is at or above the decline threshold",
    SCORE_ABOVE_REVIEW_THRESHOLD: "the model's fraud score is at or above the review threshold",
    VELOCITY_60S: (
        "velocity rule: more transactions, totalling more, in the last 60 seconds than the "
        "policy allows"
    ),
    MANY_MERCHANTS_10M: "the card was used at many different merchants in the last 10 minutes",
    HIGH_AMOUNT: "the amount is at or above the policy's high amount",
    "MODEL_AMOUNT": "the model: the amount of this transaction",
    **{
        f"MODEL_ACTIVITY_{window.upper()}": (
            f"the model: the card's transactions in the last {words} "
            "(how many, their total and average amount)"
        )
        for window, words in _WINDOWS.items()
    },
    "MODEL_MERCHANT_SPREAD": (
        "the model: how many different merchants and merchant categories the card used "
        "in the last 10 minutes and 24 hours"
    ),
    "MODEL_TIME_SINCE_PREVIOUS": "the model: the time since the card's previous transaction",
    "MODEL_AMOUNT_VS_HISTORY": (
        "the model: the amount compared with the card's usual amounts "
        "(its 30-day average and its longer-term spending profile)"
    ),
    "MODEL_NEW_DEVICE": "the model: a device the card has not used in the last 30 days",
    "MODEL_NEW_MERCHANT": "the model: a merchant the card has not used in the last 30 days",
    "MODEL_NEW_CATEGORY": (
        "the model: a merchant category the card has not used in the last 30 days"
    ),
    "MODEL_TRAVEL_SPEED": (
        "the model: how fast the card would have travelled from its previous location"
    ),
    "MODEL_LOCAL_TIME": "the model: the local time of day and day of the week",
    "MODEL_MERCHANT_RISK": (
        "the model: the merchant's labelled transactions and their fraud share over 1, 7 and "
        "30 days, counted up to a delay before this day (chargebacks and verdicts)"
    ),
}

MODEL_REASON_OF_FEATURE: Final[dict[str, str]] = {
    "amount": "MODEL_AMOUNT",
    **{
        f"{kind}_{window}": f"MODEL_ACTIVITY_{window.upper()}"
        for window in _WINDOWS
        for kind in ("txn_count", "amount_sum", "amount_avg")
    },
    "distinct_merchants_10m": "MODEL_MERCHANT_SPREAD",
    "distinct_merchants_24h": "MODEL_MERCHANT_SPREAD",
    "distinct_mccs_24h": "MODEL_MERCHANT_SPREAD",
    "seconds_since_prev": "MODEL_TIME_SINCE_PREVIOUS",
    "amount_ratio_30d": "MODEL_AMOUNT_VS_HISTORY",
    "amount_zscore": "MODEL_AMOUNT_VS_HISTORY",
    "new_device": "MODEL_NEW_DEVICE",
    "new_merchant": "MODEL_NEW_MERCHANT",
    "new_mcc": "MODEL_NEW_CATEGORY",
    "speed_kmh": "MODEL_TRAVEL_SPEED",
    "local_hour": "MODEL_LOCAL_TIME",
    "local_weekend": "MODEL_LOCAL_TIME",
    "local_night": "MODEL_LOCAL_TIME",
    **dict.fromkeys(MERCHANT_FEATURE_NAMES, "MODEL_MERCHANT_RISK"),
}
_REASON_ORDER = {code: rank for rank, code in enumerate(REASON_TEXT)}

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


def model_reasons(contributions: Sequence[float], feature_names: Sequence[str]) -> tuple[str, ...]:
    """The codes of the (at most :data:`MAX_MODEL_REASONS`) feature groups that pushed a score
    furthest towards fraud, strongest first; ties in the order of :data:`REASON_TEXT`.

    ``contributions`` are per feature, named by ``feature_names`` (a feature of no known group
    is a group of its own, ``MODEL_<NAME>``).
    """
    pushes: dict[str, float] = {}
    for name, contribution in zip(feature_names, contributions, strict=True):
        code = MODEL_REASON_OF_FEATURE.get(name) or f"MODEL_{name.upper()}"
        pushes[code] = pushes.get(code, 0.0) + contribution
    ranked = sorted(
        (code for code, push in pushes.items() if push > 0.0),
        key=lambda code: (-pushes[code], _REASON_ORDER.get(code, len(_REASON_ORDER))),
    )
    return tuple(ranked[:MAX_MODEL_REASONS])
