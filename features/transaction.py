"""The validated card transaction, as the domain sees it.

Money is an integer in minor units with its scale (the currency's exponent); time is epoch
milliseconds UTC, with the UTC offset the sender's event_time carried (for the local-time
features; 0 when it was epoch milliseconds or ``Z``). The wire format (JSON with a
decimal-string amount and RFC 3339 or epoch-ms time) and its validation live in
:mod:`features.validation`.
"""

from __future__ import annotations

import msgspec


class Transaction(msgspec.Struct, frozen=True, gc=False):
    transaction_id: str
    card_id: str  # a token, never a card number
    amount_minor: int  # e.g. 1234 for "12.34" USD
    amount_scale: int  # the currency's minor-unit exponent, e.g. 2 for USD, 0 for JPY
    currency: str  # ISO 4217 alphabetic code
    merchant_id: str
    merchant_category: str  # ISO 18245 MCC, four digits
    event_time_ms: int  # epoch milliseconds, UTC
    device_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    utc_offset_min: int = 0  # the event_time's UTC offset in minutes (0 for epoch ms or Z)

    @property
    def amount(self) -> float:
        """Amount in the currency's major unit (for model features, never for money)."""
        return self.amount_minor / 10.0**self.amount_scale
