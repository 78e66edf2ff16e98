"""The scoring pipeline as a pure function of the input log: decode → apply → score → decide.

The worker runs it over each fetched batch of one partition with the partition's state store;
tests and replay run the very same code over a partition's log with an in-memory store
(:class:`features.stream.MemoryCardStore`), which is what makes "the same input log gives the
same decisions" checkable.

Per record, in offset order: an invalid record, one keyed by another card and a duplicate
delivery of a transaction id (:mod:`features.stream`) become dead letters; every other
transaction advances the partition's watermark, is applied to its card's state and gets a
decision, flagged ``late`` (and copied to the late topic by the worker) when it is older than
the watermark minus the allowed lateness. Its feature vector is the card's features followed
by its merchant's risk from the snapshot for its event day (:mod:`features.merchant`); the
decision names that snapshot (``merchant_risk_version``, None when there was none).

The whole batch is scored at once (:meth:`Scorer.score_batch`), then decided record by
record; the REVIEW and DECLINE decisions get the model's reason codes from one more call
for just them (:meth:`Scorer.contributions`, :func:`models.policy.model_reasons`). A
record's score and reasons do not depend on the rest of its batch.

Nothing here reads the clock or does I/O. Processing timestamps are added by the worker, as
record headers, so the decision records themselves are byte-identical on replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache

import msgspec

from features.card import FeatureVector
from features.merchant import MemorySnapshots, SnapshotBook, day_of, merchant_vector
from features.schema import FEATURE_NAMES, FEATURE_SCHEMA_VERSION
from features.stream import DEFAULT_STREAM_PARAMS, CardStore, StreamParams, process
from features.transaction import Transaction
from features.validation import Reason, Rejection, decode_transaction
from models.policy import Decision, Outcome, Policy, decide, model_reasons
from models.scorer import Scorer


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record as it was read from the input topic."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes


class Source(msgspec.Struct, frozen=True, array_like=False):
    topic: str
    partition: int
    offset: int


class DecisionRecord(msgspec.Struct, frozen=True, omit_defaults=True):
    """The value written to the decisions topic (JSON).

    The shadow fields come last and are left out when there is no shadow model, so a record
    without them is byte for byte what it was before they existed.
    """

    transaction_id: str
    card_id: str
    amount: str
    currency: str
    merchant_id: str
    event_time: str
    score: float
    decision: str
    reasons: tuple[str, ...]
    model_version: str
    policy_version: str
    feature_schema_version: int
    features: dict[str, float]
    merchant_risk_version: str | None  # the merchant snapshot the features used; None: none
    late: bool  # older than the partition's watermark - allowed lateness (features.stream)
    source: Source
    shadow_score: float | None = None  # the shadow model's score: recorded, never decides
    shadow_model_version: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A rejected input record, with why and where it came from."""

    record: SourceRecord
    rejection: Rejection


@dataclass(slots=True)
class BatchResult:
    decisions: list[tuple[bytes, DecisionRecord]] = field(default_factory=list)  # (key, value)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    late: list[SourceRecord] = field(default_factory=list)  # to copy to the late topic
    event_times_ms: list[int] = field(default_factory=list)  # of the decisions, in order


_json_encoder = msgspec.json.Encoder()


def encode_decision(decision: DecisionRecord) -> bytes:
    return _json_encoder.encode(decision)


def format_amount(txn: Transaction) -> str:
    """The amount back as a decimal string in the major unit, exactly."""
    scale = txn.amount_scale
    if scale == 0:
        return str(txn.amount_minor)
    digits = str(txn.amount_minor).rjust(scale + 1, "0")  # amounts are never negative
    return digits[:-scale] + "." + digits[-scale:]


_SECONDS = tuple(f"{second:02d}." for second in range(60))
_MILLIS = tuple(f"{milli:03d}Z" for milli in range(1000))


