"""The decision policy: thresholds (inclusive), the velocity rule and the reason codes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.card import FeatureVector
from features.schema import FEATURE_NAMES
from models.policy import (
    HIGH_AMOUNT,
    MANY_MERCHANTS_10M,
    MAX_MODEL_REASONS,
    MODEL_REASON_OF_FEATURE,
    REASON_TEXT,
    SCORE_ABOVE_DECLINE_THRESHOLD,
    SCORE_ABOVE_REVIEW_THRESHOLD,
    VELOCITY_60S,
    Decision,
    Outcome,
    Policy,
    decide,
    model_reasons,
)

POLICY = Policy()


def features(
    amount: float = 25.0,
    txn_count_60s: float = 1.0,
    amount_sum_60s: float | None = None,
    distinct_merchants_10m: float = 1.0,
) -> FeatureVector:
    by_name = {
        "amount": amount,
        "txn_count_60s": txn_count_60s,
        "amount_sum_60s": amount if amount_sum_60s is None else amount_sum_60s,
        "distinct_merchants_10m": distinct_merchants_10m,
    }
    return tuple(by_name.get(name, 0.0) for name in FEATURE_NAMES)  # the rest play no part


QUIET = features()


def test_defaults_match_the_settings_defaults() -> None:
    assert (POLICY.version, POLICY.review_threshold, POLICY.decline_threshold) == (
        "default-1",
        0.5,
        0.85,
    )


@pytest.mark.parametrize(
    ("score", "expected"),
    [
        (0.0, Decision(Outcome.APPROVE, ())),
        (math.nextafter(0.5, 0.0), Decision(Outcome.APPROVE, ())),
        (0.5, Decision(Outcome.REVIEW, (SCORE_ABOVE_REVIEW_THRESHOLD,))),
        (math.nextafter(0.85, 0.0), Decision(Outcome.REVIEW, (SCORE_ABOVE_REVIEW_THRESHOLD,))),
        (0.85, Decision(Outcome.DECLINE, (SCORE_ABOVE_DECLINE_THRESHOLD,))),
        (1.0, Decision(Outcome.DECLINE, (SCORE_ABOVE_DECLINE_THRESHOLD,))),
    ],
)
def test_thresholds_are_inclusive(score: float, expected: Decision) -> None:
    assert decide(score, QUIET, POLICY) == expected


def test_the_velocity_rule_forces_review_whatever_the_score() -> None:
    burst = features(amount=300.0, txn_count_60s=4, amount_sum_60s=1000.01)
    assert decide(0.0, burst, POLICY) == Decision(Outcome.REVIEW, (VELOCITY_60S,))
    assert decide(0.6, burst, POLICY) == Decision(
        Outcome.REVIEW, (SCORE_ABOVE_REVIEW_THRESHOLD, VELOCITY_60S)
    )
    assert decide(0.9, burst, POLICY) == Decision(
        Outcome.DECLINE, (SCORE_ABOVE_DECLINE_THRESHOLD, VELOCITY_60S)
    )


@pytest.mark.parametrize(
    ("count", "total"),
    [(3, 5000.0), (4, 1000.0), (10, 999.99), (1, 1e6)],
)
def test_the_velocity_rule_needs_more_than_both_limits(count: float, total: float) -> None:
    quiet_burst = features(amount=10.0, txn_count_60s=count, amount_sum_60s=total)
    assert decide(0.1, quiet_burst, POLICY).outcome is Outcome.APPROVE


def test_signals_explain_a_flag_but_never_an_approval() -> None:
    testing = features(amount=1.0, txn_count_60s=9, amount_sum_60s=20.0, distinct_merchants_10m=9)
    assert decide(0.1, testing, POLICY) == Decision(Outcome.APPROVE, ())
    assert decide(0.9, testing, POLICY).reasons == (
        SCORE_ABOVE_DECLINE_THRESHOLD,
        MANY_MERCHANTS_10M,
    )
    big = features(amount=1000.0)
    assert decide(0.7, big, POLICY).reasons == (SCORE_ABOVE_REVIEW_THRESHOLD, HIGH_AMOUNT)
    assert decide(0.7, features(amount=999.99, distinct_merchants_10m=4), POLICY).reasons == (
        SCORE_ABOVE_REVIEW_THRESHOLD,
    )


def test_reason_codes_are_stable_upper_snake_strings() -> None:
    codes = [
        SCORE_ABOVE_DECLINE_THRESHOLD,
        SCORE_ABOVE_REVIEW_THRESHOLD,
        VELOCITY_60S,
        MANY_MERCHANTS_10M,
        HIGH_AMOUNT,
        *MODEL_REASON_OF_FEATURE.values(),
    ]
    assert all(code.isupper() and " " not in code for code in codes)
    assert set(codes) == set(REASON_TEXT)  # every code is said in words, and no other
    assert all(text and text == text.strip() for text in REASON_TEXT.values())
    assert [o.value for o in Outcome] == ["APPROVE", "REVIEW", "DECLINE"]


def test_custom_policy() -> None:
    strict = Policy(version="strict-1", review_threshold=0.2, decline_threshold=0.3)
    assert decide(0.25, QUIET, strict).outcome is Outcome.REVIEW
    assert decide(0.3, QUIET, strict).outcome is Outcome.DECLINE
    loose = Policy(velocity_count_above=10, velocity_amount_above=1e9)
    assert decide(0.0, features(txn_count_60s=5, amount_sum_60s=5000.0), loose).reasons == ()


@pytest.mark.parametrize("score", [math.nan, -0.01, 1.01, math.inf])
def test_a_score_must_be_a_probability(score: float) -> None:
    with pytest.raises(ValueError, match="probability"):
        decide(score, QUIET, POLICY)


def test_inconsistent_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="features"):
        decide(0.1, (1.0, 2.0), POLICY)
    with pytest.raises(ValueError, match="review_threshold"):
        Policy(review_threshold=0.9, decline_threshold=0.8)
    with pytest.raises(ValueError, match="review_threshold"):
        Policy(decline_threshold=math.nan)


@given(
    score=st.floats(0.0, 1.0),
    count=st.integers(1, 50),
    total=st.floats(0.0, 1e5),
    merchants=st.integers(1, 50),
)
def test_outcome_and_reasons_agree(score: float, count: int, total: float, merchants: int) -> None:
    vector = features(
        amount=total / count,
        txn_count_60s=count,
        amount_sum_60s=total,
        distinct_merchants_10m=merchants,
    )
    decision = decide(score, vector, POLICY)
    assert (decision.outcome is Outcome.APPROVE) == (decision.reasons == ())
    assert (decision.outcome is Outcome.DECLINE) == (score >= POLICY.decline_threshold)
    assert (VELOCITY_60S in decision.reasons) == (count > 3 and total > 1000)
    assert decision == decide(score, vector, POLICY)


def test_every_feature_belongs_to_a_model_reason() -> None:
    assert set(MODEL_REASON_OF_FEATURE) == set(FEATURE_NAMES)
    assert all(code.startswith("MODEL_") for code in MODEL_REASON_OF_FEATURE.values())


def _pushes(**by_name: float) -> tuple[float, ...]:
    return tuple(by_name.get(name, 0.0) for name in FEATURE_NAMES)


def test_model_reasons_are_the_strongest_pushes_towards_fraud_by_group() -> None:
    pushes = _pushes(
        amount=0.2,
        txn_count_60s=0.3,
        amount_sum_60s=0.25,  # the 60 s group: 0.55 in all
        new_device=0.5,
        speed_kmh=0.4,
        amount_zscore=-2.0,  # pushed away from fraud: never a reason
        local_hour=0.1,
    )
    assert MAX_MODEL_REASONS == 3
    assert model_reasons(pushes, FEATURE_NAMES) == (
        "MODEL_ACTIVITY_60S",
        "MODEL_NEW_DEVICE",
        "MODEL_TRAVEL_SPEED",
    )
    assert model_reasons(_pushes(amount_ratio_30d=0.5, amount_zscore=-0.6), FEATURE_NAMES) == ()
    assert model_reasons(_pushes(), FEATURE_NAMES) == ()


def test_model_reasons_ties_and_unknown_features() -> None:
    tied = _pushes(local_night=0.25, new_mcc=0.25, amount=0.25)
    assert model_reasons(tied, FEATURE_NAMES) == (
        "MODEL_AMOUNT",
        "MODEL_NEW_CATEGORY",
        "MODEL_LOCAL_TIME",
    )  # in the order of REASON_TEXT
    assert model_reasons((0.1, 0.3), ("amount", "merchant_risk")) == (
        "MODEL_MERCHANT_RISK",
        "MODEL_AMOUNT",
    )
