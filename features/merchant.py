"""Merchant risk from labels: per-merchant counts of labelled transactions in daily snapshots.

Labels (chargebacks, analyst verdicts) arrive days or weeks after their transaction. From
them, each merchant gets, for windows of W = 1, 7 and 30 days, the number of its labelled
transactions and the share of them labelled fraud, counted with a *delay* of ``delay_days``
(7 by default): the window ends that long before the transaction being scored, because the
labels of more recent transactions are mostly not known yet.

Everything is aligned to UTC days, so that one immutable snapshot per day serves every
transaction of that day (docs/adr/0005-merchant-risk-snapshots.md has the why). For a
transaction at event time ``t`` on UTC day ``d = t // DAY_MS``:

- the snapshot *version* it asks for is day ``d`` (:func:`version_name`, ``2026-01-08/d7``);
- that snapshot holds the labels *reported* before the start of day ``d - 1``
  (:func:`label_cutoff_ms`): what was known a day before ``d`` began, so the snapshot can be
  published before it is needed, and nothing from after ``t`` is ever used;
- a labelled transaction counts in window W if its event time lies in
  ``[start(d) - delay - W days, start(d) - delay)``: the window ends between ``delay`` and
  ``delay + 1 day`` before ``t`` (:func:`window_end_ms`);
- of several labels of one transaction (reported by the cut-off, naming an event time in the
  30-day window), the latest counts (on a tie, fraud), with the merchant and event time it
  names: the rule of the training labels (:class:`models.training.LabelBook`);
- ``merchant_labelled_<W>`` is the count, ``merchant_fraud_share_<W>`` fraud / count (0.0 for
  no labelled transaction). A merchant absent from the snapshot, or no snapshot at all, gives
  zeros; the decision records which snapshot was used (None: none).

:func:`snapshot` computes one snapshot from any iterable of labels (it ignores those outside
the cut-off or windows): the aggregator (``fraudscore merchant-risk``) runs it over the labels
in the registry database, training over the dataset's labels, so the counts are the same
code's both ways. :func:`choose_version` is the temporal join: which of the snapshots at hand a
transaction uses.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Protocol

from features.windows import DAY_MS

WINDOW_DAYS: Final = (1, 7, 30)
MERCHANT_FEATURE_NAMES: tuple[str, ...] = tuple(
    f"{kind}_{w}d" for w in WINDOW_DAYS for kind in ("merchant_labelled", "merchant_fraud_share")
)
# (labelled, fraud) per window, in WINDOW_DAYS order: integers, so a snapshot is exact
MerchantCounts = tuple[int, int, int, int, int, int]
NO_RISK: Final = (0.0,) * len(MERCHANT_FEATURE_NAMES)


@dataclass(frozen=True, slots=True)
class MerchantRiskParams:
    delay_days: int = 7  # the windows end this long before the start of the transaction's day
    max_staleness_days: int = 2  # how much older a snapshot may be used when the day's is missing


DEFAULT_MERCHANT_PARAMS = MerchantRiskParams()


@dataclass(frozen=True, slots=True)
class LabelFact:
    """What a label says, as the merchant features need it."""

    transaction_id: str
    merchant_id: str
    fraud: bool
    event_time_ms: int  # the labelled transaction's
    reported_at_ms: int


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The merchant counts every transaction of UTC day ``day`` asks for."""

    day: int  # days since the epoch
    delay_days: int
    counts: Mapping[str, MerchantCounts]

    @property
    def version(self) -> str:
        return version_name(self.day, self.delay_days)


def day_of(time_ms: int) -> int:
    """The UTC day (days since the epoch) of an event time."""
    return time_ms // DAY_MS


def version_name(day: int, delay_days: int) -> str:
    """``YYYY-MM-DD/d<delay>``: the day served and the delay the windows were counted with."""
    date = datetime.fromtimestamp(day * DAY_MS / 1000, tz=UTC).date()
    return f"{date.isoformat()}/d{delay_days}"


def parse_version(version: str) -> tuple[int, int] | None:
    """The (day, delay_days) of a :func:`version_name`; None if ``version`` is not one."""
    day_text, _, delay_text = version.partition("/d")
    try:
        day = datetime.fromisoformat(day_text).replace(tzinfo=UTC)
        delay = int(delay_text)
    except ValueError:
        return None
    return day_of(int(day.timestamp()) * 1000), delay


def label_cutoff_ms(day: int) -> int:
    """Snapshot ``day`` holds the labels reported strictly before this: the start of the
    day before."""
    return (day - 1) * DAY_MS


def window_end_ms(day: int, params: MerchantRiskParams = DEFAULT_MERCHANT_PARAMS) -> int:
    """The (exclusive) end of every window of snapshot ``day``, in event time."""
    return (day - params.delay_days) * DAY_MS


def window_start_ms(day: int, params: MerchantRiskParams = DEFAULT_MERCHANT_PARAMS) -> int:
    """The (inclusive) start of the longest window of snapshot ``day``."""
    return window_end_ms(day, params) - WINDOW_DAYS[-1] * DAY_MS