@lru_cache(maxsize=4096)
def _minute_prefix(minute: int) -> str:
    """``YYYY-MM-DDTHH:MM:`` of a minute since the epoch, UTC."""
    return datetime.fromtimestamp(minute * 60, tz=UTC).strftime("%Y-%m-%dT%H:%M:")


def format_event_time(event_time_ms: int) -> str:
    """RFC 3339 in UTC with milliseconds, ``2026-01-01T09:30:00.000Z``.

    ``strftime`` runs once per minute of event time (cached: a partition's events come
    roughly in order); seconds and milliseconds come from tables.
    """
    minute, ms = divmod(event_time_ms, 60_000)
    second, milli = divmod(ms, 1000)
    return _minute_prefix(minute) + _SECONDS[second] + _MILLIS[milli]


_KEY_MISMATCH = Rejection(
    Reason.KEY_MISMATCH,
    "the record's Kafka key is not its card_id: key input records by card token, or one "
    "card's transactions land on several partitions and its features split",
)


_DUPLICATE = Rejection(
    Reason.DUPLICATE_TRANSACTION,
    "this card has had a transaction with this transaction_id already (an upstream retry?); "
    "it was decided then and is not decided or counted again",
)


def _decode(record: SourceRecord, max_bytes: int) -> Transaction | Rejection:
    decoded = decode_transaction(record.value, max_bytes=max_bytes)
    if isinstance(decoded, Transaction) and record.key != decoded.card_id.encode():
        return _KEY_MISMATCH
    return decoded


NO_SNAPSHOTS = MemorySnapshots()


@dataclass(frozen=True, slots=True)
class Featurized:
    """An accepted record with its transaction, feature vector, late flag and the merchant
    snapshot its merchant features came from."""

    record: SourceRecord
    txn: Transaction
    vector: FeatureVector
    late: bool
    merchant_risk_version: str | None


def featurize(
    records: Iterable[SourceRecord],
    store: CardStore,
    *,
    max_record_bytes: int,
    params: StreamParams = DEFAULT_STREAM_PARAMS,
    merchants: SnapshotBook = NO_SNAPSHOTS,
) -> tuple[list[Featurized], list[DeadLetter]]:
    """Decode and apply each record in order: the worker's feature step, also training's.

    Returns the accepted records with their transaction, feature vector (card, then merchant
    features from ``merchants``' snapshot for the event day), late flag and snapshot version,
    and the rejected ones (invalid, keyed by another card, duplicate deliveries) as dead
    letters.
    """
    accepted: list[Featurized] = []
    dead_letters: list[DeadLetter] = []
    for record in records:
        decoded = _decode(record, max_record_bytes)
        if isinstance(decoded, Rejection):
            dead_letters.append(DeadLetter(record, decoded))
            continue
        outcome = process(store, decoded, params)
        if outcome.vector is None:
            dead_letters.append(DeadLetter(record, _DUPLICATE))
            continue
        snapshot = merchants.snapshot_for(day_of(decoded.event_time_ms))
        if snapshot is None:
            vector, version = (*outcome.vector, *merchant_vector(None)), None
        else:
            counts = snapshot.counts.get(decoded.merchant_id)
            vector, version = (*outcome.vector, *merchant_vector(counts)), snapshot.version
        accepted.append(Featurized(record, decoded, vector, outcome.late, version))
    return accepted, dead_letters


