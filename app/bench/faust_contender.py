"""The faust-streaming contender of ``fraudscore bench``, done the textbook way: one agent
over the input topic, a RocksDB-backed ``Table`` of each card's recent events (changelogged
by Faust), ``processing_guarantee="exactly_once"``, one decision per transaction sent to the
output topic with ``topic.send``. Features, model and policy are
:mod:`app.bench.peer_pipeline` (the same code as the Quix contender). Faust's own commit
cadence (``broker_commit_interval`` 2.8 s): at fraudscore's 25 ms its commit timer overran
every interval ("Timer commit is overlapping", 100-300 ms per commit on this machine) and
the textbook app keeps the default.

What Faust's exactly-once gives here is what the benchmark verifies and reports:
/work/shared/design/streaming-core.md found that ``topic.send`` from an agent does not go
through the transactional producer, and that table writes are not part of the transaction.

Configured by :class:`~app.bench.peer_pipeline.ContenderConfig` in the environment; runs until
SIGTERM (Faust's worker stops on it).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from pathlib import Path

import faust

from app.bench.peer_pipeline import MAX_RECORD_BYTES, PeerDecider, contender_config, observe
from features.transaction import Transaction
from features.validation import decode_transaction
from models.pipeline import SourceRecord

_PARTITIONS = 4


def build() -> faust.Worker:
    config = contender_config()
    decider = PeerDecider.default(config)
    Path(config.state_dir).mkdir(parents=True, exist_ok=True)
    app = faust.App(
        config.group,
        broker=f"kafka://{config.bootstrap}",
        store="rocksdb://",
        datadir=config.state_dir,
        processing_guarantee="exactly_once" if config.exactly_once else "at_least_once",
        consumer_auto_offset_reset="earliest",
        topic_partitions=_PARTITIONS,
        topic_replication_factor=1,
        web_enabled=False,
    )
    source = app.topic(config.input_topic, key_serializer="raw", value_serializer="raw")
    sink = app.topic(config.output_topic, key_serializer="raw", value_serializer="raw")
    cards = app.Table("cards", default=list, partitions=_PARTITIONS)  # JSON values

    @app.agent(source)
    async def score(stream: faust.StreamT[bytes]) -> AsyncIterator[None]:
        async for event in stream.events():
            txn = decode_transaction(event.value, max_bytes=MAX_RECORD_BYTES)
            if not isinstance(txn, Transaction):
                continue  # the peers keep no dead-letter topic; the input has no bad records
            events, features = observe(cards[event.key], txn)
            cards[event.key] = events
            message = event.message
            at = SourceRecord(
                message.topic, message.partition, message.offset, event.key, event.value
            )
            await sink.send(key=event.key, value=decider.decide(txn, features, at))
            yield None

    return faust.Worker(app, loglevel=logging.WARNING, quiet=True)


def main() -> None:
    build().execute_from_commandline()


if __name__ == "__main__":
    main()
