"""Labels: late verdicts on transactions (chargebacks, analyst reviews), as the labels topic
carries them.

A label names its transaction (``transaction_id``, ``card_id``, ``merchant_id`` and the
transaction's ``event_time``), says ``fraud`` or ``genuine``, and when it was reported. Most
transactions are never labelled; training counts a transaction as fraud only if a fraud label
for it was reported by the training cut-off (:mod:`models.training`).
"""

from __future__ import annotations

from dataclasses import dataclass

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
