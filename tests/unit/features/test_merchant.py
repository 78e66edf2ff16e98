"""Merchant risk from labels: windows, delay, label cut-off, fraud share and the choice of
snapshot, against a brute-force recomputation from the list of labels."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from features.merchant import (
    MERCHANT_FEATURE_NAMES,
    NO_RISK,
    LabelFact,
    LabelSnapshots,
    MemorySnapshots,
    MerchantRiskParams,
    choose_version,
    day_of,
    label_cutoff_ms,
    merchant_vector,
    parse_version,
    snapshot,
    version_name,
    window_end_ms,
)
from features.windows import DAY_MS

DAY = 20_500  # 2026-02-16
P = MerchantRiskParams(delay_days=7)


def fact(
    txn: str, event_ms: int, reported_ms: int, *, fraud: bool = True, merchant: str = "m1"
) -> LabelFact:
    return LabelFact(txn, merchant, fraud, event_ms, reported_ms)


def brute_force(
    labels: list[LabelFact], day: int, params: MerchantRiskParams
) -> dict[str, tuple[int, ...]]:
    """The definition, spelled out: per window and merchant, the transactions whose latest
    label among those reported before the cut-off about an event in the 30-day window (ties:
    fraud) names that merchant and an event time in [start of day - delay - W, start of day -
    delay)."""
    cutoff = (day - 1) * DAY_MS
    end = (day - params.delay_days) * DAY_MS
    verdict: dict[str, LabelFact] = {}
    for txn in {label.transaction_id for label in labels}:
        known = [
            x
            for x in labels
            if x.transaction_id == txn
            and x.reported_at_ms < cutoff
            and end - 30 * DAY_MS <= x.event_time_ms < end
        ]
        if known:
            verdict[txn] = max(
                known, key=lambda x: (x.reported_at_ms, x.fraud, x.merchant_id, x.event_time_ms)
            )
    out: dict[str, tuple[int, ...]] = {}
    for merchant in sorted({v.merchant_id for v in verdict.values()}):
        row: list[int] = []
        for w in (1, 7, 30):
            inside = [
                v
                for v in verdict.values()
                if v.merchant_id == merchant and end - w * DAY_MS <= v.event_time_ms < end
            ]
            row += [len(inside), sum(v.fraud for v in inside)]
        if row[-2]:
            out[merchant] = tuple(row)
    return out


_labels = st.lists(
    st.builds(
        LabelFact,
        transaction_id=st.sampled_from([f"tx{i}" for i in range(12)]),
        merchant_id=st.sampled_from(["m1", "m2", "m3"]),
        fraud=st.booleans(),
        event_time_ms=st.integers((DAY - 45) * DAY_MS, DAY * DAY_MS),
        reported_at_ms=st.integers((DAY - 40) * DAY_MS, (DAY + 1) * DAY_MS),
    ),
    max_size=40,
)


@settings(max_examples=300, deadline=None)
@given(labels=_labels, delay=st.integers(0, 10), day_shift=st.integers(-3, 3))
def test_snapshot_equals_a_brute_force_recount(
    labels: list[LabelFact], delay: int, day_shift: int
) -> None:
    params = MerchantRiskParams(delay_days=delay)
    day = DAY + day_shift
    made = snapshot(labels, day, params)
    assert dict(made.counts) == brute_force(labels, day, params)
    assert made.version == version_name(day, delay)
    # the order of the labels plays no part, nor do the sliced ones training uses
    assert snapshot(list(reversed(labels)), day, params) == made
    assert LabelSnapshots(labels, params).snapshot_for(day) == made


def test_the_window_ends_the_delay_before_the_start_of_the_day() -> None:
    end = window_end_ms(DAY, P)
    assert end == (DAY - 7) * DAY_MS
    reported = (DAY - 2) * DAY_MS  # known before the cut-off
    labels = [
        fact("at-end", end, reported),  # excluded: the window is half-open
        fact("just-before-end", end - 1, reported),  # in every window
        fact("1d-start", end - DAY_MS, reported),  # in 1d (inclusive start), 7d, 30d
        fact("before-1d", end - DAY_MS - 1, reported, fraud=False),  # 7d, 30d
        fact("30d-start", end - 30 * DAY_MS, reported),  # 30d only
        fact("before-30d", end - 30 * DAY_MS - 1, reported),  # nowhere
    ]
    assert snapshot(labels, DAY, P).counts == {"m1": (2, 2, 3, 2, 4, 3)}


def test_labels_reported_at_or_after_the_cut_off_are_not_known_yet() -> None:
    cutoff = label_cutoff_ms(DAY)
    assert cutoff == (DAY - 1) * DAY_MS
    event = window_end_ms(DAY, P) - 1
    known = fact("a", event, cutoff - 1)
    unknown = fact("b", event, cutoff)
    assert snapshot([known, unknown], DAY, P).counts == {"m1": (1, 1, 1, 1, 1, 1)}
    # a day later the cut-off has moved past it
    assert snapshot([known, unknown], DAY + 1, P).counts["m1"][4:] == (2, 2)


def test_the_latest_label_of_a_transaction_decides_and_a_tie_is_fraud() -> None:
    event, early, late = window_end_ms(DAY, P) - 1, (DAY - 20) * DAY_MS, (DAY - 3) * DAY_MS
    cleared = [fact("a", event, early, fraud=True), fact("a", event, late, fraud=False)]
    charged = [fact("b", event, early, fraud=False), fact("b", event, late, fraud=True)]
    tied = [fact("c", event, late, fraud=False), fact("c", event, late, fraud=True)]
    assert snapshot(cleared, DAY, P).counts == {"m1": (1, 0, 1, 0, 1, 0)}
    assert snapshot(charged, DAY, P).counts == {"m1": (1, 1, 1, 1, 1, 1)}
    assert snapshot(tied, DAY, P).counts == {"m1": (1, 1, 1, 1, 1, 1)}


def test_the_features_are_counts_and_fraud_shares() -> None:
    assert len(MERCHANT_FEATURE_NAMES) == 6
    assert MERCHANT_FEATURE_NAMES[:2] == ("merchant_labelled_1d", "merchant_fraud_share_1d")
    assert merchant_vector((0, 0, 4, 1, 10, 5)) == (0.0, 0.0, 4.0, 0.25, 10.0, 0.5)
    assert merchant_vector(None) == NO_RISK == (0.0,) * 6


def test_a_transaction_uses_its_days_snapshot_else_a_bounded_older_one() -> None:
    params = MerchantRiskParams(delay_days=7, max_staleness_days=2)
    available = [DAY - 5, DAY - 2, DAY, DAY + 3]
    assert choose_version(available, DAY, params) == DAY
    assert choose_version(available, DAY + 1, params) == DAY  # one day stale
    assert choose_version(available, DAY + 2, params) == DAY  # two: the bound
    assert choose_version(available, DAY - 1, params) == DAY - 2  # never a later one
    assert choose_version(available, DAY - 3, params) == DAY - 5
    assert choose_version(available, DAY - 6, params) is None  # nothing old enough
    assert choose_version([DAY - 3], DAY, params) is None  # too stale
    assert choose_version([], DAY, params) is None


def test_memory_snapshots_answer_by_day() -> None:
    labels = [fact("a", window_end_ms(DAY, P) - 1, (DAY - 2) * DAY_MS)]
    book = MemorySnapshots([snapshot(labels, DAY, P)], P)
    found = book.snapshot_for(DAY + 1)
    assert found is not None
    assert found.day == DAY
    assert found.version == "2026-02-16/d7"
    assert book.snapshot_for(DAY - 1) is None
    assert MemorySnapshots().snapshot_for(DAY) is None


def test_a_version_name_parses_back_to_its_day_and_delay() -> None:
    assert parse_version(version_name(20_461, 7)) == (20_461, 7)
    assert parse_version("2026-01-08/d7") == (day_of(1_767_830_400_000), 7)
    for damaged in ("2026-01-08", "2026-13-08/d7", "2026-01-08/dx", ""):
        assert parse_version(damaged) is None
