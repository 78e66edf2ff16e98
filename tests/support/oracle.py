"""A brute-force oracle of the card features and of one partition's event time.

It recomputes every feature from the list of transactions that have *arrived* for the card
(in arrival order), with the rules of ``features/card.py`` and ``features/stream.py`` written
out directly: what the state retains (the exact list: applied transactions after the card's
newest event time - 24 h - max_out_of_orderness; the hourly buckets: applied transactions in
the buckets of the last 30 days + max_out_of_orderness), which transactions apply (those after
the card's horizon), which ids are remembered, when a card expires. Sums are exact
(``Decimal``); bucketed windows are the oracle's count over ``(ceil_1h(t - W), t]``, the
documented bound.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction

from features.card import CARD_FEATURE_NAMES, NO_PREVIOUS_S, FeatureParams
from features.geo import haversine_km
from features.stream import StreamParams
from features.transaction import Transaction

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a Thursday, an hour boundary
MIN, HOUR, DAY = 60_000, 3_600_000, 86_400_000
EXACT = {"60s": MIN, "10m": 10 * MIN, "1h": HOUR, "24h": DAY}
BUCKETED = {"7d": 7 * DAY, "30d": 30 * DAY}
PLACES = ((48.8566, 2.3522), (51.5074, -0.1278), (40.7128, -74.0060), (48.86, 2.35))
# (gap to the previous "true" time, how late, card, amount in minor units, merchant,
#  currency exponent, device, place, UTC offset in minutes)
Step = tuple[int, int, int, int, int, int, int | None, int | None, int]


def txn_of(i: int, t: int, step: Step) -> Transaction:
    """Transaction ``t<i>`` at ``t`` as ``step`` describes it."""
    _, _, card, amount, merchant, scale, device, place, offset = step
    lat, lon = (None, None) if place is None else PLACES[place]
    return Transaction(
        transaction_id=f"t{i}",
        card_id=f"card{card}",
        amount_minor=amount,
        amount_scale=scale,
        currency={0: "JPY", 2: "USD", 3: "KWD"}[scale],
        merchant_id=f"m{merchant}",
        merchant_category=f"54{merchant % 3:02d}",
        event_time_ms=t,
        device_id=None if device is None else f"d{device}",
        lat=lat,
        lon=lon,
        utc_offset_min=offset,
    )


def stream_of(steps: list[Step]) -> list[Transaction]:
    """Each step's transaction at its true time (the sum of the gaps) minus its lateness."""
    base, out = T0, []
    for i, step in enumerate(steps):
        base += step[0]
        out.append(txn_of(i, base - step[1], step))
    return out


_APPROXIMATE = {"amount_zscore", "speed_kmh"}  # float math in another order: 1e-9 relative


def check(vector: tuple[float, ...], expected: dict[str, float], where: str) -> None:
    """The feature vector is the oracle's: exactly, but for two float computations."""
    got = dict(zip(CARD_FEATURE_NAMES, vector, strict=True))
    assert set(got) == set(expected)
    for name, value in expected.items():
        if name in _APPROXIMATE:
            assert math.isclose(got[name], value, rel_tol=1e-9, abs_tol=1e-9), (where, name)
        else:
            assert got[name] == value, (where, name, got[name], value)


@dataclass(frozen=True)
class Arrival:
    txn: Transaction
    applied: bool  # changed the card's windows and memory (not behind its horizon)
    mark: int  # the card's newest event time right after it arrived


def amount_of(txn: Transaction) -> Decimal:
    return Decimal(txn.amount_minor).scaleb(-txn.amount_scale)


