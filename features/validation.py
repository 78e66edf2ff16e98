"""Strict, fast decoding of input transactions from the ``transactions`` topic.

:func:`decode_transaction` turns the raw bytes of one Kafka record into a
:class:`~features.transaction.Transaction` or a :class:`Rejection` (a stable reason code
plus a human message). It never raises on bad input.

Wire format: one JSON object; unknown keys are ignored, of duplicate keys the last one wins.

* ``transaction_id``, ``merchant_id``: strings of 1-64 characters;
* ``card_id``: string of 1-64 characters, a card *token*, never a card number;
* ``amount``: decimal string in the major unit, ``"12.34"``: ASCII digits, optionally one
  ``.`` and 1..exponent decimals; no sign, exponent, ``NaN``/``Infinity`` or superfluous
  leading zero (``"0.50"`` yes; ``"00.50"``, ``".5"``, ``"5."`` no). Zero is allowed
  (authorisation checks); at most 10**12 minor units. A JSON number is rejected;
* ``currency``: an active ISO 4217 code with a minor unit (:mod:`features.currency`);
* ``merchant_category``: ISO 18245 MCC, exactly four ASCII digits, as a string;
* ``device_id``: optional, a string of 1-128 characters or null (an empty id would merge
  every device into one for the velocity features, so it is rejected);
* ``lat``, ``lon``: optional numbers, both or neither; lat in [-90, 90], lon in [-180, 180];
* ``event_time``: RFC 3339 string with an offset (``Z``, ``z`` or ``+hh:mm``/``-hh:mm``;
  ``T``, ``t`` or a space between date and time; leap second ``:60`` not accepted), or
  integer epoch milliseconds. It must lie in [2000-01-01, 2100-01-01) UTC: fixed bounds,
  the wall clock is never read, so the result is deterministic. The string's UTC offset is
  kept as ``Transaction.utc_offset_min`` (``Z``, ``z``, ``-00:00`` and epoch ms give 0) for
  the local-time features.

Fractional seconds beyond the millisecond are **truncated** (``.1239999Z`` is 123 ms), never
rounded. Amounts are converted to integer minor units exactly, with no float on the way.

Reason codes (:class:`Reason`), in the order they are checked:

1. ``oversized``: ``len(raw) > max_bytes``, before any parsing;
2. ``malformed_json``: not JSON, not a JSON object, or not UTF-8;
3. while decoding the JSON types: ``missing_field``; ``invalid_field`` (wrong JSON type,
   length or range); but any problem with ``amount`` is ``invalid_amount`` and any problem
   with ``event_time`` is ``invalid_event_time``, a wrong JSON type included;
4. ``pan_detected``: a Luhn-valid 13-19 digit run (:mod:`features.pan`) in
   ``transaction_id``, ``card_id``, ``merchant_id``, ``merchant_category`` or ``device_id``;
5. ``invalid_field``: MCC not four digits, ``lat`` without ``lon`` or the reverse;
6. ``unknown_currency``, then ``invalid_amount``, then ``invalid_event_time``.

Details name the field and the rule; they never echo an input value (it may hold a card
number), except an unknown currency made of three ASCII letters.
"""

from __future__ import annotations

import datetime as dt
import re
from enum import StrEnum
from typing import Annotated, Final, Protocol, TypeVar

import msgspec

from features.currency import minor_unit_exponent
from features.pan import contains_pan, might_contain_pan
from features.transaction import Transaction

MIN_EVENT_TIME_MS: Final = 946_684_800_000  # 2000-01-01T00:00:00Z, inclusive
MAX_EVENT_TIME_MS: Final = 4_102_444_800_000  # 2100-01-01T00:00:00Z, exclusive
MAX_AMOUNT_MINOR: Final = 10**12

T = TypeVar("T")


class Reason(StrEnum):
    """Why a record was rejected. The values are stable: metrics and the DLQ use them."""

    OVERSIZED = "oversized"
    MALFORMED_JSON = "malformed_json"
    MISSING_FIELD = "missing_field"
    INVALID_FIELD = "invalid_field"
    INVALID_AMOUNT = "invalid_amount"
    UNKNOWN_CURRENCY = "unknown_currency"
    INVALID_EVENT_TIME = "invalid_event_time"
    PAN_DETECTED = "pan_detected"
    KEY_MISMATCH = "key_mismatch"  # checked by the pipeline: the Kafka key is not card_id
    # checked by the pipeline: a transaction_id its card remembers (features.stream)
    DUPLICATE_TRANSACTION = "duplicate_transaction"


class Rejection(msgspec.Struct, frozen=True, gc=False):
    """A record that is not a valid transaction: ``reason`` is a :class:`Reason` value."""

    reason: str
    detail: str


class WireRecord(Protocol):
    """The wire fields once their JSON types are checked (any decoder may produce them)."""

    @property
    def transaction_id(self) -> str: ...
    @property
    def card_id(self) -> str: ...
    @property
    def amount(self) -> str: ...
    @property
    def currency(self) -> str: ...
    @property
    def merchant_id(self) -> str: ...
    @property
    def merchant_category(self) -> str: ...
    @property
    def event_time(self) -> str | int: ...
    @property
    def device_id(self) -> str | None: ...
    @property
    def lat(self) -> float | None: ...
    @property
    def lon(self) -> float | None: ...


