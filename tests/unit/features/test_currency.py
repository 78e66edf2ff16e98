"""The ISO 4217 minor-unit table."""

from __future__ import annotations

import pytest

from features.currency import MINOR_UNIT_EXPONENTS, minor_unit_exponent


@pytest.mark.parametrize(
    ("code", "exponent"),
    [
        ("USD", 2),
        ("EUR", 2),
        ("GBP", 2),
        ("JPY", 0),
        ("KRW", 0),
        ("ISK", 0),
        ("XOF", 0),
        ("KWD", 3),
        ("BHD", 3),
        ("TND", 3),
        ("CLF", 4),
        ("UYW", 4),
        ("CLP", 0),
        # recent additions and replacements
        ("XCG", 2),
        ("ZWG", 2),
        ("SLE", 2),
        ("VED", 2),
        ("VES", 2),
        ("MRU", 2),
        ("STN", 2),
    ],
)
def test_known_exponents(code: str, exponent: int) -> None:
    assert minor_unit_exponent(code) == exponent


@pytest.mark.parametrize(
    "code",
    [
        "XXX",  # "no currency": minor unit N.A.
        "XTS",  # testing code
        "XAU",  # gold
        "XDR",  # SDR: minor unit N.A.
        "HRK",  # withdrawn 2023
        "BGN",  # withdrawn: euro since 2026-01-01
        "ANG",  # replaced by XCG
        "ZWL",  # replaced by ZWG
        "usd",  # codes are upper case
        "",
        "US",
        "USDD",
    ],
)
def test_unknown_or_inactive_codes_have_no_exponent(code: str) -> None:
    assert minor_unit_exponent(code) is None


def test_table_shape() -> None:
    assert len(MINOR_UNIT_EXPONENTS) >= 150
    for code, exponent in MINOR_UNIT_EXPONENTS.items():
        assert len(code) == 3
        assert code.isascii()
        assert code.isupper()
        assert exponent in {0, 2, 3, 4}


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        MINOR_UNIT_EXPONENTS["ABC"] = 2  # type: ignore[index]
