"""Recorded decisions beside replayed ones, field by field: what ``fraudscore replay`` reports.

Pure: :func:`compare` takes the decision records of the audit table and those a replay of the
input log computed for the same event-time range, pairs them by transaction id and returns
the counts and every difference (transaction id, field, both values). Each record is
compared as a flat map of texts (:func:`fields_of`): every top-level field, ``source`` as
``topic/partition@offset`` and each feature as ``features.<name>``; floats as Python's
shortest repr, which tells any two doubles apart, so equal texts mean equal bits.

A transaction the caller marks with a *caveat* (e.g. ``history truncated``: its input
partition no longer starts at offset 0, so the replay lacks part of its card's history) is
not called a mismatch when it differs or is missing on one side: its differences carry the
caveat as their kind and count as *unproven*. An identical one counts as identical: its
values are equal either way. Duplicates are never excused.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Final

import msgspec

from models.pipeline import DecisionRecord


class Kind(StrEnum):
    """What a :class:`Difference` is (a caveat's text is a kind too)."""

    DIFFERENT = "different"
    MISSING_IN_AUDIT = "missing in audit"  # replayed, but the audit table has no row
    MISSING_IN_REPLAY = "missing in replay"  # a row the replay did not decide
    DUPLICATE = "duplicate"  # several records of one transaction on a side


HISTORY_TRUNCATED: Final = "history truncated"
# what a caveat can explain: a lost history changes values, dead-letters a record as a
# duplicate or not, and a deleted input record cannot be replayed; two audit rows it cannot
_EXCUSABLE: Final = (Kind.DIFFERENT, Kind.MISSING_IN_AUDIT, Kind.MISSING_IN_REPLAY)
NO_RECORD: Final = "-"  # the value shown for a side that has no record


@dataclass(frozen=True, slots=True)
class Difference:
    transaction_id: str
    kind: str  # a Kind, or the transaction's caveat
    field: str
    recorded: str | None
    replayed: str | None


@dataclass(frozen=True, slots=True)
class Comparison:
    replayed: int  # decisions the replay computed in the range
    compared: int  # transactions with one record on each side
    identical: int
    different: int  # differ, and nothing excuses it
    unproven: int  # differ, with a caveat (e.g. history truncated)
    missing_in_audit: int
    missing_in_replay: int
    duplicates: int  # transactions with several records on either side
    differences: tuple[Difference, ...]

    @property
    def identical_all(self) -> bool:
        """Nothing differs, nothing is missing or duplicated."""
        return not self.differences

    def counts(self) -> dict[str, int]:
        return {
            "replayed": self.replayed,
            "compared": self.compared,
            "identical": self.identical,
            "different": self.different,
            "unproven": self.unproven,
            "missing_in_audit": self.missing_in_audit,
            "missing_in_replay": self.missing_in_replay,
            "duplicates": self.duplicates,
        }


def fields_of(record: DecisionRecord) -> dict[str, str | None]:
    """The record as a flat map of texts (None: the field is null or absent)."""
    values = msgspec.structs.asdict(record)
    features: dict[str, float] = values.pop("features")
    source = record.source
    flat = {name: _text(value) for name, value in values.items() if name != "source"}
    flat["source"] = f"{source.topic}/{source.partition}@{source.offset}"
    flat.update({f"features.{name}": _text(value) for name, value in features.items()})
    return flat


def _text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, tuple):
        return ",".join(str(v) for v in value)
    return str(value)


def field_differences(recorded: DecisionRecord, replayed: DecisionRecord) -> list[Difference]:
    """Every field whose text differs, in the recorded record's field order."""
    was, now = fields_of(recorded), fields_of(replayed)
    names = [*was, *(name for name in now if name not in was)]
    return [
        Difference(recorded.transaction_id, Kind.DIFFERENT, name, was.get(name), now.get(name))
        for name in names
        if was.get(name) != now.get(name)
    ]


def compare(
    recorded: Iterable[DecisionRecord],
    replayed: Iterable[DecisionRecord],
    caveats: Mapping[str, str] | None = None,
) -> Comparison:
    """Pair ``recorded`` and ``replayed`` by transaction id and compare each pair;
    ``caveats``: transaction id → why a difference of it cannot be called a mismatch."""
    caveats = caveats or {}
    was, now = _by_id(recorded), _by_id(replayed)
    counts: dict[str, int] = defaultdict(int)
    differences: list[Difference] = []
    for transaction_id in sorted(was.keys() | now.keys()):
        found = _pair(transaction_id, was.get(transaction_id, []), now.get(transaction_id, []))
        kind, diffs = found
        if kind in _EXCUSABLE and transaction_id in caveats:
            kind, diffs = "unproven", _with_kind(diffs, caveats[transaction_id])
        counts[kind] += 1
        differences.extend(diffs)
    compared = counts["identical"] + counts[Kind.DIFFERENT] + counts["unproven"]
    return Comparison(
        replayed=sum(len(records) for records in now.values()),
        compared=compared,
        identical=counts["identical"],
        different=counts[Kind.DIFFERENT],
        unproven=counts["unproven"],
        missing_in_audit=counts[Kind.MISSING_IN_AUDIT],
        missing_in_replay=counts[Kind.MISSING_IN_REPLAY],
        duplicates=counts[Kind.DUPLICATE],
        differences=tuple(differences),
    )


def _by_id(records: Iterable[DecisionRecord]) -> dict[str, list[DecisionRecord]]:
    grouped: dict[str, list[DecisionRecord]] = defaultdict(list)
    for record in records:
        grouped[record.transaction_id].append(record)
    return grouped


def _pair(
    transaction_id: str, was: Sequence[DecisionRecord], now: Sequence[DecisionRecord]
) -> tuple[str, list[Difference]]:
    """How one transaction compares (``identical`` or a :class:`Kind`) and its differences."""
    if len(was) > 1 or len(now) > 1:
        counts = Difference(transaction_id, Kind.DUPLICATE, "records", str(len(was)), str(len(now)))
        return Kind.DUPLICATE, [counts]
    if not was:
        return Kind.MISSING_IN_AUDIT, [_missing(Kind.MISSING_IN_AUDIT, None, now[0])]
    if not now:
        return Kind.MISSING_IN_REPLAY, [_missing(Kind.MISSING_IN_REPLAY, was[0], None)]
    diffs = field_differences(was[0], now[0])
    return (Kind.DIFFERENT, diffs) if diffs else ("identical", [])


def _missing(
    kind: Kind, recorded: DecisionRecord | None, replayed: DecisionRecord | None
) -> Difference:
    """A transaction on one side only, shown with its decision and source."""
    present = recorded or replayed
    assert present is not None
    text = f"{present.decision} ({_text(present.score)}), {fields_of(present)['source']}"
    return Difference(
        present.transaction_id,
        kind,
        "decision",
        NO_RECORD if recorded is None else text,
        NO_RECORD if replayed is None else text,
    )


def _with_kind(diffs: Iterable[Difference], kind: str) -> list[Difference]:
    return [Difference(d.transaction_id, kind, d.field, d.recorded, d.replayed) for d in diffs]
