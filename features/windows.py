"""Sliding event-time windows over one card's arrived transactions: exact and hourly-bucketed.

All windows are half-open, ``(t - W, t]``, over the transactions that have *arrived*, the
current one included.

Exact part (windows of 60 s, 10 min, 1 h and 24 h; the distinct counts): a list of per-event
entries sorted by event time (equal times in arrival order), holding the events of the last
24 h + ``max_out_of_orderness`` measured back from the newest event time the card has seen.
Every exact window is therefore exact for any event that arrives at most
``max_out_of_orderness`` behind the card's newest one, as long as the list was never cut by
its cap (at most ``max_events`` entries; over the cap the oldest entries go).

Bucketed part (windows of 7 and 30 days): per-hour buckets of (count, amount sum) holding
*every* arrived event, bucket ``b`` covering event times ``(b * 1 h, (b + 1) * 1 h]``
(epoch-aligned UTC hours), kept for 30 days + ``max_out_of_orderness`` + 1 h: at most
30 * 24 + 2 = 722 buckets. A window ``(t - W, t]`` is answered as ``(lo, t]`` with
``lo = ceil_1h(t - W)``, the first hour boundary at or after ``t - W``: the exact entries
answer ``(cut, t]`` with ``cut = ceil_1h(t - 24 h)`` and the buckets answer ``(lo, cut]``.
So the result is *exactly* the count and sum over ``(lo, t]``, and the error against the
true window is precisely the events in ``(t - W, lo]``, an interval shorter than 1 h at the
old edge of the window (empty when ``t - W`` is an hour boundary): the bucketed count lies
between the exact counts over ``(t - W + 1 h, t]`` and ``(t - W, t]``, and likewise the sum.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass
from typing import Final

MINUTE_MS: Final = 60_000
HOUR_MS: Final = 3_600_000
DAY_MS: Final = 86_400_000
BUCKET_MS: Final = HOUR_MS
EXACT_WINDOWS_MS: Final = (MINUTE_MS, 10 * MINUTE_MS, HOUR_MS, DAY_MS)
BUCKETED_WINDOWS_MS: Final = (7 * DAY_MS, 30 * DAY_MS)
EXACT_SPAN_MS: Final = DAY_MS  # the longest exact window
BUCKET_SPAN_MS: Final = 30 * DAY_MS  # the longest bucketed window

Totals = tuple[int, int]  # (count, amount sum)
Located = tuple[int, float, float]  # (event_time_ms, lat, lon)


def ceil_to_bucket(time_ms: int) -> int:
    """The first bucket boundary (a multiple of 1 h since the epoch) at or after ``time_ms``."""
    return -(-time_ms // BUCKET_MS) * BUCKET_MS


def bucket_of(time_ms: int) -> int:
    """The hour index ``b`` whose bucket ``(b h, (b + 1) h]`` holds ``time_ms``."""
    return (time_ms - 1) // BUCKET_MS


@dataclass(slots=True)
class ExactList:
    """The exact per-event entries as columns sorted by event time (equal times by arrival),
    plus the newest time and newest located event among arrivals no longer in them."""

    times: list[int]
    amounts: list[int]  # in 1/10**4 of the major unit
    merchants: list[str]
    mccs: list[str]
    lats: list[float | None]
    lons: list[float | None]
    dropped_ms: int | None
    dropped_loc: Located | None

    def drop_oldest(self, n: int) -> None:
        """Remove the ``n`` oldest entries, remembering them as dropped."""
        if n <= 0:
            return
        self.dropped_ms = max(self.times[n - 1], self.dropped_ms or self.times[n - 1])
        for i in range(n - 1, -1, -1):
            lat, lon = self.lats[i], self.lons[i]
            if lat is not None and lon is not None:
                self.note_dropped_location((self.times[i], lat, lon))
                break
        for column in (self.times, self.amounts, self.merchants, self.mccs, self.lats, self.lons):
            del column[:n]

    def note_dropped_location(self, located: Located) -> None:
        if self.dropped_loc is None or located[0] >= self.dropped_loc[0]:
            self.dropped_loc = located

    def previous(self, end: int, t: int) -> tuple[int | None, Located | None]:
        """The latest time and latest located event among entries before ``end`` (all at or
        before ``t``) and the dropped ones, if at or before ``t``."""
        prev = self.times[end - 1] if end > 0 else self.dropped_ms
        located = self.dropped_loc
        lats, lons = self.lats, self.lons
        for i in range(end - 1, -1, -1):
            lat, lon = lats[i], lons[i]
            if lat is not None and lon is not None:
                located = (self.times[i], lat, lon)
                break
        prev = prev if prev is not None and prev <= t else None
        return prev, located if located is not None and located[0] <= t else None


def scan_exact(exact: ExactList, end: int, t: int) -> tuple[list[Totals], Totals, list[int]]:
    """Exact window totals over the entries ``[:end]`` (all at or before ``t``).

    Returns the (count, sum) of each of :data:`EXACT_WINDOWS_MS`, the (count, sum) over
    ``(ceil_1h(t - 24 h), t]`` for the bucketed windows, and the distinct merchants over
    10 min, distinct merchants over 24 h and distinct MCCs over 24 h.
    """
    times, amounts = exact.times, exact.amounts
    start_1m = bisect_right(times, t - MINUTE_MS, 0, end)
    start_10m = bisect_right(times, t - 10 * MINUTE_MS, 0, start_1m)
    start_1h = bisect_right(times, t - HOUR_MS, 0, start_10m)
    start_cut = bisect_right(times, ceil_to_bucket(t - DAY_MS), 0, start_1h)
    start_24h = bisect_right(times, t - DAY_MS, 0, start_cut)  # the cut is >= t - 24 h
    sum_1m = sum(amounts[start_1m:end])
    sum_10m = sum_1m + sum(amounts[start_10m:start_1m])
    sum_1h = sum_10m + sum(amounts[start_1h:start_10m])
    sum_cut = sum_1h + sum(amounts[start_cut:start_1h])
    merchants_24h = set(exact.merchants[start_24h:end])
    distinct = [
        len(merchants_24h) if start_10m == start_24h else len(set(exact.merchants[start_10m:end])),
        len(merchants_24h),
        len(set(exact.mccs[start_24h:end])),
    ]
    return (
        [
            (end - start_1m, sum_1m),
            (end - start_10m, sum_10m),
            (end - start_1h, sum_1h),
            (end - start_24h, sum_cut + sum(amounts[start_24h:start_cut])),
        ],
        (end - start_cut, sum_cut),
        distinct,
    )


@dataclass(slots=True)
class HourBuckets:
    """Hourly (count, amount sum) columns sorted by hour index ``b``: times ``(b h, (b+1) h]``."""

    hours: list[int]
    counts: list[int]
    sums: list[int]

    def add(self, time_ms: int, amount: int) -> None:
        """Count an event of ``time_ms`` and ``amount`` in its bucket."""
        hour = bucket_of(time_ms)
        index = bisect_left(self.hours, hour)
        if index < len(self.hours) and self.hours[index] == hour:
            self.counts[index] += 1
            self.sums[index] += amount
        else:
            self.hours.insert(index, hour)
            self.counts.insert(index, 1)
            self.sums.insert(index, amount)

    def drop_before(self, floor_ms: int) -> None:
        """Drop the buckets that end at or before ``floor_ms``."""
        n = bisect_left(self.hours, bucket_of(floor_ms + 1))
        for column in (self.hours, self.counts, self.sums):
            del column[:n]

    def totals(self, t: int, recent: Totals) -> list[Totals]:
        """(count, sum) of each of :data:`BUCKETED_WINDOWS_MS` at ``t``, given ``recent``:
        the exact (count, sum) over ``(ceil_1h(t - 24 h), t]`` (:func:`scan_exact`)."""
        hours, counts, sums = self.hours, self.counts, self.sums
        end = bisect_left(hours, ceil_to_bucket(t - DAY_MS) // BUCKET_MS)
        if end == 0:  # nothing older than the cut: both windows are the recent part
            return [recent, recent]
        start_7d = bisect_left(hours, ceil_to_bucket(t - 7 * DAY_MS) // BUCKET_MS, 0, end)
        start_30d = bisect_left(hours, ceil_to_bucket(t - BUCKET_SPAN_MS) // BUCKET_MS, 0, start_7d)
        count_7d = recent[0] + sum(counts[start_7d:end])
        sum_7d = recent[1] + sum(sums[start_7d:end])
        return [
            (count_7d, sum_7d),
            (count_7d + sum(counts[start_30d:start_7d]), sum_7d + sum(sums[start_30d:start_7d])),
        ]
