"""The decision policy: thresholds (inclusive), the velocity rule and the reason codes."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.card import FEATURE_NAMES, FeatureVector
from models.policy import (
    HIGH_AMOUNT,
    MANY_MERCHANTS_10M,
    SCORE_ABOVE_DECLINE_THRESHOLD,
    SCORE_ABOVE_REVIEW_THRESHOLD,
    VELOCITY_60S,
    Decision,
    Outcome,
    Policy,
    decide,
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
    ]
    assert all(code.isupper() and " " not in code for code in codes)
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
