"""Deterministic synthetic card traffic: genuine spending, labelled fraud scenarios, late labels.

:func:`generate` yields ``count`` records in the *wire* format (what a producer puts on the input
topic), in arrival order, each with its card-token key, its fraud scenario and its event time;
:func:`simulate` yields the same kind of records for a span of ``days`` at a realistic number of
transactions per card and day. :class:`Labeller` turns transactions into the label records that
arrive later (chargebacks, analyst verdicts). The same arguments always give byte-identical
output: every random draw comes from ``random.Random`` instances seeded from ``seed``; nothing
reads the clock or global state.

Genuine traffic: each card has a home city (which fixes its currency, time zone and the
merchants it shops at), a spending level and spread (a lognormal amount around each category's
median), favourite merchants and so categories (Zipf-weighted), one or two devices, active
hours and an activity level. Event times advance by exponential gaps whose rate follows daily
and weekly seasonality: each city's local hour of day (quiet at night, peaks at lunch and in
the evening) and day of the week (busier Friday and Saturday, quieter Sunday), weighted by
the activity of the cards that live there (:func:`seasonality`; its weekly mean is 1, so
``events_per_second`` is the long-run rate). The card that pays is drawn the same way: a
city by its current weight, then a card of that city by activity, mostly one within its
active hours. Now and then a card makes a follow-up purchase a little later.

Fraud scenarios (the ``scenario`` label; about ``fraud_rate`` of all records in the long run):

- ``card_testing``: 5-20 tiny online amounts (0.50-5.00) at as many merchants within a minute,
  about half of them at a small set of web shops with weak checks that every card tester
  keeps coming back to (so those shops build up a history of fraud labels), the rest at
  one-off shops;
- ``account_takeover``: a new device far from home, 3-6 high amounts within minutes;
- ``gift_card_cashout``: 4-8 round hundreds at one or two gift-card sellers within two minutes;
- ``compromised_merchant``: a merchant's terminal is skimmed for 1-7 days; 3-8 of its customers
  shop there (genuine purchases) and each of them later (2-30 days) sees 1-4 card-not-present
  purchases of a few hundred at online merchants, often from the fraud ring's one device;
- ``bust_out``: the card holder runs the card up before defaulting: for 2-5 days, 3-8
  purchases a day at several times the card's normal amounts, at home, on the usual device.

The last two unfold over days and weeks of event time: a short run (the load generator's
default covers minutes) contains few of their records or none.

Labels (:class:`Labeller`): 95 % of fraud is reported, as a chargeback, with a lognormal delay
(median 12 days, bust-out 35 days: it surfaces at the default), between 1 and 90 days; 2 % of
genuine transactions get a "genuine" verdict (a customer confirmed it after a review) within
1 hour to 5 days. Every other transaction is never labelled: training reads no label as
genuine, so fraud not reported by the cut-off is a genuine row; that is the label noise real
chargeback data has, and why the out-of-time evaluation leaves a gap before its test period.

:func:`malformed_records` makes invalid inputs, each with the reason code the validator gives.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from heapq import heappop, heappush
from itertools import accumulate
from random import Random

import msgspec

from features.validation import Reason
from models.label import FRAUD, GENUINE, LabelRecord

DEFAULT_START_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DEFAULT_CARDS = 50_000
SCENARIOS: tuple[str, ...] = (
    "card_testing",
    "account_takeover",
    "gift_card_cashout",
    "compromised_merchant",
    "bust_out",
)
BURST_SCENARIOS = SCENARIOS[:3]  # the ones that play out within minutes
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class SyntheticTransaction:
    record: dict[str, object]  # the wire format, ready for encode_record
    key: bytes  # the card token, utf-8: the input topic's partitioning key
    scenario: str | None  # None for genuine traffic, else one of SCENARIOS
    event_time_ms: int


def encode_record(record: dict[str, object]) -> bytes:
    """Compact JSON, keys in insertion order: what the load generator produces."""
    return msgspec.json.encode(record)


# --- Reference data -------------------------------------------------------------------------

_FX: dict[str, tuple[int, float]] = {  # currency -> (minor-unit exponent, units per USD)
    "USD": (2, 1.0),
    "EUR": (2, 0.92),
    "GBP": (2, 0.79),
    "JPY": (0, 155.0),
}


@dataclass(frozen=True, slots=True)
class _City:
    name: str
    lat: float
    lon: float
    utc_offset_min: int
    currency: str
    weight: float


_HOME_CITIES = (
    _City("new-york", 40.7128, -74.0060, -300, "USD", 18),
    _City("chicago", 41.8781, -87.6298, -360, "USD", 12),
    _City("los-angeles", 34.0522, -118.2437, -480, "USD", 14),
    _City("houston", 29.7604, -95.3698, -360, "USD", 10),
    _City("miami", 25.7617, -80.1918, -300, "USD", 8),
    _City("seattle", 47.6062, -122.3321, -480, "USD", 8),
    _City("london", 51.5074, -0.1278, 0, "GBP", 7),
    _City("manchester", 53.4808, -2.2426, 0, "GBP", 2),
    _City("paris", 48.8566, 2.3522, 60, "EUR", 5),
    _City("berlin", 52.5200, 13.4050, 60, "EUR", 4),
    _City("madrid", 40.4168, -3.7038, 60, "EUR", 3),
    _City("tokyo", 35.6762, 139.6503, 540, "JPY", 2),
)
_HOME_CUM = tuple(accumulate(city.weight for city in _HOME_CITIES))
_FAR_CITIES = (  # where taken-over accounts get used: far from every home city
    _City("lagos", 6.5244, 3.3792, 60, "USD", 1),
    _City("jakarta", -6.2088, 106.8456, 420, "USD", 1),
    _City("manila", 14.5995, 120.9842, 480, "USD", 1),
    _City("sao-paulo", -23.5505, -46.6333, -180, "USD", 1),
    _City("bucharest", 44.4268, 26.1025, 120, "EUR", 1),
    _City("kyiv", 50.4501, 30.5234, 120, "EUR", 1),
)


@dataclass(frozen=True, slots=True)
class _Category:
    mcc: str  # ISO 18245 merchant category code
    median_usd: float
    online: bool
    weight: float  # popularity in genuine spending


_CATEGORIES = (
    _Category("5411", 45.0, False, 20),  # grocery stores, supermarkets
    _Category("5812", 35.0, False, 12),  # restaurants
    _Category("5814", 11.0, False, 12),  # fast food
    _Category("5541", 42.0, False, 10),  # fuel
    _Category("5999", 28.0, False, 6),  # miscellaneous retail
    _Category("4111", 3.5, False, 8),  # commuter transport
    _Category("4121", 19.0, False, 5),  # taxis, ride sharing
    _Category("5912", 22.0, False, 6),  # drug stores
    _Category("5311", 65.0, False, 5),  # department stores
    _Category("5691", 70.0, False, 4),  # clothing
    _Category("5732", 180.0, False, 2),  # electronics
    _Category("5944", 350.0, False, 0.5),  # jewelry
    _Category("5815", 9.0, True, 6),  # digital goods: media
    _Category("5817", 6.0, True, 3),  # digital goods: apps
    _Category("7995", 80.0, True, 0.6),  # gambling
    _Category("4829", 250.0, True, 0.4),  # wire transfer, money orders
)
_BY_MCC = {category.mcc: category for category in _CATEGORIES}
_IN_STORE = tuple(category for category in _CATEGORIES if not category.online)
_ONLINE = tuple(category for category in _CATEGORIES if category.online)
_TESTING_MCCS = ("5999", "5815", "5817", "5311")
_TAKEOVER_MCCS = ("5732", "5944", "4829", "5311", "5691")
_CASHOUT_MCCS = ("5311", "5999")
_GIFT_CARD_UNITS = (100, 150, 200, 250, 300, 500)
_CITY_POOL = 401  # merchants per city; prime, so every stride walks distinct merchants
_ONLINE_POOL = 307
_TESTING_SITES = 29  # web shops with weak checks that card testers share (at most 20 a burst)
TESTING_SITE_SHARE = 0.5  # of card-testing purchases, at one of those (the rest: one-off shops)
_ZIPF_CUM = tuple(tuple(accumulate(1.0 / rank for rank in range(1, n + 1))) for n in range(16))
_FOLLOW_UP_P = 0.12  # a genuine purchase is followed by another one on the same card
# Per scenario: its weight among fraud episodes, and the mean fraud records of an episode.
_EPISODES = {
    "card_testing": (0.2, 12.5),
    "account_takeover": (0.3, 4.5),
    "gift_card_cashout": (0.15, 6.0),
    "compromised_merchant": (0.15, 5.5 * 2.5),
    "bust_out": (0.2, 3.5 * 5.5),
}
# Seasonality in a city's local time: relative volume by hour of day, and by day of the week
# (Monday first). Both average 1; their product is the local factor.
_HOURLY_VOLUME = (0.15, 0.1, 0.08, 0.07, 0.1, 0.25, 0.55, 0.9, 1.15, 1.2, 1.3, 1.45,
                  1.7, 1.55, 1.35, 1.3, 1.4, 1.6, 1.75, 1.65, 1.35, 1.0, 0.65, 0.35)  # fmt: skip
_HOURLY = tuple(volume * 24 / sum(_HOURLY_VOLUME) for volume in _HOURLY_VOLUME)
_WEEKDAY = (0.95, 0.95, 1.0, 1.0, 1.12, 1.15, 0.83)
_HOURS_PER_WEEK = 168
_EPOCH_WEEKDAY = 3  # 1970-01-01 was a Thursday
_COMPROMISE_MCCS = ("5732", "5691", "5944", "4829", "5815")  # what stolen card data buys
_BUST_OUT_MCCS = ("5732", "5944", "5311", "5691")
_LETTER_TABLE = bytes(ord("a") + byte % 26 for byte in range(256))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_MS, _RFC3339_Z, _RFC3339_OFFSET = 0, 1, 2  # the event_time encodings


@dataclass(frozen=True, slots=True)
class _Merchant:
    merchant_id: str
    mcc: str
    median_usd: float
    lat: float | None
    lon: float | None


def _local_slot(event_time_ms: int, utc_offset_min: int) -> tuple[int, int]:
    """(local hour of day, local weekday with Monday = 0) of an instant."""
    hours = (event_time_ms + utc_offset_min * 60_000) // 3_600_000
    return hours % 24, (hours // 24 + _EPOCH_WEEKDAY) % 7


def _local_factor(city: _City, event_time_ms: int) -> float:
    hour, weekday = _local_slot(event_time_ms, city.utc_offset_min)
    return _HOURLY[hour] * _WEEKDAY[weekday]


def _week_slot(event_time_ms: int) -> int:
    """The UTC hour of the week (every city's offset is whole hours, so it fixes local time)."""
    return (event_time_ms // 3_600_000 + _EPOCH_WEEKDAY * 24) % _HOURS_PER_WEEK


def seasonality(event_time_ms: int, city_weights: tuple[float, ...] | None = None) -> float:
    """Traffic volume at ``event_time_ms`` relative to the weekly mean (which is 1).

    ``city_weights`` (in the order of the home cities) default to the cities' shares of cards.
    """
    weights = city_weights or tuple(city.weight for city in _HOME_CITIES)
    return _seasonal_table(weights)[_week_slot(event_time_ms)][0]


def _seasonal_table(weights: tuple[float, ...]) -> list[tuple[float, tuple[float, ...]]]:
    """Per UTC hour of the week: (volume factor, cumulative city weights of that hour)."""
    total = sum(weights)
    rows = []
    for slot in range(_HOURS_PER_WEEK):
        t = (slot - _EPOCH_WEEKDAY * 24) * 3_600_000
        parts = [w * _local_factor(city, t) for w, city in zip(weights, _HOME_CITIES, strict=True)]
        rows.append((sum(parts) / total, tuple(accumulate(parts))))
    mean = sum(factor for factor, _ in rows) / _HOURS_PER_WEEK
    return [(factor / mean, cum) for factor, cum in rows]


@dataclass(frozen=True, slots=True)
class _Card:
    token: str
    home: int  # index of its city in _HOME_CITIES
    city: _City
    spend: float  # multiplier of category medians
    sigma: float  # lognormal spread of amounts
    merchants: tuple[_Merchant, ...]  # favourites, most used first (Zipf weights)
    devices: tuple[str, ...]
    active_hours: tuple[int, int]  # local [from, to)

    def is_active(self, event_time_ms: int) -> bool:
        hour = (event_time_ms + self.city.utc_offset_min * 60_000) // 3_600_000 % 24
        return self.active_hours[0] <= hour < self.active_hours[1]


@dataclass(slots=True)  # not frozen: frozen __init__ is slow, and drafts are many
class _Draft:
    """One transaction before it gets its id and arrival position."""

    event_time_ms: int
    card: _Card
    merchant_id: str
    mcc: str
    currency: str
    amount_minor: int
    device_id: str | None
    lat: float | None
    lon: float | None
    time_encoding: int
    scenario: str | None = None


def _letters(rng: Random, n: int) -> str:
    """``n`` random lowercase letters: random bytes mapped onto a-z (near uniform, fast)."""
    return rng.randbytes(n).translate(_LETTER_TABLE).decode("ascii")


def _weighted_index(rng: Random, cum_weights: tuple[float, ...]) -> int:
    """An index drawn with the given cumulative weights (``random.choices`` without overhead)."""
    return min(bisect_right(cum_weights, rng.random() * cum_weights[-1]), len(cum_weights) - 1)


def _near(rng: Random, lat: float, lon: float, spread: float) -> tuple[float, float]:
    return round(lat + rng.gauss(0.0, spread), 5), round(lon + rng.gauss(0.0, spread), 5)


def _minor(amount: float, currency: str) -> int:
    """``amount`` of the currency's major unit in minor units, at least one."""
    scale: int = 10 ** _FX[currency][0]
    return max(1, round(amount * scale))


def _usd_minor(amount_usd: float, currency: str) -> int:
    return _minor(amount_usd * _FX[currency][1], currency)


# --- Wire format ----------------------------------------------------------------------------


def _format_amount(minor: int, currency: str) -> str:
    exponent = _FX[currency][0]
    if exponent == 0:
        return str(minor)
    units, fraction = divmod(minor, 10**exponent)
    return f"{units}.{fraction:0{exponent}d}"


def _format_event_time(event_time_ms: int, encoding: int, utc_offset_min: int) -> object:
    if encoding == _EPOCH_MS:
        return event_time_ms
    moment = _EPOCH + timedelta(milliseconds=event_time_ms)
    if encoding == _RFC3339_Z:
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    zone = timezone(timedelta(minutes=utc_offset_min))
    return moment.astimezone(zone).isoformat(timespec="milliseconds")


def _wire(draft: _Draft, transaction_id: str) -> dict[str, object]:
    record: dict[str, object] = {
        "transaction_id": transaction_id,
        "card_id": draft.card.token,
        "amount": _format_amount(draft.amount_minor, draft.currency),
        "currency": draft.currency,
        "merchant_id": draft.merchant_id,
        "merchant_category": draft.mcc,
    }
    if draft.device_id is not None:
        record["device_id"] = draft.device_id
    if draft.lat is not None and draft.lon is not None:
        record["lat"], record["lon"] = draft.lat, draft.lon
    record["event_time"] = _format_event_time(
        draft.event_time_ms, draft.time_encoding, draft.card.city.utc_offset_min
    )
    return record


# --- The generator --------------------------------------------------------------------------


class _Traffic:
    """Event-time-ordered drafts: genuine traffic with fraud episodes planned into it."""

    def __init__(
        self,
        *,
        cards: int,
        seed: int,
        start_ms: int,
        events_per_second: float,
        fraud_rate: float,
        scenarios: tuple[str, ...],
    ) -> None:
        if cards < 1 or events_per_second <= 0:
            raise ValueError(f"need cards >= 1 and a positive event rate, not {cards} cards")
        if not 0.0 <= fraud_rate < 1.0:
            raise ValueError(f"fraud_rate must be in [0, 1), not {fraud_rate}")
        if not scenarios or not set(scenarios) <= set(SCENARIOS):
            raise ValueError(f"scenarios must be some of {SCENARIOS}, not {scenarios}")
        self._seed = seed
        rng = self._rng = Random(f"fraudscore.synthetic/{seed}")
        self._site_rng = Random(f"fraudscore.synthetic/{seed}/testing sites")
        self._start_ms = start_ms
        self._scenarios = scenarios
        self._scenario_weights = [_EPISODES[s][0] for s in scenarios]
        mean_episode = sum(w * n for w, n in (_EPISODES[s] for s in scenarios)) / sum(
            self._scenario_weights
        )
        genuine_per_event = 1.0 / (1.0 - _FOLLOW_UP_P)
        self._episode_p = fraud_rate / (1.0 - fraud_rate) * genuine_per_event / mean_episode
        activity = [rng.lognormvariate(0.0, 1.0) for _ in range(cards)]
        self._city_of = [_weighted_index(rng, _HOME_CUM) for _ in range(cards)]
        self._residents: list[list[int]] = [[] for _ in _HOME_CITIES]  # card indexes per city
        for index, city in enumerate(self._city_of):
            self._residents[city].append(index)
        self._resident_activity = [
            tuple(accumulate(activity[i] for i in members)) for members in self._residents
        ]
        self._season = _seasonal_table(tuple(sum(activity[i] for i in m) for m in self._residents))
        self._peak = max(factor for factor, _ in self._season)
        self._peak_rate_per_ms = events_per_second / 1000.0 * self._peak
        self._cards: dict[int, _Card] = {}
        self._pools: dict[str, tuple[_Merchant, ...]] = {}
        self._pending: list[tuple[int, int, _Draft]] = []
        self._planned = 0

    def drafts(self, count: int | None, end_ms: int | None = None) -> Iterator[_Draft]:
        """Drafts in non-decreasing event time: ``count`` of them, or all before ``end_ms``."""
        next_ms, produced = float(self._start_ms), 0
        while count is None or produced < count:
            if self._pending and self._pending[0][0] <= next_ms:
                yield heappop(self._pending)[2]
            elif end_ms is not None and next_ms >= end_ms:
                return
            else:
                yield self._step(int(next_ms))
                next_ms = self._next_time(next_ms)
            produced += 1

    def _next_time(self, t: float) -> float:
        """The next event time: a Poisson process thinned to the seasonal rate."""
        rng = self._rng
        while True:
            t += rng.expovariate(self._peak_rate_per_ms)
            if rng.random() * self._peak < self._season[_week_slot(int(t))][0]:
                return t

    def _step(self, t: int) -> _Draft:
        rng = self._rng
        draft = self._genuine(t, self._pick_card(t))
        if rng.random() < _FOLLOW_UP_P:
            later = rng.uniform(5_000, 60_000) if rng.random() < 0.15 else rng.uniform(6e4, 1.2e6)
            self._plan([self._genuine(t + int(later), draft.card)])
        if rng.random() < self._episode_p:
            self._plan(self._episode(t))
        return draft

    def _plan(self, drafts: list[_Draft]) -> None:
        for draft in drafts:
            self._planned += 1
            heappush(self._pending, (draft.event_time_ms, self._planned, draft))

    def _pick_card(self, t: int) -> _Card:
        """A card of a city weighted by its local season, by activity, mostly an active one."""
        rng = self._rng
        city = _weighted_index(rng, self._season[_week_slot(t)][1])
        residents, activity = self._residents[city], self._resident_activity[city]
        card = None
        for _ in range(3):
            card = self._card(residents[_weighted_index(rng, activity)])
            if card.is_active(t) or rng.random() < 0.25:
                break
        assert card is not None
        return card

    # --- profiles ---

    def _card(self, index: int) -> _Card:
        card = self._cards.get(index)
        if card is None:
            card = self._cards[index] = self._make_card(self._city_of[index])
        return card

    def _make_card(self, home: int) -> _Card:
        """A new card profile, drawn when the card first transacts."""
        rng = self._rng
        random = rng.random
        city = _HOME_CITIES[home]
        return _Card(
            token="tok_" + _letters(rng, 20),
            home=home,
            city=city,
            spend=rng.lognormvariate(0.0, 0.45),
            sigma=0.35 + 0.45 * random(),
            merchants=self._favourites(city, 5 + int(random() * 8))
            + self._favourites(None, 1 + int(random() * 2)),
            devices=tuple("dev_" + _letters(rng, 16) for _ in range(1 if random() < 0.6 else 2)),
            active_hours=(5 + int(random() * 6), 19 + int(random() * 6)),
        )

    def _favourites(self, city: _City | None, n: int) -> tuple[_Merchant, ...]:
        """``n`` distinct merchants of the pool: a random start and stride through it."""
        pool = self._pool(city)
        start, stride = self._rng.randrange(len(pool)), self._rng.randrange(1, len(pool))
        return tuple(pool[(start + k * stride) % len(pool)] for k in range(n))

    def _pool(self, city: _City | None) -> tuple[_Merchant, ...]:
        """The merchants of a city (``None``: online merchants), shared by all its cards."""
        name = "online" if city is None else city.name
        pool = self._pools.get(name)
        if pool is None:
            rng = Random(f"fraudscore.synthetic/{self._seed}/merchants/{name}")
            categories = _ONLINE if city is None else _IN_STORE
            weights = [category.weight for category in categories]
            size = _ONLINE_POOL if city is None else _CITY_POOL
            pool = self._pools[name] = tuple(
                self._merchant(rng, category, city)
                for category in rng.choices(categories, weights=weights, k=size)
            )
        return pool

    @staticmethod
    def _merchant(rng: Random, category: _Category, city: _City | None) -> _Merchant:
        lat, lon = (None, None) if city is None else _near(rng, city.lat, city.lon, 0.08)
        merchant_id = "m_" + _letters(rng, 12)
        return _Merchant(merchant_id, category.mcc, category.median_usd, lat, lon)

    # --- genuine spending ---

    def _genuine(self, t: int, card: _Card) -> _Draft:
        rng = self._rng
        where = rng.random()
        if where < 0.9:
            merchant = card.merchants[_weighted_index(rng, _ZIPF_CUM[len(card.merchants)])]
        else:
            merchant = rng.choice(self._pool(card.city if where < 0.98 else None))
        return self._purchase(t, card, merchant)

    def _purchase(
        self,
        t: int,
        card: _Card,
        merchant: _Merchant,
        *,
        boost: float = 1.0,
        scenario: str | None = None,
    ) -> _Draft:
        """The card holder's own purchase at ``merchant``: ``boost`` times their usual level."""
        rng = self._rng
        currency = card.city.currency if rng.random() < 0.97 else rng.choice(("USD", "EUR", "GBP"))
        amount = merchant.median_usd * card.spend * boost * rng.lognormvariate(0.0, card.sigma)
        device = rng.random()
        located = merchant.lat is not None and rng.random() < 0.95
        return _Draft(
            event_time_ms=t,
            card=card,
            merchant_id=merchant.merchant_id,
            mcc=merchant.mcc,
            currency=currency,
            amount_minor=_usd_minor(amount, currency),
            device_id=card.devices[0]
            if device < 0.7
            else None
            if device > 0.9
            else card.devices[-1],
            lat=merchant.lat if located else None,
            lon=merchant.lon if located else None,
            time_encoding=self._time_encoding(),
            scenario=scenario,
        )

    def _time_encoding(self) -> int:
        r = self._rng.random()
        return _EPOCH_MS if r < 0.4 else _RFC3339_Z if r < 0.8 else _RFC3339_OFFSET

    # --- fraud ---

    def _episode(self, t: int) -> list[_Draft]:
        rng = self._rng
        victim = self._card(rng.randrange(len(self._city_of)))
        scenario = rng.choices(self._scenarios, weights=self._scenario_weights)[0]
        plans: dict[str, Callable[[int, _Card], list[_Draft]]] = {
            "card_testing": self._card_testing,
            "account_takeover": self._account_takeover,
            "gift_card_cashout": self._gift_card_cashout,
            "compromised_merchant": self._compromised_merchant,
            "bust_out": self._bust_out,
        }
        return plans[scenario](t, victim)

    def _offsets(self, n: int, low_ms: float, high_ms: float) -> list[int]:
        """``n`` sorted offsets from 0 within a span drawn from [low_ms, high_ms]."""
        span = self._rng.uniform(low_ms, high_ms)
        return [0, *sorted(int(self._rng.uniform(0, span)) for _ in range(n - 1))]

    def _card_testing(self, t: int, card: _Card) -> list[_Draft]:
        rng = self._rng
        device = None if rng.random() < 0.5 else "dev_" + _letters(rng, 16)
        currency = card.city.currency
        offsets = self._offsets(rng.randint(5, 20), 15_000, 58_000)
        drafts = []
        for offset, site in zip(offsets, self._known_sites(len(offsets)), strict=True):
            merchant_id, mcc = "m_" + _letters(rng, 12), rng.choice(_TESTING_MCCS)
            if site is not None:
                merchant_id, mcc = site.merchant_id, site.mcc
            drafts.append(
                _Draft(
                    event_time_ms=t + offset,
                    card=card,
                    merchant_id=merchant_id,
                    mcc=mcc,
                    currency=currency,
                    amount_minor=_minor(rng.uniform(0.5, 5.0), currency),
                    device_id=device,
                    lat=None,
                    lon=None,
                    time_encoding=self._time_encoding(),
                    scenario="card_testing",
                )
            )
        return drafts

    def _known_sites(self, n: int) -> list[_Merchant | None]:
        """For each of a burst's ``n`` purchases, one of the web shops card testers keep coming
        back to (:data:`TESTING_SITE_SHARE` of them, all distinct) or None (a shop of its own).
        Drawn from a random stream of their own, so the rest of the traffic is as it was."""
        pool = self._pools.get("testing sites")
        if pool is None:
            named = Random(f"fraudscore.synthetic/{self._seed}/merchants/testing sites")
            pool = self._pools["testing sites"] = tuple(
                self._merchant(named, _BY_MCC[named.choice(_TESTING_MCCS)], None)
                for _ in range(_TESTING_SITES)
            )
        rng = self._site_rng
        return [s if rng.random() < TESTING_SITE_SHARE else None for s in rng.sample(pool, n)]

    def _account_takeover(self, t: int, card: _Card) -> list[_Draft]:
        rng = self._rng
        city = rng.choice(_FAR_CITIES)
        device = "dev_" + _letters(rng, 16)
        currency = card.city.currency if rng.random() < 0.6 else city.currency
        drafts = []
        for offset in self._offsets(rng.randint(3, 6), 60_000, 480_000):
            merchant = self._merchant(rng, _BY_MCC[rng.choice(_TAKEOVER_MCCS)], city)
            online = merchant.mcc == "4829"
            amount = min(6000.0, rng.lognormvariate(math.log(900.0), 0.5))
            drafts.append(
                _Draft(
                    event_time_ms=t + offset,
                    card=card,
                    merchant_id=merchant.merchant_id,
                    mcc=merchant.mcc,
                    currency=currency,
                    amount_minor=_usd_minor(amount, currency),
                    device_id=device,
                    lat=None if online else merchant.lat,
                    lon=None if online else merchant.lon,
                    time_encoding=self._time_encoding(),
                    scenario="account_takeover",
                )
            )
        return drafts

    def _gift_card_cashout(self, t: int, card: _Card) -> list[_Draft]:
        rng = self._rng
        shops = [
            self._merchant(rng, _BY_MCC[rng.choice(_CASHOUT_MCCS)], card.city)
            for _ in range(rng.randint(1, 2))
        ]
        currency = card.city.currency
        scale = 100 if currency == "JPY" else 1
        drafts = []
        for offset in self._offsets(rng.randint(4, 8), 40_000, 120_000):
            shop = rng.choice(shops)
            drafts.append(
                _Draft(
                    event_time_ms=t + offset,
                    card=card,
                    merchant_id=shop.merchant_id,
                    mcc=shop.mcc,
                    currency=currency,
                    amount_minor=_minor(rng.choice(_GIFT_CARD_UNITS) * scale, currency),
                    device_id=None,
                    lat=shop.lat,
                    lon=shop.lon,
                    time_encoding=self._time_encoding(),
                    scenario="gift_card_cashout",
                )
            )
        return drafts

    def _compromised_merchant(self, t: int, first_victim: _Card) -> list[_Draft]:
        """Customers of a skimmed merchant (genuine purchases), defrauded days to weeks later."""
        rng = self._rng
        merchant = rng.choice(self._pool(first_victim.city))
        window_ms = rng.uniform(1, 7) * DAY_MS
        ring_device = "dev_" + _letters(rng, 16)
        neighbours = self._residents[first_victim.home]
        others = [self._card(rng.choice(neighbours)) for _ in range(rng.randint(2, 7))]
        drafts = []
        for victim in (first_victim, *others):
            skimmed = t + int(rng.uniform(0, window_ms))
            drafts.append(self._purchase(skimmed, victim, merchant))
            when = skimmed + int(rng.uniform(2, 30) * DAY_MS)
            for _ in range(rng.randint(1, 4)):
                drafts.append(self._card_not_present(when, victim, ring_device))
                when += int(rng.expovariate(1 / 21_600_000))  # hours apart (mean 6 h)
        return drafts

    def _card_not_present(self, t: int, card: _Card, ring_device: str) -> _Draft:
        """A fraudster's online purchase with stolen card data, at a shop new to the card."""
        rng = self._rng
        category = _BY_MCC[rng.choice(_COMPROMISE_MCCS)]
        amount = min(3000.0, category.median_usd * rng.lognormvariate(math.log(3.0), 0.5))
        currency = card.city.currency
        return _Draft(
            event_time_ms=t,
            card=card,
            merchant_id="m_" + _letters(rng, 12),
            mcc=category.mcc,
            currency=currency,
            amount_minor=_usd_minor(amount, currency),
            device_id=ring_device if rng.random() < 0.7 else None,
            lat=None,
            lon=None,
            time_encoding=self._time_encoding(),
            scenario="compromised_merchant",
        )

    def _bust_out(self, t: int, card: _Card) -> list[_Draft]:
        """Days of purchases at several times the card's usual amounts, by its holder."""
        rng = self._rng
        boost = rng.uniform(3.0, 8.0)
        pool = self._pool(card.city)
        big = [merchant for merchant in pool if merchant.mcc in _BUST_OUT_MCCS] or list(pool)
        drafts = []
        for day in range(rng.randint(2, 5)):
            for _ in range(rng.randint(3, 8)):
                when = t + day * DAY_MS + int(rng.uniform(0, 14 * 3_600_000))
                favourite = rng.random() < 0.4
                merchant = rng.choice(card.merchants if favourite else big)
                drafts.append(
                    self._purchase(when, card, merchant, boost=boost, scenario="bust_out")
                )
        return drafts


def _arrivals(drafts: Iterator[_Draft], rng: Random, max_delay_ms: int) -> Iterator[_Draft]:
    """Drafts in arrival order: each is delayed by at most ``max_delay_ms`` of event time.

    Emitting by (event time + delay) means a record arrives at most ``max_delay_ms`` behind the
    newest event time already emitted. Most records are on time; some lag a little; a few lag
    by up to the bound.
    """
    heap: list[tuple[int, int, _Draft]] = []
    for seq, draft in enumerate(drafts):
        while heap and heap[0][0] <= draft.event_time_ms:
            yield heappop(heap)[2]
        r = rng.random()
        delay = 0 if r < 0.7 else rng.randint(0, min(250, max_delay_ms)) if r < 0.9 else None
        if delay is None:
            delay = rng.randint(0, max_delay_ms)
        heappush(heap, (draft.event_time_ms + delay, seq, draft))
    while heap:
        yield heappop(heap)[2]


def generate(
    count: int | None,
    *,
    cards: int,
    seed: int,
    start_ms: int = DEFAULT_START_MS,
    events_per_second: float = 200.0,
    max_out_of_orderness_ms: int = 4000,
    fraud_rate: float = 0.01,
    scenarios: tuple[str, ...] = BURST_SCENARIOS,
    until_ms: int | None = None,
) -> Iterator[SyntheticTransaction]:
    """``count`` transactions over ``cards`` cards in arrival order; see the module docstring.

    With ``until_ms``, only records with an event time before it (``count`` may then be
    None: all of them). The default ``scenarios`` are those that play out within minutes: the
    default rate of 200 events/s covers minutes of event time, in which the others would
    hardly show.
    """
    if (count is None and until_ms is None) or (count is not None and count < 0):
        raise ValueError(f"need a count >= 0 or an end time, not {count} and {until_ms}")
    if max_out_of_orderness_ms < 0:
        raise ValueError(f"the out-of-orderness bound must be >= 0, not {max_out_of_orderness_ms}")
    traffic = _Traffic(
        cards=cards,
        seed=seed,
        start_ms=start_ms,
        events_per_second=events_per_second,
        fraud_rate=fraud_rate,
        scenarios=scenarios,
    )
    rng = Random(f"fraudscore.synthetic/{seed}/arrival")
    drafts = traffic.drafts(count, until_ms)
    return _transactions(_arrivals(drafts, rng, max_out_of_orderness_ms), seed)


def simulate(
    *,
    cards: int,
    days: float,
    seed: int,
    start_ms: int = DEFAULT_START_MS,
    per_card_daily: float = 1.5,
    max_out_of_orderness_ms: int = 4000,
    fraud_rate: float = 0.005,
) -> Iterator[SyntheticTransaction]:
    """``days`` of traffic of ``cards`` cards, with every scenario, in arrival order.

    A card makes ``per_card_daily`` purchases a day on average (busy cards more, quiet ones
    fewer), plus follow-ups; every record's event time is before ``start_ms + days``.
    """
    if days <= 0 or per_card_daily <= 0:
        raise ValueError(f"need days > 0 and per_card_daily > 0, not {days}, {per_card_daily}")
    return generate(
        None,
        cards=cards,
        seed=seed,
        start_ms=start_ms,
        events_per_second=cards * per_card_daily / 86_400,
        max_out_of_orderness_ms=max_out_of_orderness_ms,
        fraud_rate=fraud_rate,
        scenarios=SCENARIOS,
        until_ms=start_ms + int(days * DAY_MS),
    )


def _transactions(drafts: Iterator[_Draft], seed: int) -> Iterator[SyntheticTransaction]:
    for i, draft in enumerate(drafts):
        yield SyntheticTransaction(
            record=_wire(draft, f"tx_{seed}_{i:09d}"),
            key=draft.card.token.encode(),
            scenario=draft.scenario,
            event_time_ms=draft.event_time_ms,
        )


# --- Labels -----------------------------------------------------------------------------

FRAUD_REPORTED = 0.95  # share of fraud that is ever reported
GENUINE_VERIFIED = 0.02  # share of genuine transactions that get a "genuine" verdict
_REPORT_MEDIAN_DAYS = {"bust_out": 35.0}  # chargeback delay; other scenarios: 12 days
_DEFAULT_REPORT_MEDIAN_DAYS = 12.0
_MAX_REPORT_DAYS = 90


class Labeller:
    """The label (if any) that will eventually arrive for each transaction, seeded.

    Call it on every transaction in arrival order; the same seed and transactions give the
    same labels. See the module docstring for the shares and delays.
    """

    def __init__(self, seed: int) -> None:
        self._rng = Random(f"fraudscore.synthetic/{seed}/labels")

    def __call__(self, item: SyntheticTransaction) -> LabelRecord | None:
        rng = self._rng
        if item.scenario is None:
            if rng.random() >= GENUINE_VERIFIED:
                return None
            label, delay_ms = GENUINE, rng.uniform(3_600_000, 5 * DAY_MS)
        else:
            if rng.random() >= FRAUD_REPORTED:
                return None
            median = _REPORT_MEDIAN_DAYS.get(item.scenario, _DEFAULT_REPORT_MEDIAN_DAYS)
            days = min(_MAX_REPORT_DAYS, max(1.0, rng.lognormvariate(math.log(median), 0.6)))
            label, delay_ms = FRAUD, days * DAY_MS
        record = item.record
        return LabelRecord(
            transaction_id=str(record["transaction_id"]),
            card_id=str(record["card_id"]),
            merchant_id=str(record["merchant_id"]),
            label=label,
            event_time_ms=item.event_time_ms,
            reported_at_ms=item.event_time_ms + int(delay_ms),
        )


# --- Malformed input ------------------------------------------------------------------------

_REQUIRED = (
    "transaction_id",
    "card_id",
    "amount",
    "currency",
    "merchant_id",
    "merchant_category",
    "event_time",
)
_BAD_FIELDS: tuple[tuple[str, object], ...] = (
    ("merchant_category", "54a1"),
    ("merchant_category", "541"),
    ("merchant_category", 5411),
    ("card_id", ""),
    ("merchant_id", "m_" + "x" * 80),
    ("transaction_id", 12345),
    ("device_id", ""),
    ("lat", 123.4),
    ("lon", -200.0),
)
_BAD_AMOUNTS: tuple[object, ...] = ("-5.00", "12.345", "1e3", "abc", "", "00.50", ".5", 12.34)
_BAD_CURRENCIES = ("ZZZ", "XAU", "usd", "BTC", "EURO")
_BAD_EVENT_TIMES: tuple[object, ...] = (
    "yesterday",
    "2026-13-45T25:61:00Z",
    "2026-01-01T00:00:00",
    "",
    1.7e12,
    -1,
    99_999_999_999_999,
    True,
)


def _malformed_json(rng: Random, record: dict[str, object]) -> bytes:
    raw = encode_record(record)
    variants = (
        raw[: rng.randrange(1, len(raw) - 1)],  # truncated
        raw.replace(b":", b"=", 1),
        raw + b"}",
        b"\xff\xfe" + raw,  # not UTF-8
        b"[" + raw + b"]",  # JSON, but not an object
        b"",
        b"not json",
    )
    return rng.choice(variants)


def _missing_field(rng: Random, record: dict[str, object]) -> bytes:
    del record[rng.choice(_REQUIRED)]
    return encode_record(record)


def _invalid_field(rng: Random, record: dict[str, object]) -> bytes:
    if rng.random() < 0.15:  # lat without lon
        record["lat"] = 48.0
        record.pop("lon", None)
    else:
        field, value = rng.choice(_BAD_FIELDS)
        record[field] = value
    return encode_record(record)


def _invalid_amount(rng: Random, record: dict[str, object]) -> bytes:
    record["amount"] = rng.choice(_BAD_AMOUNTS)
    return encode_record(record)


def _unknown_currency(rng: Random, record: dict[str, object]) -> bytes:
    record["currency"] = rng.choice(_BAD_CURRENCIES)
    return encode_record(record)


def _invalid_event_time(rng: Random, record: dict[str, object]) -> bytes:
    record["event_time"] = rng.choice(_BAD_EVENT_TIMES)
    return encode_record(record)


def _oversized(rng: Random, record: dict[str, object]) -> bytes:
    padding = 8192 + rng.randrange(1, 4096)
    if rng.random() < 0.5:
        record["note"] = "x" * padding  # unknown fields are allowed, but not this big
        return encode_record(record)
    return encode_record(record) + b" " * padding


_MALFORMERS: tuple[tuple[str, Callable[[Random, dict[str, object]], bytes]], ...] = (
    (Reason.MALFORMED_JSON, _malformed_json),
    (Reason.MISSING_FIELD, _missing_field),
    (Reason.INVALID_FIELD, _invalid_field),
    (Reason.INVALID_AMOUNT, _invalid_amount),
    (Reason.UNKNOWN_CURRENCY, _unknown_currency),
    (Reason.INVALID_EVENT_TIME, _invalid_event_time),
    (Reason.OVERSIZED, _oversized),
)


def malformed_records(
    count: int, *, seed: int, valid_sample: dict[str, object]
) -> list[tuple[bytes, str]]:
    """``count`` invalid records made from ``valid_sample``, each with its expected reason.

    The reasons take turns, so any seven consecutive records cover every code; the variant
    of each is drawn from ``seed``. Oversized records are over 8192 bytes.
    """
    rng = Random(f"fraudscore.synthetic/{seed}/malformed")
    records = []
    for i in range(count):
        reason, malform = _MALFORMERS[i % len(_MALFORMERS)]
        record = dict(valid_sample)
        record["transaction_id"] = f"bad_{seed}_{i:09d}"
        records.append((malform(rng, record), str(reason)))
    return records
