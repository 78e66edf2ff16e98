"""Parquet files of a generated dataset: the input log and its labels, for training.

A dataset directory holds:

- ``transactions.parquet``: one row per record in arrival order: ``offset`` (the arrival
  position), ``key`` and ``value`` (the exact bytes a producer sends to the input topic, so
  training decodes what the worker decodes, event-time offsets included), a few decoded
  columns for people and queries (``transaction_id``, ``card_id``, ``merchant_id``,
  ``merchant_category``, ``amount``, ``currency``, ``event_time``), and ``scenario``, the
  generator's ground truth (null for genuine; evaluation reports use it, training does not);
- ``labels.parquet``: the label records in the order they are reported (``reported_at``).

Times are UTC timestamps in milliseconds. Card numbers never appear: card ids are tokens.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.parquet as pq

from models.label import LabelRecord
from models.pipeline import SourceRecord
from models.synthetic import SyntheticTransaction, encode_record
from sinks.errors import DatasetError

TRANSACTIONS_FILE = "transactions.parquet"
LABELS_FILE = "labels.parquet"
SOURCE_TOPIC = "transactions"  # the topic name training gives the records it reads back
_MS = pa.timestamp("ms", tz="UTC")
TRANSACTION_SCHEMA = pa.schema(
    [
        ("offset", pa.int64()),
        ("key", pa.binary()),
        ("value", pa.binary()),
        ("transaction_id", pa.string()),
        ("card_id", pa.string()),
        ("merchant_id", pa.string()),
        ("merchant_category", pa.string()),
        ("amount", pa.string()),
        ("currency", pa.string()),
        ("event_time", _MS),
        ("scenario", pa.string()),
    ]
)
LABEL_SCHEMA = pa.schema(
    [
        ("transaction_id", pa.string()),
        ("card_id", pa.string()),
        ("merchant_id", pa.string()),
        ("label", pa.string()),
        ("event_time", _MS),
        ("reported_at", _MS),
    ]
)


class ParquetDatasetSink:
    """Writes a dataset directory: transactions as they come, labels sorted at the end."""

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._writer = pq.ParquetWriter(directory / TRANSACTIONS_FILE, TRANSACTION_SCHEMA)
        self._offset = 0
        self._labels: list[LabelRecord] = []

    def write(self, items: list[SyntheticTransaction], labels: Iterable[LabelRecord]) -> None:
        """Append transactions (in arrival order) and keep their labels for :meth:`close`."""
        rows = [
            {
                "offset": self._offset + i,
                "key": item.key,
                "value": encode_record(item.record),
                **{name: item.record[name] for name in _WIRE_COLUMNS},
                "event_time": item.event_time_ms,
                "scenario": item.scenario,
            }
            for i, item in enumerate(items)
        ]
        self._writer.write_table(pa.Table.from_pylist(rows, schema=TRANSACTION_SCHEMA))
        self._offset += len(items)
        self._labels.extend(labels)

    def close(self) -> None:
        self._writer.close()
        self._labels.sort(key=lambda label: (label.reported_at_ms, label.transaction_id))
        rows = [_label_row(label) for label in self._labels]
        pq.write_table(
            pa.Table.from_pylist(rows, schema=LABEL_SCHEMA), self.directory / LABELS_FILE
        )

    @property
    def labels(self) -> list[LabelRecord]:
        return self._labels

    def __enter__(self) -> ParquetDatasetSink:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


_WIRE_COLUMNS = (
    "transaction_id",
    "card_id",
    "merchant_id",
    "merchant_category",
    "amount",
    "currency",
)


def _label_row(label: LabelRecord) -> dict[str, object]:
    return {
        "transaction_id": label.transaction_id,
        "card_id": label.card_id,
        "merchant_id": label.merchant_id,
        "label": label.label,
        "event_time": label.event_time_ms,
        "reported_at": label.reported_at_ms,
    }


def _open(directory: Path, name: str) -> pq.ParquetFile:
    path = directory / name
    if not path.is_file():
        raise DatasetError(f"no {path}: generate a dataset first (`fraudscore generate --out DIR`)")
    return pq.ParquetFile(path)


def count_records(directory: Path) -> int:
    return int(_open(directory, TRANSACTIONS_FILE).metadata.num_rows)


def read_records(directory: Path) -> Iterator[SourceRecord]:
    """The input log as the worker would read it, in arrival order."""
    source = _open(directory, TRANSACTIONS_FILE)
    for batch in source.iter_batches(columns=["offset", "key", "value"], batch_size=50_000):
        columns = batch.to_pydict()
        for offset, key, value in zip(
            columns["offset"], columns["key"], columns["value"], strict=True
        ):
            yield SourceRecord(SOURCE_TOPIC, 0, offset, key, value)


def read_scenarios(directory: Path) -> dict[int, str]:
    """The generator's scenario of each fraud record, by offset."""
    table = _open(directory, TRANSACTIONS_FILE).read(columns=["offset", "scenario"])
    columns = table.to_pydict()
    return {
        offset: scenario
        for offset, scenario in zip(columns["offset"], columns["scenario"], strict=True)
        if scenario is not None
    }


def read_labels(directory: Path) -> list[LabelRecord]:
    table = _open(directory, LABELS_FILE).read()
    ms = {name: table.column(name).cast(pa.int64()).to_pylist() for name in _TIMES}
    strings = {name: table.column(name).to_pylist() for name in _LABEL_STRINGS}
    return [
        LabelRecord(
            transaction_id=strings["transaction_id"][i],
            card_id=strings["card_id"][i],
            merchant_id=strings["merchant_id"][i],
            label=strings["label"][i],
            event_time_ms=ms["event_time"][i],
            reported_at_ms=ms["reported_at"][i],
        )
        for i in range(table.num_rows)
    ]


_TIMES = ("event_time", "reported_at")
_LABEL_STRINGS = ("transaction_id", "card_id", "merchant_id", "label")
