"""Detection and masking of card numbers (PANs)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.pan import contains_pan, find_pans, luhn_valid, mask_pans, mask_text

# Well-known test card numbers (all Luhn-valid).
VISA = "4111111111111111"
VISA_13 = "4222222222222"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
DISCOVER = "6011111111111117"
VISA_19 = "4000000000000000006"


def with_check_digit(body: str) -> str:
    """``body`` followed by the digit that makes it Luhn-valid (written independently)."""
    total = 0
    for position, char in enumerate(reversed(body)):
        digit = int(char)
        if position % 2 == 0:  # these get doubled once the check digit is appended
            digit = digit * 2 - 9 if digit > 4 else digit * 2
        total += digit
    return body + str((10 - total % 10) % 10)


def oracle_has_pan(text: str) -> bool:
    """Brute force: any digit-bounded stretch of digits and single separators holding 13-19
    Luhn-valid digits."""
    for i, char in enumerate(text):
        if not char.isdigit() or not char.isascii() or (i and text[i - 1] in "0123456789"):
            continue
        for j in range(i + 1, min(len(text), i + 40) + 1):
            stretch = text[i:j]
            if not re.fullmatch(r"[0-9]+(?:[ -][0-9]+)*", stretch):
                continue
            if j < len(text) and text[j] in "0123456789":
                continue
            digits = stretch.replace(" ", "").replace("-", "")
            if 13 <= len(digits) <= 19 and int(with_check_digit(digits[:-1])[-1]) == int(
                digits[-1]
            ):
                return True
    return False


@pytest.mark.parametrize(
    ("digits", "valid"),
    [
        (VISA, True),
        (VISA_13, True),
        (MASTERCARD, True),
        (AMEX, True),
        (DISCOVER, True),
        (VISA_19, True),
        ("79927398713", True),  # the textbook example
        ("4111111111111112", False),
        ("1234567890123456", False),
        ("79927398710", False),
        ("", False),
        ("4111 1111 1111 1111", False),  # digits only
        ("\u0664\u0661\u0661\u0661", False),  # Arabic-Indic digits are not ASCII
    ],
)
def test_luhn(digits: str, valid: bool) -> None:
    assert luhn_valid(digits) is valid


@pytest.mark.parametrize(
    "text",
    [
        VISA,
        VISA_13,
        VISA_19,
        AMEX,
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111 1111-1111 1111",
        "3782 822463 10005",
        "card=4111111111111111;",
        "abc4111111111111111xyz",
        "ref 4111 1111 1111 1111 123",  # next to another number
        "tok_5555555555554444",
    ],
)
def test_pans_are_found(text: str) -> None:
    assert contains_pan(text)
    assert find_pans(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "4111111111111112",  # Luhn-invalid
        "1234567890123456",
        "411111111111",  # 12 digits, Luhn-valid: too short
        "41111111111111111111",  # 20 digits: too long
        "4111  1111 1111 1111",  # a double space breaks the run
        "4111 - 1111 - 1111 - 1111",
        "4111.1111.1111.1111",
        "3f2b6c1e-9a7d-4c55-8e21-0b6f4a1d2c3e",
        "tok_9fK2mQ7xLp4vB8sZ1cN6",
        "\uff14" * 16,  # full-width digits are not ASCII digits
    ],
)
def test_non_pans_are_not_found(text: str) -> None:
    assert not contains_pan(text)
    assert find_pans(text) == []


def test_find_pans_reports_span_and_mask_only() -> None:
    text = "pay 4111 1111 1111 1111 now"
    [match] = find_pans(text)
    assert text[match.start : match.end] == "4111 1111 1111 1111"
    assert match.masked == "4111 11** **** 1111"
    assert VISA not in repr(match)


def test_mask_keeps_first_six_last_four_and_length() -> None:
    raw = b'{"pan":"4111111111111111","n":5555555555554444,"amex":"3782-822463-10005"}'
    masked = mask_pans(raw)
    assert masked == b'{"pan":"411111******1111","n":555555******4444,"amex":"3782-82****-*0005"}'
    assert len(masked) == len(raw)


def test_mask_leaves_other_bytes_alone() -> None:
    raw = b"\xff\xfe caf\xc3\xa9 4111 1111 1111 1111 \x00 1234567890123456"
    assert mask_pans(raw) == b"\xff\xfe caf\xc3\xa9 4111 11** **** 1111 \x00 1234567890123456"


def test_mask_without_pan_returns_input() -> None:
    raw = b'{"transaction_id":"3f2b6c1e-9a7d-4c55-8e21-0b6f4a1d2c3e","amount":"12.34"}'
    assert mask_pans(raw) == raw


def test_mask_text_masks_every_pan() -> None:
    assert mask_text(f"{VISA} and {MASTERCARD}") == "411111******1111 and 555555******4444"


def test_mask_is_repeated_until_nothing_is_left() -> None:
    # The kept head "4111 11" of a masked PAN forms a new 13-digit PAN with the number
    # before it: a single pass would leave it in clear.
    [head] = [f"123456{d}" for d in "0123456789" if luhn_valid(f"123456{d}411111")]
    text = f"{head} 4111 1111 1111 1111"
    assert contains_pan(f"{head} 4111 11**")
    masked = mask_text(text)
    assert not contains_pan(masked)
    assert not oracle_has_pan(masked)
    assert masked.endswith("1111")


_PAN_TEXT = st.text(alphabet="0123456789 -x*\n", max_size=120)


@settings(max_examples=300, deadline=None)
@given(_PAN_TEXT)
def test_masked_text_never_holds_a_pan(text: str) -> None:
    masked = mask_text(text)
    assert len(masked) == len(text)
    assert not oracle_has_pan(masked)
    for before, after in zip(text, masked, strict=True):
        assert after == before or (before.isdigit() and after == "*")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200) | _PAN_TEXT.map(str.encode))
def test_masked_bytes_never_hold_a_pan(raw: bytes) -> None:
    masked = mask_pans(raw)
    assert len(masked) == len(raw)
    assert not oracle_has_pan(masked.decode("latin-1"))


@settings(max_examples=200, deadline=None)
@given(
    body=st.text(alphabet="0123456789", min_size=12, max_size=18),
    prefix=st.text(alphabet="abc_:=\" '", max_size=5),
    suffix=st.text(alphabet="abc_:=\" '", max_size=5),
)
def test_any_luhn_valid_number_is_detected_and_masked(body: str, prefix: str, suffix: str) -> None:
    pan = with_check_digit(body)
    assert luhn_valid(pan)
    text = f"{prefix}{pan}{suffix}"
    assert contains_pan(text)
    masked = mask_pans(text.encode()).decode()
    stars = "*" * (len(pan) - 10)
    assert masked == f"{prefix}{pan[:6]}{stars}{pan[-4:]}{suffix}"
