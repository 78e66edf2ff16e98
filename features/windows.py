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

Both parts are msgspec structs stored inside the card's state and updated *in place* (the
hot path allocates no new columns per event); their columns are plain lists so that they
encode as msgpack arrays.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Final

import msgspec

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
# one exact entry: (event_time_ms, amount, merchant_id, merchant_category, lat, lon)
Entry = tuple[int, int, str, str, float | None, float | None]


def ceil_to_bucket(time_ms: int) -> int:
    """The first bucket boundary (a multiple of 1 h since the epoch) at or after ``time_ms``."""
    return -(-time_ms // BUCKET_MS) * BUCKET_MS


def bucket_of(time_ms: int) -> int:
    """The hour index ``b`` whose bucket ``(b h, (b + 1) h]`` holds ``time_ms``."""
    return (time_ms - 1) // BUCKET_MS


class ExactList(msgspec.Struct, array_like=True, gc=False):
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
        last = self.times[n - 1]
        if self.dropped_ms is None or last > self.dropped_ms:
            self.dropped_ms = last
        lats, lons = self.lats, self.lons
        for i in range(n - 1, -1, -1):
            lat, lon = lats[i], lons[i]
            if lat is not None and lon is not None:
                self.note_dropped_location((self.times[i], lat, lon))
                break
        del self.times[:n], self.amounts[:n], self.merchants[:n], self.mccs[:n]
        del lats[:n], lons[:n]

    def note_dropped_location(self, located: Located) -> None:
        if self.dropped_loc is None or located[0] >= self.dropped_loc[0]:
            self.dropped_loc = located

    def insert(self, index: int, entry: Entry, cap: int) -> int:
        """Add an entry at ``index`` (where its time keeps the columns sorted), then drop the
        oldest over ``cap``; return the end of the entries up to and including the new one."""
        t, amount, merchant, mcc, lat, lon = entry
        if index == len(self.times):  # the common case: the newest so far
            self.times.append(t)
            self.amounts.append(amount)
            self.merchants.append(merchant)
            self.mccs.append(mcc)
            self.lats.append(lat)
            self.lons.append(lon)
        else:
            self.times.insert(index, t)
            self.amounts.insert(index, amount)
            self.merchants.insert(index, merchant)
            self.mccs.insert(index, mcc)
            self.lats.insert(index, lat)
            self.lons.insert(index, lon)
        over = len(self.times) - cap
        if over <= 0:
            return index + 1
        self.drop_oldest(over)
        return max(0, index + 1 - over)

    def previous(self, end: int, t: int) -> tuple[int | None, Located | None]:
        """The latest time and latest located event among entries before ``end`` (all at or
        before ``t``) and the dropped ones, if at or before ``t``."""
        lats, lons = self.lats, self.lons
        prev: int | None
        if end > 0:
            prev = self.times[end - 1]
            lat, lon = lats[end - 1], lons[end - 1]
            if lat is not None and lon is not None:  # the common case: one look is enough
                return prev, (prev, lat, lon)
        else:
            prev = self.dropped_ms
        located = self.dropped_loc
        for i in range(end - 1, -1, -1):
            lat, lon = lats[i], lons[i]
            if lat is not None and lon is not None:
                located = (self.times[i], lat, lon)
                break
        prev = prev if prev is not None and prev <= t else None
        return prev, located if located is not None and located[0] <= t else None

    def scan(self, end: int, t: int) -> tuple[int, ...]:
        """Exact totals over the entries ``[:end]`` (all at or before ``t``), flat:

        count and sum of each of :data:`EXACT_WINDOWS_MS` (8 numbers), then count and sum over
        ``(ceil_1h(t - 24 h), t]`` for the bucketed windows, then the distinct merchants over
        10 min, distinct merchants over 24 h and distinct MCCs over 24 h.
        """
        times, amounts, merchants = self.times, self.amounts, self.merchants
        # From the shortest window to the longest, each searched only before the shorter one's
        # start; an empty difference (the common case) costs no search and no sum.
        start_1m = bisect_right(times, t - MINUTE_MS, 0, end)
        sum_1m = sum(amounts[start_1m:end])
        start_10m = bisect_right(times, t - 10 * MINUTE_MS, 0, start_1m) if start_1m else 0
        sum_10m = sum_1m + sum(amounts[start_10m:start_1m]) if start_10m < start_1m else sum_1m
        start_1h = bisect_right(times, t - HOUR_MS, 0, start_10m) if start_10m else 0
        sum_1h = sum_10m + sum(amounts[start_1h:start_10m]) if start_1h < start_10m else sum_10m
        cut = -((DAY_MS - t) // BUCKET_MS) * BUCKET_MS  # ceil_1h(t - 24 h) >= t - 24 h
        start_cut = bisect_right(times, cut, 0, start_1h) if start_1h else 0
        sum_cut = sum_1h + sum(amounts[start_cut:start_1h]) if start_cut < start_1h else sum_1h
        start_24h = bisect_right(times, t - DAY_MS, 0, start_cut) if start_cut else 0
        sum_24h = sum_cut + sum(amounts[start_24h:start_cut]) if start_24h < start_cut else sum_cut
        seen = set(merchants[start_10m:end])
        merchants_10m = len(seen)
        if start_24h < start_10m:
            seen.update(merchants[start_24h:start_10m])
        merchants_24h = len(seen)
        return (
            end - start_1m,
            sum_1m,
            end - start_10m,
            sum_10m,
            end - start_1h,
            sum_1h,
            end - start_24h,
            sum_24h,
            end - start_cut,
            sum_cut,
            merchants_10m,
            merchants_24h,
            len(set(self.mccs[start_24h:end])),
        )


class HourBuckets(msgspec.Struct, array_like=True, gc=False):
    """Hourly (count, amount sum) columns sorted by hour index ``b``: times ``(b h, (b+1) h]``."""

    hours: list[int]
    counts: list[int]
    sums: list[int]

    def add(self, time_ms: int, amount: int) -> None:
        """Count an event of ``time_ms`` and ``amount`` in its bucket."""
        hour = (time_ms - 1) // BUCKET_MS
        hours = self.hours
        if hours and hours[-1] == hour:  # the common case: the newest bucket
            self.counts[-1] += 1
            self.sums[-1] += amount
            return
        index = bisect_left(hours, hour)
        if index < len(hours) and hours[index] == hour:
            self.counts[index] += 1
            self.sums[index] += amount
        else:
            hours.insert(index, hour)
            self.counts.insert(index, 1)
            self.sums.insert(index, amount)

    def drop_before(self, floor_ms: int) -> None:
        """Drop the buckets that end at or before ``floor_ms``."""
        first = bucket_of(floor_ms + 1)
        hours = self.hours
        if hours and hours[0] < first:
            n = bisect_left(hours, first)
            del hours[:n], self.counts[:n], self.sums[:n]

    def totals(self, t: int, recent_count: int, recent_sum: int) -> tuple[int, int, int, int]:
        """(count, sum) of the 7-day then the 30-day window at ``t`` (:data:`BUCKETED_WINDOWS_MS`),
        given the exact (count, sum) over ``(ceil_1h(t - 24 h), t]`` (:meth:`ExactList.scan`)."""
        hours = self.hours
        # the hour index of ceil_1h(t - W) is -((W - t) // 1 h)
        if not hours or hours[0] >= -((DAY_MS - t) // BUCKET_MS):
            return recent_count, recent_sum, recent_count, recent_sum  # all recent: exact part
        end = bisect_left(hours, -((DAY_MS - t) // BUCKET_MS))
        counts, sums = self.counts, self.sums
        start_7d = bisect_left(hours, -((7 * DAY_MS - t) // BUCKET_MS), 0, end)
        start_30d = bisect_left(hours, -((BUCKET_SPAN_MS - t) // BUCKET_MS), 0, start_7d)
        count_7d = recent_count + sum(counts[start_7d:end])
        sum_7d = recent_sum + sum(sums[start_7d:end])
        return (
            count_7d,
            sum_7d,
            count_7d + sum(counts[start_30d:start_7d]),
            sum_7d + sum(sums[start_30d:start_7d]),
        )
