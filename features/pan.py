"""Detection and masking of primary account numbers (card numbers, "PANs").

What counts as a PAN here
    A *run* is a maximal sequence of ASCII digits in which consecutive digits may be
    separated by one space or one dash (``4111 1111 1111 1111``, ``4111-1111-1111-1111``).
    The separators split a run into groups. A PAN candidate is a run, or any stretch of
    whole consecutive groups of a run, holding 13 to 19 digits; it is a PAN when those digits
    pass the Luhn check. Looking at stretches of groups catches a PAN written next to
    another number (``4111 1111 1111 1111 123``).

    Not caught, on purpose: a PAN glued without separator to more digits (a 20+ digit run
    such as a zero-padded ``0004111111111111111``). Every 13-19 digit window of a long
    number passes Luhn one time in ten, so flagging windows would reject or mangle most long
    numeric identifiers.

False positives
    Any 13-19 digit number passes Luhn with probability 1/10 (an epoch-millisecond
    timestamp, a long numeric id). Detection errs on the side of flagging those.

Masking (PCI DSS style)
    The first 6 and last 4 digits of a PAN are kept, every other digit becomes ``*``;
    separators and length are kept. :func:`mask_pans` works on raw bytes (any encoding,
    even invalid UTF-8: only ASCII digits, spaces and dashes are looked at) and repeats until
    nothing PAN-like is left, so its output never contains a Luhn-valid candidate.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final, NamedTuple

MIN_PAN_DIGITS: Final = 13
MAX_PAN_DIGITS: Final = 19
_KEEP_FIRST: Final = 6
_KEEP_LAST: Final = 4

# A maximal run of digits, consecutive digits joined by at most one space or dash.
_RUN: Final = re.compile(r"[0-9](?:[ -]?[0-9])*")
_GROUP: Final = re.compile(r"[0-9]+")
# Quick necessary condition for a candidate: 13 digits with nothing but separators between
# them. bytes.translate maps each byte to its class (digit "d", separator "s", other "."), the
# separators are dropped, then a substring search: all in C, several times faster than a
# regex scan (the regex engine is slow on the repeated groups a precise pattern needs).
_CLASSES: Final = bytes(
    100 if 48 <= b <= 57 else 115 if b in {32, 45} else 46  # "d", "s", "."
    for b in range(256)
)
_THIRTEEN_DIGITS: Final = b"d" * MIN_PAN_DIGITS
_DOUBLED: Final = (0, 2, 4, 6, 8, 1, 3, 5, 7, 9)  # d -> digit sum of 2*d


class PanMatch(NamedTuple):
    """A PAN found in a text: its span ``text[start:end]`` and its masked form.

    The digits in clear are deliberately not kept, so a match can be logged.
    """

    start: int
    end: int
    masked: str


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` is a non-empty string of ASCII digits passing the Luhn (mod 10) check."""
    if not (digits.isascii() and digits.isdigit()):
        return False
    total = sum(ord(c) - 48 for c in digits[-1::-2])
    total += sum(_DOUBLED[ord(c) - 48] for c in digits[-2::-2])
    return total % 10 == 0


def _candidate_spans(text: str) -> Iterator[tuple[int, int, str]]:
    """Yield ``(start, end, digits)`` for every 13-19 digit stretch of whole groups."""
    for run in _RUN.finditer(text):
        run_text = run.group()
        if len(run_text) - run_text.count(" ") - run_text.count("-") < MIN_PAN_DIGITS:
            continue
        groups = [(g.start(), g.end(), g.group()) for g in _GROUP.finditer(text, *run.span())]
        for first, (start, _, _) in enumerate(groups):
            digits = ""
            for index in range(first, len(groups)):
                _, end, group = groups[index]
                digits += group
                if len(digits) > MAX_PAN_DIGITS:
                    break
                if len(digits) >= MIN_PAN_DIGITS:
                    yield start, end, digits


def _pan_spans(text: str) -> list[tuple[int, int]]:
    return [(s, e) for s, e, digits in _candidate_spans(text) if luhn_valid(digits)]


def _mask_span(chars: list[str], start: int, end: int) -> None:
    """Replace in place all digits of ``chars[start:end]`` but the first 6 and last 4."""
    positions = [i for i in range(start, end) if chars[i] != " " and chars[i] != "-"]
    for i in positions[_KEEP_FIRST : len(positions) - _KEEP_LAST]:
        chars[i] = "*"


def might_contain_pan(text: str) -> bool:
    """Cheap necessary condition for :func:`contains_pan`: no regex, no Luhn.

    ``False`` means no PAN for sure; a caller may scan several fields joined by ``"\\0"``
    at once and look closer only on ``True``.
    """
    return len(text) >= MIN_PAN_DIGITS and _quick_check(text.encode("utf-8", "surrogatepass"))


def _quick_check(raw: bytes) -> bool:
    return _THIRTEEN_DIGITS in raw.translate(_CLASSES).replace(b"s", b"")


def find_pans(text: str) -> list[PanMatch]:
    """Every PAN in ``text`` (spans may overlap when groups are ambiguous), in text order."""
    if not might_contain_pan(text):
        return []
    matches = []
    for start, end in _pan_spans(text):
        chars = list(text[start:end])
        _mask_span(chars, 0, len(chars))
        matches.append(PanMatch(start, end, "".join(chars)))
    return matches


def contains_pan(text: str) -> bool:
    """Whether ``text`` holds a PAN; a few C-level byte operations when it obviously does not."""
    if not might_contain_pan(text):
        return False
    return any(luhn_valid(digits) for _, _, digits in _candidate_spans(text))


def mask_text(text: str) -> str:
    """``text`` with every PAN masked, repeated until no PAN is left."""
    while spans := (_pan_spans(text) if might_contain_pan(text) else []):
        chars = list(text)
        for start, end in spans:
            _mask_span(chars, start, end)
        text = "".join(chars)  # each pass masks >= 3 digits, so this ends
    return text


def mask_pans(raw: bytes) -> bytes:
    """``raw`` with every PAN masked (first 6 and last 4 digits kept), anywhere in the bytes.

    Same length as ``raw``; only ASCII digits are ever changed, into ``*``.
    """
    if not _quick_check(raw):
        return raw
    # latin-1 maps each byte to one code point and back: exact for any bytes.
    return mask_text(raw.decode("latin-1")).encode("latin-1")
