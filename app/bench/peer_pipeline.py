"""What the peer contenders of ``fraudscore bench`` (Quix Streams, Faust) compute per
transaction, written once for both: the framework only keeps the card's state and moves
records; features, model, policy and the decision record are the same code here.

A card's state is the list of its transactions of the last 30 days (``[event_ms, amount in
1/10,000 of the major unit, merchant, mcc]``, arrival order), a plain JSON-able value, so
each framework stores it in its own state store with its own serializer (Quix ``State``,
a Faust ``Table``) and changelogs it its own way.

Features computed, with fraudscore's definitions over the half-open windows ``(t - W, t]``
(exact for every window, where fraudscore buckets 7d and 30d by the hour):
``amount``, count/sum/average over 60s, 10m, 1h, 24h, 7d, 30d, ``distinct_merchants_10m``,
``distinct_merchants_24h``, ``distinct_mccs_24h``, ``seconds_since_prev``,
``amount_ratio_30d``, ``new_merchant``, ``new_mcc`` and the local-time flags.
Fed as constants (:data:`CONSTANT_FEATURES`): ``amount_zscore`` 0.0, ``new_device`` 0.0,
``speed_kmh`` 0.0 (they need a decayed profile, a device history and locations, which a
fair port would add at a cost the peers here do not pay) and the merchant-risk features
(:data:`features.merchant.NO_RISK`: fraudscore's worker also scores with those when it has
no merchant snapshots, as in the benchmark).

Scoring, policy, reason codes and the decision record are the worker's own
(:meth:`models.pipeline.Pipeline.decide`, one transaction per call), so the peers write the
same bytes per decision as fraudscore.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Final

import msgspec

from app.model_cache import cached_default_model
from features.calendar import local_time_flags
from features.card import NO_PREVIOUS_S, FeatureVector
from features.merchant import MERCHANT_FEATURE_NAMES, NO_RISK
from features.schema import FEATURE_NAMES
from features.transaction import Transaction
from models.pipeline import Featurized, Pipeline, SourceRecord, encode_decision
from models.policy import Policy
from models.scorer import Scorer

CONFIG_ENV: Final = "FRAUDSCORE_BENCH_CONTENDER"


class ContenderConfig(msgspec.Struct, frozen=True):
    """What a peer contender process is told, as JSON in :data:`CONFIG_ENV` (the Quix one
    runs in its own virtualenv, without fraudscore's settings and their library versions)."""

    bootstrap: str
    input_topic: str
    output_topic: str
    group: str
    state_dir: str
    exactly_once: bool
    commit_interval_s: float  # fraudscore's checkpoint cadence, for everyone
    commit_every: int
    model_cache_dir: str

    def env(self) -> dict[str, str]:
        return {CONFIG_ENV: msgspec.json.encode(self).decode()}


def contender_config() -> ContenderConfig:
    return msgspec.json.decode(os.environ[CONFIG_ENV], type=ContenderConfig)


CardEvents = list[list[int | str]]  # [event_ms, amount units, merchant, mcc], arrival order

_SECOND: Final = 1000
_WINDOWS_MS: Final = (60 * _SECOND, 600 * _SECOND, 3600 * _SECOND, 86_400 * _SECOND,
                      7 * 86_400 * _SECOND, 30 * 86_400 * _SECOND)  # fmt: skip
_DAY_MS: Final = 86_400 * _SECOND
_MONTH_MS: Final = _WINDOWS_MS[-1]
MAX_RECORD_BYTES: Final = 8192  # the worker's max_record_bytes default
_UNITS: Final = 10_000  # amounts kept in 1/10,000 of the major unit, as fraudscore does
CONSTANT_FEATURES: Final[dict[str, float]] = {
    "amount_zscore": 0.0,
    "new_device": 0.0,
    "speed_kmh": 0.0,
    **dict(zip(MERCHANT_FEATURE_NAMES, NO_RISK, strict=True)),
}


def observe(events: CardEvents, txn: Transaction) -> tuple[CardEvents, dict[str, float]]:
    """The card's events with ``txn`` added (and those older than 30 days before the newest
    dropped), and the features of ``txn`` computed from them."""
    t = txn.event_time_ms
    units = txn.amount_minor * 10 ** (4 - txn.amount_scale)
    previous = max((int(e[0]) for e in events if int(e[0]) <= t), default=None)
    seen = {(str(e[2]), str(e[3])) for e in events if int(e[0]) > t - _MONTH_MS}
    events = [*events, [t, units, txn.merchant_id, txn.merchant_category]]
    newest = max(int(e[0]) for e in events)
    events = [e for e in events if int(e[0]) > newest - _MONTH_MS]
    values: dict[str, float] = {"amount": units / _UNITS}
    counts_sums = []
    for name, width in zip(("60s", "10m", "1h", "24h", "7d", "30d"), _WINDOWS_MS, strict=True):
        inside = [int(e[1]) for e in events if t - width < int(e[0]) <= t]
        count, total = len(inside), sum(inside)
        counts_sums.append((count, total))
        values[f"txn_count_{name}"] = float(count)
        values[f"amount_sum_{name}"] = total / _UNITS
        values[f"amount_avg_{name}"] = total / (count * _UNITS) if count else 0.0
    values["distinct_merchants_10m"] = float(
        len({e[2] for e in events if t - _WINDOWS_MS[1] < int(e[0]) <= t})
    )
    day = [e for e in events if t - _DAY_MS < int(e[0]) <= t]
    values["distinct_merchants_24h"] = float(len({e[2] for e in day}))
    values["distinct_mccs_24h"] = float(len({e[3] for e in day}))
    values["seconds_since_prev"] = (
        NO_PREVIOUS_S if previous is None or t - previous >= _MONTH_MS else (t - previous) / 1000
    )
    count_30d, sum_30d = counts_sums[-1]
    values["amount_ratio_30d"] = units * count_30d / sum_30d if sum_30d > 0 else 0.0
    values["new_merchant"] = 0.0 if any(m == txn.merchant_id for m, _ in seen) else 1.0
    values["new_mcc"] = 0.0 if any(c == txn.merchant_category for _, c in seen) else 1.0
    hour, weekend, night = local_time_flags(t, txn.utc_offset_min)
    values |= {"local_hour": hour, "local_weekend": weekend, "local_night": night}
    return events, values


class PeerDecider:
    """The default model (the one the worker uses without ``FRAUDSCORE_MODEL_PATH``) and the
    default policy, deciding one transaction at a time with the worker's own decision code
    (:meth:`models.pipeline.Pipeline.decide`: score, policy, reason codes, record)."""

    def __init__(self, scorer: Scorer) -> None:
        self.pipeline = Pipeline(scorer=scorer, policy=Policy(), max_record_bytes=MAX_RECORD_BYTES)

    @classmethod
    def default(cls, config: ContenderConfig) -> PeerDecider:
        """With the default model, trained or loaded as the worker does (:mod:`app.model_cache`)."""
        return cls(cached_default_model(Path(config.model_cache_dir)))

    def decide(self, txn: Transaction, features: dict[str, float], record: SourceRecord) -> bytes:
        """The encoded decision record of ``txn``, read as ``record``."""
        values = features | CONSTANT_FEATURES
        vector: FeatureVector = tuple(values[name] for name in FEATURE_NAMES)
        accepted = Featurized(record, txn, vector, late=False, merchant_risk_version=None)
        ((_, decision),) = self.pipeline.decide([accepted])
        return encode_decision(decision)