def snapshot(
    labels: Iterable[LabelFact], day: int, params: MerchantRiskParams = DEFAULT_MERCHANT_PARAMS
) -> Snapshot:
    """The snapshot of ``day`` over ``labels`` (any order; irrelevant ones are skipped)."""
    cutoff, end = label_cutoff_ms(day), window_end_ms(day, params)
    spans = tuple(w * DAY_MS for w in WINDOW_DAYS)
    latest: dict[str, tuple[int, bool, str, int]] = {}
    for label in labels:
        if label.reported_at_ms >= cutoff or not 0 < end - label.event_time_ms <= spans[-1]:
            continue  # not known yet, or not in the windows
        entry = (label.reported_at_ms, label.fraud, label.merchant_id, label.event_time_ms)
        known = latest.get(label.transaction_id)
        if known is None or entry > known:  # the latest report; on a tie fraud, then any order
            latest[label.transaction_id] = entry
    counts: dict[str, list[int]] = {}
    for _, fraud, merchant_id, event_time_ms in latest.values():
        age = end - event_time_ms  # in (0, 30 days] for an event in [end - 30 days, end)
        row = counts.setdefault(merchant_id, [0] * len(MERCHANT_FEATURE_NAMES))
        for i, span in enumerate(spans):
            if age <= span:
                row[2 * i] += 1
                row[2 * i + 1] += fraud
    return Snapshot(
        day,
        params.delay_days,
        {m: (r[0], r[1], r[2], r[3], r[4], r[5]) for m, r in sorted(counts.items())},
    )


def merchant_vector(counts: MerchantCounts | None) -> tuple[float, ...]:
    """The merchant features of one merchant's counts (None: no labelled transaction)."""
    if counts is None:
        return NO_RISK
    n1, f1, n7, f7, n30, f30 = counts
    return (
        float(n1), f1 / n1 if n1 else 0.0,
        float(n7), f7 / n7 if n7 else 0.0,
        float(n30), f30 / n30 if n30 else 0.0,
    )  # fmt: skip


def choose_version(
    available: Sequence[int], day: int, params: MerchantRiskParams = DEFAULT_MERCHANT_PARAMS
) -> int | None:
    """The snapshot a transaction of ``day`` uses among the ``available`` days (sorted): the
    day's own, else the newest older one at most ``max_staleness_days`` older, else None.

    The day's own snapshot is published a day ahead of need (its labels are those reported
    before the day before), so the fallback is taken only when the aggregator is that far
    behind; the version used is recorded in the decision.
    """
    i = bisect_right(available, day)
    if i == 0:
        return None
    newest = available[i - 1]
    return newest if day - newest <= params.max_staleness_days else None


class SnapshotBook(Protocol):
    """Where the scoring pipeline gets the snapshot for a transaction's day: the worker's is
    the registry database's published snapshots (:mod:`app.merchant_snapshots`), replay and
    training use :class:`MemorySnapshots`."""

    def snapshot_for(self, day: int) -> Snapshot | None:
        """The snapshot a transaction of UTC day ``day`` uses (:func:`choose_version`)."""
        ...


class MemorySnapshots:
    """A :class:`SnapshotBook` over snapshots at hand (none: every merchant scores zeros)."""

    def __init__(
        self,
        snapshots: Iterable[Snapshot] = (),
        params: MerchantRiskParams = DEFAULT_MERCHANT_PARAMS,
    ) -> None:
        self.params = params
        self.snapshots = {s.day: s for s in snapshots}
        self._days = sorted(self.snapshots)

    def snapshot_for(self, day: int) -> Snapshot | None:
        chosen = choose_version(self._days, day, self.params)
        return None if chosen is None else self.snapshots[chosen]


class PinnedSnapshot:
    """A :class:`SnapshotBook` that gives one snapshot (or none) for every day: a recorded
    decision's own, when it is replayed (``fraudscore replay``)."""

    def __init__(self, snapshot: Snapshot | None) -> None:
        self.snapshot = snapshot

    def snapshot_for(self, day: int) -> Snapshot | None:
        return self.snapshot


class LabelSnapshots:
    """A :class:`SnapshotBook` that computes each day's snapshot from all of ``labels`` when
    first asked: what scoring sees when the aggregator has received exactly these labels and
    published every day's snapshot on time. Training's merchant features (and oracle tests)."""

    def __init__(
        self, labels: Iterable[LabelFact], params: MerchantRiskParams = DEFAULT_MERCHANT_PARAMS
    ) -> None:
        self.params = params
        self._labels = sorted(labels, key=lambda label: label.event_time_ms)
        self._times = [label.event_time_ms for label in self._labels]
        self._snapshots: dict[int, Snapshot] = {}

    def snapshot_for(self, day: int) -> Snapshot:
        known = self._snapshots.get(day)
        if known is None:
            lo = bisect_left(self._times, window_start_ms(day, self.params))
            hi = bisect_left(self._times, window_end_ms(day, self.params))
            known = self._snapshots[day] = snapshot(self._labels[lo:hi], day, self.params)
        return known
