"""The card feature vectors of historical transactions, computed as the online worker computes
them (the merchant features join them in :func:`models.pipeline.featurize`, which training
runs: :mod:`models.training`).

Training must see the very features the worker scores with (no training/serving skew), so
this runs the worker's own per-transaction step (:func:`features.stream.process`) over a
log, with the in-memory store. The watermark is per input partition: give it one
partition's transactions in offset order (the decisions topic records each transaction's
``source`` partition and offset), or a log where all cards may share one watermark.

- :func:`replay` takes :class:`~features.transaction.Transaction` objects;
- :func:`replay_records` takes wire-format records (mappings with the input topic's JSON
  fields, e.g. ``pyarrow.Table.to_pylist()``, or a pandas ``DataFrame.to_dict("records")``)
  and validates them as the worker does, and :func:`feature_rows` turns a table (anything
  with ``to_pylist()``, such as a ``pyarrow.Table``) into one row of features per record,
  ready for ``pyarrow.Table.from_pylist``.

No I/O and no library beyond msgspec: the caller reads the data.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import msgspec

from features.card import CARD_FEATURE_NAMES
from features.stream import DEFAULT_STREAM_PARAMS, MemoryCardStore, Outcome, StreamParams, process
from features.transaction import Transaction
from features.validation import Reason, Rejection, decode_transaction

MAX_RECORD_BYTES = 1 << 20  # records are re-encoded here, so the worker's byte limit is moot


class RowTable(Protocol):
    """A table that gives its rows as dicts (``pyarrow.Table`` does)."""

    def to_pylist(self) -> list[dict[str, Any]]: ...


def replay(
    transactions: Iterable[Transaction], params: StreamParams = DEFAULT_STREAM_PARAMS
) -> list[Outcome]:
    """The outcome (features, late flag, or duplicate) of each transaction, in order."""
    store = MemoryCardStore()
    return [process(store, txn, params) for txn in transactions]


def replay_records(
    records: Iterable[Mapping[str, object]], params: StreamParams = DEFAULT_STREAM_PARAMS
) -> list[Outcome | Rejection]:
    """:func:`replay` over wire-format records; an invalid one gives its :class:`Rejection`."""
    store = MemoryCardStore()
    out: list[Outcome | Rejection] = []
    for record in records:
        decoded = decode_transaction(msgspec.json.encode(record), max_bytes=MAX_RECORD_BYTES)
        out.append(decoded if isinstance(decoded, Rejection) else process(store, decoded, params))
    return out


def feature_rows(
    table: RowTable, params: StreamParams = DEFAULT_STREAM_PARAMS
) -> list[dict[str, object]]:
    """One row per record of ``table``: its ``transaction_id``, ``late``, ``rejected`` (the
    reason code, ``duplicate_transaction`` for a duplicate delivery, else None) and the
    features by name (None when it was not scored)."""
    records = table.to_pylist()
    rows: list[dict[str, object]] = []
    for record, outcome in zip(records, replay_records(records, params), strict=True):
        row: dict[str, object] = {"transaction_id": record.get("transaction_id")}
        if isinstance(outcome, Rejection):
            row |= {"late": False, "rejected": outcome.reason}
        else:
            rejected = Reason.DUPLICATE_TRANSACTION if outcome.vector is None else None
            row |= {"late": outcome.late, "rejected": rejected}
        vector = None if isinstance(outcome, Rejection) else outcome.vector
        row |= dict(
            zip(CARD_FEATURE_NAMES, vector or (None,) * len(CARD_FEATURE_NAMES), strict=True)
        )
        rows.append(row)
    return rows