@dataclass(frozen=True, slots=True)
class Verdict:
    """What a model and a policy make of one feature vector."""

    score: float
    decision: str  # an Outcome's value: APPROVE, REVIEW or DECLINE
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Pipeline:
    """``scorer`` and ``policy`` decide; ``shadow``, if any, is scored on the same feature
    vectors and recorded beside the live score without affecting the decision; ``merchants``
    gives the merchant snapshots."""

    scorer: Scorer
    policy: Policy
    max_record_bytes: int
    params: StreamParams = DEFAULT_STREAM_PARAMS
    shadow: Scorer | None = None
    merchants: SnapshotBook = NO_SNAPSHOTS

    def run(self, records: Sequence[SourceRecord], store: CardStore) -> BatchResult:
        """Process one batch of one partition, in offset order, against ``store``."""
        accepted, dead_letters = featurize(
            records,
            store,
            max_record_bytes=self.max_record_bytes,
            params=self.params,
            merchants=self.merchants,
        )
        result = BatchResult(
            dead_letters=dead_letters,
            late=[f.record for f in accepted if f.late],
            event_times_ms=[f.txn.event_time_ms for f in accepted],  # for latency metrics
        )
        result.decisions.extend(self.decide(accepted))
        return result

    def decide(self, accepted: Sequence[Featurized]) -> list[tuple[bytes, DecisionRecord]]:
        """The decision records (key, value) of featurized records: what :meth:`run` emits
        for them, and what ``fraudscore replay`` recomputes with each decision's recorded
        model and policy."""
        vectors = [f.vector for f in accepted]
        verdicts = self.judge(vectors)
        shadow_scores = None if self.shadow is None else self.shadow.score_batch(vectors)
        return list(self._decisions(accepted, verdicts, shadow_scores))

    def judge(self, vectors: Sequence[FeatureVector]) -> list[Verdict]:
        """Score, decide and explain feature vectors (one model call for the scores, one for
        the reasons of the REVIEW and DECLINE ones): what :meth:`run` records for each, and
        what ``fraudscore audit reproduce`` recomputes from an audit row."""
        scores = self.scorer.score_batch(vectors)
        decisions = [decide(s, v, self.policy) for s, v in zip(scores, vectors, strict=True)]
        reasons = self._reasons(vectors, decisions)
        return [
            Verdict(score, decision.outcome.value, why)
            for score, decision, why in zip(scores, decisions, reasons, strict=True)
        ]

    def _decisions(
        self,
        accepted: Sequence[Featurized],
        verdicts: list[Verdict],
        shadow_scores: Sequence[float] | None = None,
    ) -> Iterator[tuple[bytes, DecisionRecord]]:
        policy = self.policy
        shadow_version = None if self.shadow is None else self.shadow.version
        shadows: Sequence[float | None] = shadow_scores or [None] * len(accepted)
        for featurized, verdict, shadow_score in zip(accepted, verdicts, shadows, strict=True):
            record, txn = featurized.record, featurized.txn
            yield (
                txn.card_id.encode(),
                DecisionRecord(
                    transaction_id=txn.transaction_id,
                    card_id=txn.card_id,
                    amount=format_amount(txn),
                    currency=txn.currency,
                    merchant_id=txn.merchant_id,
                    event_time=format_event_time(txn.event_time_ms),
                    score=verdict.score,
                    decision=verdict.decision,
                    reasons=verdict.reasons,
                    model_version=self.scorer.version,
                    policy_version=policy.version,
                    feature_schema_version=FEATURE_SCHEMA_VERSION,
                    features=dict(zip(FEATURE_NAMES, featurized.vector, strict=False)),  # checked
                    merchant_risk_version=featurized.merchant_risk_version,
                    late=featurized.late,
                    source=Source(record.topic, record.partition, record.offset),
                    shadow_score=shadow_score,
                    shadow_model_version=shadow_version,
                ),
            )

    def _reasons(
        self, vectors: Sequence[FeatureVector], decisions: list[Decision]
    ) -> list[tuple[str, ...]]:
        """Each decision's reason codes, with the model's added to every REVIEW and DECLINE
        (one :meth:`Scorer.contributions` call for all of them: they are few)."""
        reasons = [decision.reasons for decision in decisions]
        flagged = [i for i, d in enumerate(decisions) if d.outcome is not Outcome.APPROVE]
        contributions = self.scorer.contributions([vectors[i] for i in flagged])
        if contributions is not None:
            names = self.scorer.feature_names
            for i, pushes in zip(flagged, contributions, strict=True):
                reasons[i] = (*reasons[i], *model_reasons(pushes, names))
        return reasons