def ceil_hour(ms: int) -> int:
    return -(-ms // HOUR) * HOUR


def summary(events: list[Transaction]) -> tuple[float, float, float]:
    """(count, sum, average) of the events' amounts."""
    total = sum((amount_of(e) for e in events), Decimal(0))
    average = float(Fraction(total) / len(events)) if events else 0.0
    return float(len(events)), float(total), average


def totals(events: list[Transaction], lo: int, t: int) -> tuple[float, float, float]:
    """(count, sum, average) over ``(lo, t]``."""
    return summary([e for e in events if lo < e.event_time_ms <= t])


def card_features(
    prior: list[Arrival], txn: Transaction, params: FeatureParams
) -> tuple[dict[str, float], Arrival]:
    """The features of ``txn`` after the card's ``prior`` arrivals, and its own arrival."""
    t, ooo = txn.event_time_ms, params.max_out_of_orderness_ms
    prior_newest = max((a.txn.event_time_ms for a in prior), default=t)
    newest = max(prior_newest, t)
    applied = t > newest - params.horizon_ms
    known = [a.txn for a in prior if a.applied]  # in arrival order
    every = [*known, txn] if applied else known
    exact = [e for e in every if e.event_time_ms > newest - params.horizon_ms]
    first_bucket = (newest - ooo - 30 * DAY) // HOUR
    bucketed = [e for e in every if (e.event_time_ms - 1) // HOUR >= first_bucket]
    out = {"amount": float(amount_of(txn))}
    for w, span in EXACT.items():
        out[f"txn_count_{w}"], out[f"amount_sum_{w}"], out[f"amount_avg_{w}"] = totals(
            exact, t - span, t
        )
    cut = ceil_hour(t - DAY)  # the exact list answers after it, the buckets before it
    recent = [e for e in exact if cut < e.event_time_ms <= t]
    inside: list[Transaction] = []
    for w, span in BUCKETED.items():  # the 30-day one last: ``inside`` is used below
        inside = recent + [e for e in bucketed if ceil_hour(t - span) < e.event_time_ms <= cut]
        out[f"txn_count_{w}"], out[f"amount_sum_{w}"], out[f"amount_avg_{w}"] = summary(inside)
    for name, span, attr in (
        ("distinct_merchants_10m", 10 * MIN, "merchant_id"),
        ("distinct_merchants_24h", DAY, "merchant_id"),
        ("distinct_mccs_24h", DAY, "merchant_category"),
    ):
        values = {getattr(e, attr) for e in exact if t - span < e.event_time_ms <= t}
        out[name] = float(len(values))
    retained = [e for e in known if e.event_time_ms > newest - params.horizon_ms]
    dropped = [e for e in known if e.event_time_ms <= newest - params.horizon_ms]
    previous = _previous(retained, dropped, t, located=False)
    out["seconds_since_prev"] = (
        NO_PREVIOUS_S
        if previous is None
        else min((t - previous.event_time_ms) / 1000, NO_PREVIOUS_S)
    )
    sum_30d = sum((amount_of(e) for e in inside), Decimal(0))
    out["amount_ratio_30d"] = float(amount_of(txn) * len(inside) / sum_30d) if sum_30d else 0.0
    out["amount_zscore"] = _zscore(known, txn.amount, params.half_life_ms)
    since = max(t, prior_newest - ooo) - 30 * DAY
    for name, attr in (
        ("new_device", "device_id"),
        ("new_merchant", "merchant_id"),
        ("new_mcc", "merchant_category"),
    ):
        value = getattr(txn, attr)
        seen = any(getattr(e, attr) == value and e.event_time_ms > since for e in known)
        out[name] = float(value is not None and not seen)
    out["speed_kmh"] = _speed(_previous(retained, dropped, t, located=True), txn)
    local = dt.datetime.fromtimestamp(
        t / 1000, dt.timezone(dt.timedelta(minutes=txn.utc_offset_min))
    )
    out |= {
        "local_hour": float(local.hour),
        "local_weekend": float(local.weekday() >= 5),
        "local_night": float(local.hour < 6),
    }
    return out, Arrival(txn, applied, newest)


def _previous(
    retained: list[Transaction], dropped: list[Transaction], t: int, located: bool
) -> Transaction | None:
    """The latest (by time, then arrival) at or before t among the retained; else the
    latest dropped one if it is at or before t."""

    def usable(e: Transaction) -> bool:
        return not located or e.lat is not None

    best = None
    for e in retained:
        if (
            usable(e)
            and e.event_time_ms <= t
            and (best is None or e.event_time_ms >= best.event_time_ms)
        ):
            best = e
    if best is not None:
        return best
    for e in dropped:
        if usable(e) and (best is None or e.event_time_ms >= best.event_time_ms):
            best = e
    return best if best is not None and best.event_time_ms <= t else None


def _speed(previous: Transaction | None, txn: Transaction) -> float:
    if previous is None or txn.lat is None or txn.lon is None:
        return 0.0
    elapsed_h = abs(txn.event_time_ms - previous.event_time_ms) / HOUR
    if elapsed_h == 0:
        return 0.0
    assert previous.lat is not None
    assert previous.lon is not None
    return haversine_km(previous.lat, previous.lon, txn.lat, txn.lon) / elapsed_h


def _zscore(known: list[Transaction], x: float, half_life_ms: int) -> float:
    weight = mean = m2 = 0.0
    last = None
    for e in known:  # arrival order
        if last is None or e.event_time_ms > last:
            if last is not None:
                decay = math.pow(2.0, -(e.event_time_ms - last) / half_life_ms)
                weight, m2 = weight * decay, m2 * decay
            last = e.event_time_ms
        y = e.amount_minor / 10.0**e.amount_scale
        weight += 1.0
        new_mean = mean + (y - mean) / weight
        m2 += (y - mean) * (y - new_mean)
        mean = new_mean
    return 0.0 if weight == 0.0 else (x - mean) / math.sqrt(m2 / weight + 1.0)


@dataclass(frozen=True)
class Expected:
    """What the oracle expects for one valid transaction."""

    features: dict[str, float] | None  # None: a duplicate delivery
    late: bool


@dataclass
class PartitionOracle:
    """One partition's transactions in offset order, the rules of features/stream.py."""

    params: StreamParams
    stream_time: int | None = None
    late: int = 0
    duplicates: int = 0
    cards: dict[str, list[Arrival]] = field(default_factory=dict)  # since each started afresh
    stored_newest: dict[str, int] = field(default_factory=dict)  # of the state last stored

    def step(self, txn: Transaction) -> Expected:
        fp, t = self.params.features, txn.event_time_ms
        self.stream_time = t if self.stream_time is None else max(self.stream_time, t)
        watermark = self.stream_time - fp.max_out_of_orderness_ms
        expired_through = watermark - self.params.card_state_ttl_ms
        prior = self.cards.get(txn.card_id, [])
        if prior and max(a.txn.event_time_ms for a in prior) <= expired_through:
            prior = []  # expired: the card starts afresh
        if any(a.txn.transaction_id == txn.transaction_id for a in _remembered(prior, fp)):
            self.duplicates += 1
            return Expected(None, late=False)
        features, arrival = card_features(prior, txn, fp)
        if prior or t > expired_through:  # else: its state would be expired at once
            self.cards[txn.card_id] = [*prior, arrival]
            self.stored_newest[txn.card_id] = arrival.mark
        late = t < watermark - self.params.allowed_lateness_ms
        self.late += late
        return Expected(features, late)

    def stored_cards(self) -> set[str]:
        """The cards whose state the store still holds: not yet removed by an expiry sweep."""
        if self.stream_time is None:
            return set()
        watermark = self.stream_time - self.params.features.max_out_of_orderness_ms
        before = (watermark - self.params.card_state_ttl_ms) // HOUR
        return {card for card, newest in self.stored_newest.items() if newest // HOUR >= before}


def _remembered(prior: list[Arrival], params: FeatureParams) -> list[Arrival]:
    if not prior:
        return []
    newest = max(a.txn.event_time_ms for a in prior)
    return [a for a in prior if a.mark > newest - params.horizon_ms][-params.max_events :]