Identifier = Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
_DeviceId = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Lat = Annotated[float, msgspec.Meta(ge=-90.0, le=90.0)]
_Lon = Annotated[float, msgspec.Meta(ge=-180.0, le=180.0)]


class _Wire(msgspec.Struct, gc=False):
    transaction_id: Identifier
    card_id: Identifier
    amount: str
    currency: str
    merchant_id: Identifier
    merchant_category: str
    event_time: str | int
    device_id: _DeviceId | None = None
    lat: _Lat | None = None
    lon: _Lon | None = None


_DECODER: Final = msgspec.json.Decoder(_Wire)
_MISSING_PREFIX: Final = "Object missing required field `"
_PATH_MARK: Final = " - at `$."
_FIELD_REASONS: Final = {"amount": Reason.INVALID_AMOUNT, "event_time": Reason.INVALID_EVENT_TIME}
_MAX_AMOUNT_CHARS: Final = 24  # longer cannot be <= 10**12 minor units without leading zeros
# RFC 3339 date-time shape; the calendar and clock ranges are datetime.fromisoformat's job.
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)
_NAIVE: Final = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9.]+)?")
_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_ONE_MS: Final = dt.timedelta(milliseconds=1)
_ONE_MINUTE: Final = dt.timedelta(minutes=1)
_AMOUNT_FORMAT: Final = (
    "amount must be a decimal string such as '12.34': digits, optionally '.' and decimals, "
    "no sign, exponent or superfluous leading zero"
)
_EVENT_TIME_FORMAT: Final = (
    "event_time must be an RFC 3339 string with an offset, e.g. '2026-01-01T00:00:00.123Z', "
    "or integer epoch milliseconds"
)


def decode_transaction(raw: bytes, *, max_bytes: int) -> Transaction | Rejection:
    """Decode and validate one wire record; never raises on bad input."""
    wire = decode_wire(raw, max_bytes=max_bytes)
    if isinstance(wire, Rejection):
        return wire
    return to_transaction(wire)


def decode_wire(raw: bytes, *, max_bytes: int) -> WireRecord | Rejection:
    """First stage only: size, UTF-8, JSON syntax and the JSON types, lengths and ranges."""
    return decode_strict(raw, _DECODER, max_bytes=max_bytes)


def decode_strict(raw: bytes, decoder: msgspec.json.Decoder[T], *, max_bytes: int) -> T | Rejection:
    """Size, UTF-8, JSON syntax, then ``decoder``'s types, lengths and ranges; the reasons of
    steps 1-3 above (an ``event_time`` field's problem is ``invalid_event_time``). Also the
    labels' first stage (:mod:`models.label`)."""
    if len(raw) > max_bytes:
        return Rejection(Reason.OVERSIZED, f"record is {len(raw)} bytes, over {max_bytes}")
    if not raw.isascii() and not _is_utf8(raw):
        return Rejection(Reason.MALFORMED_JSON, "record is not valid UTF-8")
    try:
        return decoder.decode(raw)
    except msgspec.ValidationError as exc:
        return _from_validation_error(str(exc))
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        return Rejection(Reason.MALFORMED_JSON, f"record is not JSON: {exc}")


def _is_utf8(raw: bytes) -> bool:
    # Only for non-ASCII records: msgspec does not check the strings of skipped fields.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _from_validation_error(message: str) -> Rejection:
    """Map msgspec's message ("... - at `$.field`") to a reason code naming the field."""
    problem, mark, path = message.rpartition(_PATH_MARK)
    if mark:
        field = path.rstrip("`")
        return Rejection(_FIELD_REASONS.get(field, Reason.INVALID_FIELD), f"{field}: {problem}")
    if message.startswith(_MISSING_PREFIX):
        field = message.removeprefix(_MISSING_PREFIX).rstrip("`")
        return Rejection(Reason.MISSING_FIELD, f"missing required field {field}")
    return Rejection(Reason.MALFORMED_JSON, f"record must be a JSON object: {message}")


def to_transaction(wire: WireRecord) -> Transaction | Rejection:
    """The rules beyond JSON types (PAN, MCC, lat/lon, currency, amount, time) and conversion.

    Public so that other decoders (the benchmark's) apply exactly the same rules.
    """
    rejection = _check_text_fields(wire)
    if rejection is not None:
        return rejection
    exponent = minor_unit_exponent(wire.currency)
    if exponent is None:
        return _unknown_currency(wire.currency)
    amount_minor = amount_to_minor(wire.amount, exponent)
    if isinstance(amount_minor, Rejection):
        return amount_minor
    event_time = parse_event_time(wire.event_time)
    if isinstance(event_time, Rejection):
        return event_time
    return Transaction(
        transaction_id=wire.transaction_id,
        card_id=wire.card_id,
        amount_minor=amount_minor,
        amount_scale=exponent,
        currency=wire.currency,
        merchant_id=wire.merchant_id,
        merchant_category=wire.merchant_category,
        event_time_ms=event_time[0],
        device_id=wire.device_id,
        lat=wire.lat,
        lon=wire.lon,
        utc_offset_min=event_time[1],
    )


