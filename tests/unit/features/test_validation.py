"""Decoding and validation of wire transactions: one test group per reason code."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.transaction import Transaction
from features.validation import (
    MAX_AMOUNT_MINOR,
    MAX_EVENT_TIME_MS,
    MIN_EVENT_TIME_MS,
    Reason,
    Rejection,
    decode_transaction,
)

MAX_BYTES = 8192
_DROP = object()  # marks a field to leave out

BASE: dict[str, Any] = {
    "transaction_id": "3f2b6c1e-9a7d-4c55-8e21-0b6f4a1d2c3e",
    "card_id": "tok_9fK2mQ7xLp4vB8sZ1cN6",
    "amount": "123.45",
    "currency": "USD",
    "merchant_id": "m_000482913",
    "merchant_category": "5411",
    "device_id": "dev_7a1c9e2f44b0",
    "lat": 48.8566,
    "lon": 2.3522,
    "event_time": "2026-03-14T09:26:53.589Z",
}
EVENT_TIME_MS = 1_773_480_413_589  # 2026-03-14T09:26:53.589Z


def record(**changes: Any) -> bytes:
    fields = {**BASE, **changes}
    return json.dumps({k: v for k, v in fields.items() if v is not _DROP}).encode()


def decode(raw: bytes) -> Transaction | Rejection:
    return decode_transaction(raw, max_bytes=MAX_BYTES)


def accepted(**changes: Any) -> Transaction:
    result = decode(record(**changes))
    assert isinstance(result, Transaction), result
    return result


def rejected(raw: bytes, reason: Reason) -> Rejection:
    result = decode(raw)
    assert isinstance(result, Rejection), result
    assert result.reason == reason, result
    return result


def epoch_ms(text: str) -> int:
    return (dt.datetime.fromisoformat(text) - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // (
        dt.timedelta(milliseconds=1)
    )


# --- happy paths ----------------------------------------------------------------------------


def test_valid_record() -> None:
    assert accepted() == Transaction(
        transaction_id=BASE["transaction_id"],
        card_id=BASE["card_id"],
        amount_minor=12345,
        amount_scale=2,
        currency="USD",
        merchant_id="m_000482913",
        merchant_category="5411",
        event_time_ms=EVENT_TIME_MS,
        device_id="dev_7a1c9e2f44b0",
        lat=48.8566,
        lon=2.3522,
        utc_offset_min=0,
    )


@pytest.mark.parametrize(
    ("event_time", "expected_ms"),
    [
        ("2026-03-14T09:26:53.589Z", EVENT_TIME_MS),
        ("2026-03-14T09:26:53.589z", EVENT_TIME_MS),
        ("2026-03-14t09:26:53.589Z", EVENT_TIME_MS),
        ("2026-03-14 09:26:53.589Z", EVENT_TIME_MS),
        ("2026-03-14T14:56:53.589+05:30", EVENT_TIME_MS),
        ("2026-03-14T04:26:53.589-05:00", EVENT_TIME_MS),
        ("2026-03-14T09:26:53.589-00:00", EVENT_TIME_MS),
        ("2026-03-14T09:26:53.589999999Z", EVENT_TIME_MS),  # truncated, not rounded
        ("2026-03-14T09:26:53.5899Z", EVENT_TIME_MS),
        ("2026-03-14T09:26:53.58Z", EVENT_TIME_MS - 9),
        ("2026-03-14T09:26:53Z", EVENT_TIME_MS - 589),
        ("2026-01-01T00:00:00+05:30", epoch_ms("2025-12-31T18:30:00+00:00")),
        ("2024-02-29T12:00:00Z", epoch_ms("2024-02-29T12:00:00+00:00")),
        (EVENT_TIME_MS, EVENT_TIME_MS),
        ("2000-01-01T00:00:00Z", MIN_EVENT_TIME_MS),
        ("2099-12-31T23:59:59.999Z", MAX_EVENT_TIME_MS - 1),
        (MIN_EVENT_TIME_MS, MIN_EVENT_TIME_MS),
        (MAX_EVENT_TIME_MS - 1, MAX_EVENT_TIME_MS - 1),
    ],
)
def test_event_time_forms(event_time: str | int, expected_ms: int) -> None:
    assert accepted(event_time=event_time).event_time_ms == expected_ms


@pytest.mark.parametrize(
    ("event_time", "offset_min"),
    [
        ("2026-03-14T09:26:53.589Z", 0),
        ("2026-03-14T09:26:53.589z", 0),
        ("2026-03-14T14:56:53.589+05:30", 330),
        ("2026-03-14T04:26:53.589-05:00", -300),
        ("2026-03-14T09:26:53.589-00:00", 0),
        ("2026-03-14T09:26:53.589+00:00", 0),
        ("2026-03-15T09:25:53.589+23:59", 23 * 60 + 59),
        ("2026-03-13T09:27:53.589-23:59", -(23 * 60 + 59)),
        (EVENT_TIME_MS, 0),  # epoch milliseconds are UTC
    ],
)
def test_the_utc_offset_is_kept_for_local_time(event_time: str | int, offset_min: int) -> None:
    tx = accepted(event_time=event_time)
    assert (tx.event_time_ms, tx.utc_offset_min) == (EVENT_TIME_MS, offset_min)


def test_event_time_does_not_round_up_into_the_next_day() -> None:
    tx = accepted(event_time="2026-12-31T23:59:59.9999996Z")
    assert tx.event_time_ms == epoch_ms("2027-01-01T00:00:00+00:00") - 1


@pytest.mark.parametrize(
    ("amount", "currency", "minor", "scale"),
    [
        ("0.10", "USD", 10, 2),
        ("1.5", "USD", 150, 2),
        ("12", "USD", 1200, 2),
        ("0", "USD", 0, 2),
        ("0.00", "EUR", 0, 2),
        ("19.99", "EUR", 1999, 2),
        ("100", "JPY", 100, 0),
        ("12", "KWD", 12000, 3),
        ("12.345", "KWD", 12345, 3),
        ("1.2345", "CLF", 12345, 4),
        ("10000000000.00", "USD", MAX_AMOUNT_MINOR, 2),
        ("1000000000000", "JPY", MAX_AMOUNT_MINOR, 0),
        ("0.07", "USD", 7, 2),
        ("8.20", "USD", 820, 2),  # 8.2 is not exact in binary floating point
    ],
)
def test_amount_is_converted_exactly(amount: str, currency: str, minor: int, scale: int) -> None:
    tx = accepted(amount=amount, currency=currency)
    assert (tx.amount_minor, tx.amount_scale, tx.currency) == (minor, scale, currency)


@pytest.mark.parametrize("value", [_DROP, None])
def test_optional_fields_absent_or_null(value: object) -> None:
    tx = accepted(device_id=value, lat=value, lon=value)
    assert (tx.device_id, tx.lat, tx.lon) == (None, None, None)


@pytest.mark.parametrize(("lat", "lon"), [(0, 0), (-90, -180), (90.0, 180.0), (-33.8688, 151.2093)])
def test_lat_lon_in_range(lat: float, lon: float) -> None:
    tx = accepted(lat=lat, lon=lon)
    assert (tx.lat, tx.lon) == (lat, lon)
    assert isinstance(tx.lat, float)


def test_unknown_fields_are_ignored() -> None:
    tx = accepted(extra={"nested": [1, 2, {"x": None}]}, note="caf\u00e9", pan_hint=None)
    assert tx.transaction_id == BASE["transaction_id"]


def test_duplicate_keys_last_wins() -> None:
    raw = record().replace(b'"amount": "123.45"', b'"amount": "1.00", "amount": "2.00"')
    result = decode(raw)
    assert isinstance(result, Transaction)
    assert result.amount_minor == 200


def test_luhn_invalid_sixteen_digits_are_not_a_pan() -> None:
    assert accepted(card_id="4111111111111112").card_id == "4111111111111112"


def test_max_lengths_are_accepted() -> None:
    tx = accepted(transaction_id="t" * 64, card_id="c" * 64, device_id="d" * 128)
    assert len(tx.transaction_id) == 64


# --- oversized ------------------------------------------------------------------------------


def test_oversized_is_checked_before_parsing() -> None:
    result = rejected(b"x" * (MAX_BYTES + 1), Reason.OVERSIZED)
    assert str(MAX_BYTES) in result.detail


def test_oversized_valid_json() -> None:
    raw = record(padding="p" * MAX_BYTES)
    rejected(raw, Reason.OVERSIZED)
    assert isinstance(decode_transaction(raw, max_bytes=len(raw)), Transaction)


# --- malformed_json -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"",
        b"[]",
        b'"a string"',
        b"42",
        b"null",
        b'{"transaction_id": "t"',
        record() + b" trailing",
        record().replace(b'"lat": 48.8566', b'"lat": NaN'),
        b"\xff\xfe{}",
        record(note="x").replace(b'"note": "x"', b'"note": "\xff"'),  # bad UTF-8, ignored field
        record().replace(b'"m_000482913"', b'"m_\xc3\x28"'),  # bad UTF-8 in a known field
        b'{"a": "\\ud800"}',  # lone surrogate escape
    ],
)
def test_malformed_json(raw: bytes) -> None:
    rejected(raw, Reason.MALFORMED_JSON)


def test_deep_nesting_does_not_raise() -> None:
    raw = b'{"x": ' + b"[" * 4000 + b"]" * 4000 + b"}"
    assert isinstance(decode(raw), Rejection)


# --- missing_field --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field",
    [
        "transaction_id",
        "card_id",
        "amount",
        "currency",
        "merchant_id",
        "merchant_category",
        "event_time",
    ],
)
def test_missing_field(field: str) -> None:
    result = rejected(record(**{field: _DROP}), Reason.MISSING_FIELD)
    assert field in result.detail


def test_empty_object_is_missing_fields() -> None:
    rejected(b"{}", Reason.MISSING_FIELD)


# --- invalid_field --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("transaction_id", ""),
        ("transaction_id", 12345),
        ("transaction_id", None),
        ("card_id", "c" * 65),
        ("card_id", ["tok"]),
        ("merchant_id", ""),
        ("merchant_id", "m" * 65),
        ("merchant_category", "541"),
        ("merchant_category", "54111"),
        ("merchant_category", 5411),
        ("merchant_category", "54a1"),
        ("merchant_category", "5411\n"),
        ("merchant_category", "\uff15\uff14\uff11\uff11"),  # full-width digits
        ("device_id", ""),
        ("device_id", "d" * 129),
        ("device_id", 7),
        ("currency", 840),
        ("lat", 90.5),
        ("lat", -91),
        ("lon", 180.01),
        ("lon", -181),
        ("lat", "48.85"),
        ("lat", True),
    ],
)
def test_invalid_field(field: str, value: object) -> None:
    result = rejected(record(**{field: value}), Reason.INVALID_FIELD)
    assert field in result.detail


@pytest.mark.parametrize("number", [b"1e400", b"-1e400", b"1" * 400])
def test_out_of_range_number_is_invalid(number: bytes) -> None:
    raw = record().replace(b'"lat": 48.8566', b'"lat": ' + number)
    assert rejected(raw, Reason.INVALID_FIELD).detail.startswith("lat")


@pytest.mark.parametrize("drop", ["lat", "lon"])
def test_lat_and_lon_go_together(drop: str) -> None:
    result = rejected(record(**{drop: _DROP}), Reason.INVALID_FIELD)
    assert "lat and lon" in result.detail


def test_lat_and_lon_null_and_number() -> None:
    rejected(record(lat=None), Reason.INVALID_FIELD)


# --- invalid_amount -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency"),
    [
        (12.34, "USD"),  # a JSON number, not a string
        (12, "USD"),
        (None, "USD"),
        (True, "USD"),
        ("-1.00", "USD"),
        ("-0", "USD"),
        ("+1.00", "USD"),
        ("NaN", "USD"),
        ("nan", "USD"),
        ("Infinity", "USD"),
        ("-Infinity", "USD"),
        ("1e5", "USD"),
        ("1E5", "USD"),
        ("1.234", "USD"),  # three decimals for a two-decimal currency
        ("100.5", "JPY"),
        ("100.0", "JPY"),
        ("1.2345", "KWD"),
        ("", "USD"),
        (".5", "USD"),
        ("5.", "USD"),
        ("01.00", "USD"),
        ("00", "USD"),
        ("1,00", "USD"),
        ("1.0.0", "USD"),
        (" 1.00", "USD"),
        ("1.00 ", "USD"),
        ("1_000", "USD"),
        ("\u0661\u0662", "USD"),  # Arabic-Indic digits
        ("10000000000.01", "USD"),  # 10**12 + 1 minor units
        ("1000000000001", "JPY"),
        ("9" * 30, "USD"),
        ("9" * 5000, "USD"),
    ],
)
def test_invalid_amount(amount: object, currency: str) -> None:
    rejected(record(amount=amount, currency=currency), Reason.INVALID_AMOUNT)


def test_negative_amount_says_so() -> None:
    result = rejected(record(amount="-1.00"), Reason.INVALID_AMOUNT)
    assert "negative" in result.detail


def test_too_many_decimals_names_the_exponent() -> None:
    result = rejected(record(amount="1.234"), Reason.INVALID_AMOUNT)
    assert "2 decimals" in result.detail


# --- unknown_currency -----------------------------------------------------------------------


@pytest.mark.parametrize("currency", ["XXX", "XAU", "XTS", "HRK", "ABC", "usd", "", "US", "EURO"])
def test_unknown_currency(currency: str) -> None:
    rejected(record(currency=currency), Reason.UNKNOWN_CURRENCY)


def test_unknown_currency_names_a_plausible_code_only() -> None:
    assert "'ABC'" in rejected(record(currency="ABC"), Reason.UNKNOWN_CURRENCY).detail
    weird = "4111111111111111"
    assert weird not in rejected(record(currency=weird), Reason.UNKNOWN_CURRENCY).detail


# --- invalid_event_time ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "event_time",
    [
        "1970-01-01T00:00:00Z",
        "1999-12-31T23:59:59.999Z",
        "2000-01-01T00:30:00+01:00",  # 1999-12-31T23:30Z once the offset is applied
        "2100-01-01T00:00:00Z",
        "2099-12-31T23:30:00-01:00",  # 2100-01-01T00:30Z
        "9999-12-31T23:59:59Z",
        0,
        -1,
        MIN_EVENT_TIME_MS - 1,
        MAX_EVENT_TIME_MS,
        1_767_225_600,  # epoch *seconds*: 1970
        10**30,
        "1767225600000",  # epoch ms as a string
        1.7672256e12,
        True,
        None,
        "",
        "2026-01-01",
        "2026-01-01T00:00Z",
        "2026-01-01T00:00:00",  # naive
        "2026-01-01T00:00:00.123",  # naive
        "2026-01-01T24:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-13-01T00:00:00Z",
        "0000-01-01T00:00:00Z",
        "2026-12-31T23:59:60Z",
        "2026-01-01T00:00:00+24:00",
        "2026-01-01T00:00:00+05:75",
        "2026-01-01T00:00:00+0530",
        "2026-01-01T00:00:00+05",
        "2026-01-01T00:00:00.Z",
        "2026-01-01T00:00:00,5Z",
        "20260101T000000Z",
        " 2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00Z ",
        "2026-W01-1T00:00:00Z",
        "\uff12026-01-01T00:00:00Z",
    ],
)
def test_invalid_event_time(event_time: object) -> None:
    rejected(record(event_time=event_time), Reason.INVALID_EVENT_TIME)


def test_naive_event_time_says_so() -> None:
    result = rejected(record(event_time="2026-01-01T00:00:00"), Reason.INVALID_EVENT_TIME)
    assert "naive" in result.detail


# --- pan_detected ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("card_id", "4111111111111111"),
        ("card_id", "4111 1111 1111 1111"),
        ("merchant_id", "4111111111111111"),
        ("transaction_id", "tx-4111-1111-1111-1111"),
        ("device_id", "4111 1111 1111 1111"),
        ("device_id", "pan=5555555555554444"),
        ("merchant_category", "4111111111111111"),
        ("card_id", "378282246310005"),
    ],
)
def test_pan_detected(field: str, value: str) -> None:
    result = rejected(record(**{field: value}), Reason.PAN_DETECTED)
    assert field in result.detail
    digits = value.replace(" ", "").replace("-", "")[-16:]
    assert digits[:8] not in result.detail
    assert digits[-8:] not in result.detail


def test_pan_wins_over_other_problems_after_decoding() -> None:
    raw = record(card_id="4111111111111111", currency="XXX", amount="-1")
    rejected(raw, Reason.PAN_DETECTED)


# --- the Rejection type ---------------------------------------------------------------------


def test_reason_codes_are_stable() -> None:
    assert {r.value for r in Reason} == {
        "oversized",
        "malformed_json",
        "missing_field",
        "invalid_field",
        "invalid_amount",
        "unknown_currency",
        "invalid_event_time",
        "pan_detected",
        "key_mismatch",
        "duplicate_transaction",
    }
    result = rejected(b"[]", Reason.MALFORMED_JSON)
    assert result.reason == "malformed_json"
    assert msgspec.json.decode(msgspec.json.encode(result))["reason"] == "malformed_json"


def test_rejection_is_frozen() -> None:
    result = rejected(b"[]", Reason.MALFORMED_JSON)
    with pytest.raises(AttributeError):
        result.reason = "x"  # type: ignore[misc]


# --- properties -----------------------------------------------------------------------------

_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=10,
)
_FIELD_VALUES = {
    name: st.sampled_from([value, _DROP])
    | _JSON
    | st.sampled_from(["4111111111111111", "", "1.5", "JPY", "2026-01-01T00:00:00+01:00"])
    for name, value in BASE.items()
}


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=400))
def test_decode_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    result = decode_transaction(raw, max_bytes=300)
    assert isinstance(result, Transaction | Rejection)
    if isinstance(result, Rejection):
        assert result.reason in set(Reason)


@settings(max_examples=500, deadline=None)
@given(st.fixed_dictionaries(_FIELD_VALUES))
def test_decode_never_raises_on_json_records(fields: dict[str, Any]) -> None:
    raw = json.dumps({k: v for k, v in fields.items() if v is not _DROP}).encode()
    result = decode(raw)
    assert isinstance(result, Transaction | Rejection)
    if isinstance(result, Transaction):
        assert MIN_EVENT_TIME_MS <= result.event_time_ms < MAX_EVENT_TIME_MS
        assert 0 <= result.amount_minor <= MAX_AMOUNT_MINOR


@settings(max_examples=300, deadline=None)
@given(
    instant=st.datetimes(min_value=dt.datetime(2000, 1, 2), max_value=dt.datetime(2099, 12, 30)),
    offset_minutes=st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
)
def test_rfc3339_round_trip(instant: dt.datetime, offset_minutes: int) -> None:
    zone = dt.timezone(dt.timedelta(minutes=offset_minutes))
    aware = instant.replace(tzinfo=dt.UTC).astimezone(zone)
    expected = (aware - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(milliseconds=1)
    tx = accepted(event_time=aware.isoformat())
    assert (tx.event_time_ms, tx.utc_offset_min) == (expected, offset_minutes)
