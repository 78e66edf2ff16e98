"""Labels: late verdicts on transactions (chargebacks, analyst reviews), as the labels topic
carries them.

A label names its transaction (``transaction_id``, ``card_id``, ``merchant_id`` and the
transaction's ``event_time``), says ``fraud`` or ``genuine``, and when it was reported. Most
transactions are never labelled; training counts a transaction as fraud only if a fraud label
for it was reported by the training cut-off (:mod:`models.training`), and the merchant-risk
features count them per merchant (:mod:`features.merchant`).

:func:`decode_label` validates one record of the labels topic like the transactions'
validator (:mod:`features.validation`, same reason codes): a JSON object, identifiers of 1-64
characters with no card number in them, ``label`` ``fraud`` or ``genuine`` (else
``invalid_field``), ``event_time`` and ``reported_at`` as RFC 3339 with an offset or epoch ms
(else ``invalid_event_time``), reported at or after the event (else ``invalid_field``), and
keyed by its ``card_id`` (else ``key_mismatch``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import msgspec

from features.merchant import LabelFact
from features.pan import contains_pan, might_contain_pan
from features.validation import (
    Identifier,
    Reason,
    Rejection,
    decode_strict,
    parse_event_time,
)
from models.pipeline import format_event_time

FRAUD = "fraud"
GENUINE = "genuine"


@dataclass(frozen=True, slots=True)
class LabelRecord:
    """A late verdict on one transaction."""

    transaction_id: str
    card_id: str
    merchant_id: str
    label: str  # FRAUD or GENUINE
    event_time_ms: int  # the labelled transaction's
    reported_at_ms: int

    @property
    def key(self) -> bytes:
        """The card token, like the transactions' key (one card's records stay together)."""
        return self.card_id.encode()

    def wire(self) -> dict[str, object]:
        """The labels topic's JSON record, times in RFC 3339 UTC."""
        return {
            "transaction_id": self.transaction_id,
            "card_id": self.card_id,
            "merchant_id": self.merchant_id,
            "label": self.label,
            "event_time": format_event_time(self.event_time_ms),
            "reported_at": format_event_time(self.reported_at_ms),
        }

    def fact(self) -> LabelFact:
        """What the merchant-risk features need of it."""
        return LabelFact(
            self.transaction_id,
            self.merchant_id,
            self.label == FRAUD,
            self.event_time_ms,
            self.reported_at_ms,
        )


class _WireLabel(msgspec.Struct, gc=False):
    transaction_id: Identifier
    card_id: Identifier
    merchant_id: Identifier
    label: Literal["fraud", "genuine"]
    event_time: str | int
    reported_at: str | int


_DECODER = msgspec.json.Decoder(_WireLabel)


def decode_label(raw: bytes, key: bytes | None, *, max_bytes: int) -> LabelRecord | Rejection:
    """Decode and validate one record of the labels topic; never raises on bad input."""
    wire = decode_strict(raw, _DECODER, max_bytes=max_bytes)
    if isinstance(wire, Rejection):
        return wire
    ids = (("transaction_id", wire.transaction_id), ("card_id", wire.card_id))
    for field, text in (*ids, ("merchant_id", wire.merchant_id)):
        if might_contain_pan(text) and contains_pan(text):
            return Rejection(Reason.PAN_DETECTED, f"{field} holds a card number (PAN)")
    times = []
    for field, time in (("event_time", wire.event_time), ("reported_at", wire.reported_at)):
        parsed = parse_event_time(time)
        if isinstance(parsed, Rejection):
            return Rejection(parsed.reason, f"{field}: {parsed.detail}")
        times.append(parsed[0])
    event_time_ms, reported_at_ms = times
    if reported_at_ms < event_time_ms:
        return Rejection(Reason.INVALID_FIELD, "reported_at is before the event_time it labels")
    if key != wire.card_id.encode():
        return Rejection(
            Reason.KEY_MISMATCH,
            "the record's Kafka key is not its card_id: key labels by card token",
        )
    return LabelRecord(
        wire.transaction_id,
        wire.card_id,
        wire.merchant_id,
        wire.label,
        event_time_ms,
        reported_at_ms,
    )
