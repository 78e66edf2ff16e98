"""The scoring pipeline as a pure function of the input log: decode → apply → score → decide.

The worker runs it over each fetched batch of one partition with the partition's state store;
tests and replay run the very same code over a partition's log with an in-memory store, which
is what makes "the same input log gives the same decisions" checkable.

Nothing here reads the clock or does I/O. Processing timestamps are added by the worker, as
record headers, so the decision records themselves are byte-identical on replay.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import msgspec

from features.card import (
    DEFAULT_PARAMS,
    FEATURE_NAMES,
    FEATURE_SCHEMA_VERSION,
    CardState,
    FeatureParams,
    FeatureVector,
    observe,
)
from features.transaction import Transaction
from features.validation import Reason, Rejection, decode_transaction
from models.policy import Policy, decide
from models.scorer import Scorer


class CardStore(Protocol):
    """What the pipeline needs from state: the real one is RocksDB behind an overlay."""

    def get(self, card_id: str) -> CardState | None: ...

    def put(self, card_id: str, state: CardState) -> None: ...


class MemoryCardStore:
    """An in-memory :class:`CardStore` for the reference run and unit tests."""

    def __init__(self) -> None:
        self.states: dict[str, CardState] = {}

    def get(self, card_id: str) -> CardState | None:
        return self.states.get(card_id)

    def put(self, card_id: str, state: CardState) -> None:
        self.states[card_id] = state


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


_json_encoder = msgspec.json.Encoder()


def encode_decision(decision: DecisionRecord) -> bytes:
    return _json_encoder.encode(decision)


def format_amount(txn: Transaction) -> str:
    """The amount back as a decimal string in the major unit, exactly."""
    if txn.amount_scale == 0:
        return str(txn.amount_minor)
    units, minor = divmod(txn.amount_minor, 10**txn.amount_scale)
    return f"{units}.{minor:0{txn.amount_scale}d}"


def format_event_time(event_time_ms: int) -> str:
    moment = datetime.fromtimestamp(event_time_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{event_time_ms % 1000:03d}Z"


_KEY_MISMATCH = Rejection(
    Reason.KEY_MISMATCH,
    "the record's Kafka key is not its card_id: key input records by card token, or one "
    "card's transactions land on several partitions and its features split",
)


def _decode(record: SourceRecord, max_bytes: int) -> Transaction | Rejection:
    decoded = decode_transaction(record.value, max_bytes=max_bytes)
    if isinstance(decoded, Transaction) and record.key != decoded.card_id.encode():
        return _KEY_MISMATCH
    return decoded


Featurized = tuple[SourceRecord, Transaction, FeatureVector]


def featurize(
    records: Iterable[SourceRecord],
    store: CardStore,
    *,
    max_record_bytes: int,
    params: FeatureParams = DEFAULT_PARAMS,
) -> tuple[list[Featurized], list[DeadLetter]]:
    """Decode and apply each record in order: the worker's feature step, also training's.

    Returns the accepted records with their transaction and feature vector, and the rejected
    ones as dead letters.
    """
    accepted: list[Featurized] = []
    dead_letters: list[DeadLetter] = []
    for record in records:
        decoded = _decode(record, max_record_bytes)
        if isinstance(decoded, Rejection):
            dead_letters.append(DeadLetter(record, decoded))
            continue
        state, vector = observe(store.get(decoded.card_id), decoded, params)
        store.put(decoded.card_id, state)
        accepted.append((record, decoded, vector))
    return accepted, dead_letters


@dataclass(frozen=True, slots=True)
class Pipeline:
    """``scorer`` and ``policy`` decide; ``shadow``, if any, is scored on the same feature
    vectors and recorded beside the live score without affecting the decision."""

    scorer: Scorer
    policy: Policy
    max_record_bytes: int
    params: FeatureParams = DEFAULT_PARAMS
    shadow: Scorer | None = None

    def run(self, records: Sequence[SourceRecord], store: CardStore) -> BatchResult:
        """Process one batch of one partition, in offset order, against ``store``."""
        accepted, dead_letters = featurize(
            records, store, max_record_bytes=self.max_record_bytes, params=self.params
        )
        result = BatchResult(dead_letters=dead_letters)
        vectors = [vector for _, _, vector in accepted]
        scores = self.scorer.score_batch(vectors)
        shadow_scores = (
            [None] * len(vectors) if self.shadow is None else self.shadow.score_batch(vectors)
        )
        result.decisions.extend(self._decisions(accepted, scores, shadow_scores))
        return result

    def _decisions(
        self,
        accepted: list[Featurized],
        scores: list[float],
        shadow_scores: Sequence[float | None],
    ) -> Iterator[tuple[bytes, DecisionRecord]]:
        shadow_version = None if self.shadow is None else self.shadow.version
        for (record, txn, vector), score, shadow_score in zip(
            accepted, scores, shadow_scores, strict=True
        ):
            decision = decide(score, vector, self.policy)
            yield (
                txn.card_id.encode(),
                DecisionRecord(
                    transaction_id=txn.transaction_id,
                    card_id=txn.card_id,
                    amount=format_amount(txn),
                    currency=txn.currency,
                    merchant_id=txn.merchant_id,
                    event_time=format_event_time(txn.event_time_ms),
                    score=score,
                    decision=decision.outcome.value,
                    reasons=decision.reasons,
                    model_version=self.scorer.version,
                    policy_version=self.policy.version,
                    feature_schema_version=FEATURE_SCHEMA_VERSION,
                    features=dict(zip(FEATURE_NAMES, vector, strict=True)),
                    source=Source(record.topic, record.partition, record.offset),
                    shadow_score=shadow_score,
                    shadow_model_version=shadow_version,
                ),
            )
