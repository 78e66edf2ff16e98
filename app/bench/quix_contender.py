"""The Quix Streams contender of ``fraudscore bench``: transactions in, one decision per
transaction out, exactly-once, written as Quix's documentation recommends for per-record
state ("Stateful processing": ``sdf.apply(..., stateful=True)`` with the key-scoped
``State`` in Quix's RocksDB store, changelogged by Quix).

Why not ``sdf.sliding_window(...).agg(...).current()``: a window operator replaces the record
with the window's aggregate, emits once per *updated window* (a sliding window may update
several per record), stamps its result with the window's start, and six window sizes would
be six branches with no per-transaction join back to one record. A decision per transaction
with all window features is therefore a stateful ``apply`` over the card's recent events,
with the features of :mod:`app.bench.peer_pipeline` (the same code as the Faust contender).

Runs in its own virtualenv (``.venv-quix``, ``.ci/install-bench``): Quix 3.28 pins
confluent-kafka < 2.13 and pydantic < 2.14, older than fraudscore's (docs/adr). Configured by
:class:`~app.bench.peer_pipeline.ContenderConfig` in the environment; runs until SIGTERM.
"""

from __future__ import annotations

from typing import Any

from quixstreams import Application, State, message_context

from app.bench.peer_pipeline import (
    MAX_RECORD_BYTES,
    CardEvents,
    PeerDecider,
    contender_config,
    observe,
)
from features.transaction import Transaction
from features.validation import decode_transaction
from models.pipeline import SourceRecord


def main() -> None:
    config = contender_config()
    decider = PeerDecider.default(config)
    app = Application(
        broker_address=config.bootstrap,
        consumer_group=config.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once" if config.exactly_once else "at-least-once",
        commit_interval=config.commit_interval_s,
        commit_every=config.commit_every,
        state_dir=config.state_dir,
        loglevel="WARNING",
    )
    source = app.topic(config.input_topic, value_deserializer="bytes")
    sink = app.topic(config.output_topic, value_serializer="bytes")

    def decide(raw: bytes, state: State) -> bytes | None:
        txn = decode_transaction(raw, max_bytes=MAX_RECORD_BYTES)
        if not isinstance(txn, Transaction):
            return None  # the peers keep no dead-letter topic; the input has no bad records
        events: CardEvents = state.get("events", [])
        events, features = observe(events, txn)
        state.set("events", events)
        context = message_context()
        at = SourceRecord(context.topic, context.partition, context.offset, None, raw)
        return decider.decide(txn, features, at)

    def decided(value: Any) -> bool:
        return value is not None

    sdf = app.dataframe(source).apply(decide, stateful=True).filter(decided)
    sdf.to_topic(sink)
    app.run()


if __name__ == "__main__":
    main()