def _check_text_fields(wire: WireRecord) -> Rejection | None:
    """PAN check of the identifier fields, then the MCC format and the lat/lon pairing."""
    mcc, device_id = wire.merchant_category, wire.device_id
    # One cheap scan of all fields at once; the per-field look only when it hints at a PAN.
    joined = "\0".join((wire.transaction_id, wire.card_id, wire.merchant_id, mcc, device_id or ""))
    if might_contain_pan(joined):
        for field, value in (
            ("transaction_id", wire.transaction_id),
            ("card_id", wire.card_id),
            ("merchant_id", wire.merchant_id),
            ("merchant_category", mcc),
            ("device_id", device_id),
        ):
            if value is not None and contains_pan(value):
                return Rejection(Reason.PAN_DETECTED, f"{field} holds a card number (PAN)")
    if not (len(mcc) == 4 and mcc.isascii() and mcc.isdigit()):
        return Rejection(Reason.INVALID_FIELD, "merchant_category must be four ASCII digits")
    if (wire.lat is None) != (wire.lon is None):
        return Rejection(Reason.INVALID_FIELD, "lat and lon must be given together or not at all")
    return None


def _unknown_currency(code: str) -> Rejection:
    shown = f" {code!r}" if len(code) == 3 and code.isascii() and code.isalpha() else ""
    return Rejection(
        Reason.UNKNOWN_CURRENCY,
        f"currency{shown} is not an active ISO 4217 code with a minor unit",
    )


def amount_to_minor(amount: str, exponent: int) -> int | Rejection:
    """``"12.34"`` with exponent 2 -> ``1234``: exact, integer-only, strict format."""
    whole, dot, fraction = amount.partition(".")
    if not (len(amount) <= _MAX_AMOUNT_CHARS and amount.isascii() and whole.isdigit()):
        return _bad_amount(amount)
    if (len(whole) > 1 and whole[0] == "0") or (dot and not fraction.isdigit()):
        return Rejection(Reason.INVALID_AMOUNT, _AMOUNT_FORMAT)
    if len(fraction) > exponent:
        return Rejection(
            Reason.INVALID_AMOUNT, f"amount has more than {exponent} decimals for its currency"
        )
    minor = int(whole + fraction.ljust(exponent, "0"))  # "1" "5" -> "150" for exponent 2
    if minor > MAX_AMOUNT_MINOR:
        return Rejection(Reason.INVALID_AMOUNT, f"amount is over {MAX_AMOUNT_MINOR} minor units")
    return minor


def _bad_amount(amount: str) -> Rejection:
    if amount.startswith("-"):
        return Rejection(Reason.INVALID_AMOUNT, "amount must not be negative")
    if len(amount) > _MAX_AMOUNT_CHARS:
        return Rejection(Reason.INVALID_AMOUNT, f"amount is over {MAX_AMOUNT_MINOR} minor units")
    return Rejection(Reason.INVALID_AMOUNT, _AMOUNT_FORMAT)


def parse_event_time(event_time: str | int) -> tuple[int, int] | Rejection:
    """RFC 3339 string (with offset) or epoch ms -> (epoch ms UTC, UTC offset in minutes).

    The offset is the string's own (``Z``, ``z`` and ``-00:00`` are 0); epoch ms give 0.
    """
    if isinstance(event_time, str):
        parsed = _parse_rfc3339(event_time)
        if parsed is None:
            return _bad_event_time(event_time)
        millis, offset_min = parsed
    elif type(event_time) is int:  # not bool
        millis, offset_min = event_time, 0
    else:
        return Rejection(Reason.INVALID_EVENT_TIME, _EVENT_TIME_FORMAT)
    if not MIN_EVENT_TIME_MS <= millis < MAX_EVENT_TIME_MS:
        return Rejection(
            Reason.INVALID_EVENT_TIME,
            "event_time must lie in [2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z)",
        )
    return millis, offset_min


def _parse_rfc3339(text: str) -> tuple[int, int] | None:
    """(epoch ms, offset minutes) of an RFC 3339 date-time, fraction truncated; else None."""
    if _RFC3339.fullmatch(text) is None:
        return None
    try:  # fromisoformat (3.11) keeps 6 decimals, truncating; it checks days, hours, ...
        parsed = dt.datetime.fromisoformat(text.upper())  # 't'/'z' are valid RFC 3339
    except ValueError:  # February 30, 24:00, leap second 60, year 0
        return None
    offset = parsed.utcoffset() or dt.timedelta(0)  # the regex demands an offset
    return (parsed - _EPOCH) // _ONE_MS, offset // _ONE_MINUTE


def _bad_event_time(text: str) -> Rejection:
    if _NAIVE.fullmatch(text):
        return Rejection(Reason.INVALID_EVENT_TIME, "event_time has no UTC offset (naive time)")
    return Rejection(Reason.INVALID_EVENT_TIME, _EVENT_TIME_FORMAT)
