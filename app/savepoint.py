"""Savepoints: a portable snapshot of every card's state and the committed input offsets.

``fraudscore savepoint create DIR`` (:func:`create_savepoint`) takes one from a stopped
deployment; ``fraudscore worker --from-savepoint DIR`` (:func:`import_savepoint`) starts a new
deployment from it. The format, the consistency argument and the limits are in
``docs/SAVEPOINTS.md``; in short:

- ``DIR/manifest.json`` (:class:`Manifest`) names the format and its version, where the state
  came from, the state version, and per input partition p the committed input offset, the card
  count and the name and SHA-256 of p's data file;
- ``DIR/partition-0000p.msgpack`` is one msgpack array of ``[card_id, state]`` pairs sorted by
  card id, ``state`` being the encoded :class:`~features.card.CardState` exactly as the
  changelog holds it (a msgpack array, its version first); and, under
  :data:`features.stream.PARTITION_KEY`, the partition's own state (watermark and counters,
  :class:`~features.stream.PartitionState`), which savepoints of older builds lack.

Taking one needs a consumer group with no active member (workers checkpoint and leave the
group on SIGTERM) and no open checkpoint transaction; since every checkpoint is one
transaction holding both the changelog records and the input offsets, the changelog read up to
its last stable offset then matches the committed offsets. Importing one publishes each
partition's states to the new changelog together with its input offset, in one transaction
per partition on that partition's own transactional producer; the worker then restores and
seeks as after any restart.

The pure parts (manifest model, validation, data files, checksums) need no broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.metadata
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError, for_code

from app.errors import SavepointError
from app.restore import changelog_batches, open_changelog
from app.settings import FraudscoreSettings
from features.card import STATE_VERSION, CardState, encode_state
from features.errors import StateVersionError
from features.schema import FEATURE_SCHEMA_VERSION
from features.state_migration import can_migrate, migrate, oldest_readable_version
from features.stream import (
    PARTITION_KEY,
    PartitionState,
    decode_partition_state,
    encode_partition_state,
)
from sinks.kafka import client_options, ensure_topics, savepoint_producer, topic_partitions
from sinks.rocksdb import PartitionStore
from sinks.rocksdb_memory import shared_memory

FORMAT = "fraudscore-savepoint"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
IMPORT_TRANSACTION_TIMEOUT_MS = 300_000  # one import transaction may carry a whole partition
_INACTIVE_GROUP_STATES = ("Empty", "Dead")
_PROGRESS_EVERY = 1000
_PARTITION_KEY = PARTITION_KEY.encode()

Progress = Callable[[int, int, int], None]  # (partition, completed, total)
T = TypeVar("T")


def _no_progress(partition: int, completed: int, total: int) -> None:
    pass


# --- The format (pure) ----------------------------------------------------------------------


class PartitionSnapshot(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One input partition in the manifest."""

    partition: int
    committed_offset: int | None  # the next input offset to process; None: never committed
    cards: int
    file: str
    sha256: str
    changelog_end_offset: int  # where the changelog was read up to (informative)


class Manifest(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """``manifest.json``: what a savepoint holds and where it came from."""

    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    created_at: str
    fraudscore_version: str
    service_name: str
    input_topic: str
    changelog_topic: str
    group_id: str
    partition_count: int
    feature_schema_version: int
    state_version: int
    partitions: tuple[PartitionSnapshot, ...]

    @property
    def cards(self) -> int:
        return sum(snapshot.cards for snapshot in self.partitions)


class _Header(msgspec.Struct):
    format: str = ""
    format_version: int = 0


_entries_decoder = msgspec.msgpack.Decoder(list[tuple[str, bytes]])


def data_file_name(partition: int) -> str:
    return f"partition-{partition:05d}.msgpack"


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def encode_partition(states: Mapping[bytes, bytes]) -> bytes:
    """A data file: ``[[card_id, encoded state], ...]`` sorted by card id."""
    return msgspec.msgpack.encode(sorted((key.decode(), value) for key, value in states.items()))


def encode_manifest(manifest: Manifest) -> bytes:
    return msgspec.json.format(msgspec.json.encode(manifest), indent=2) + b"\n"


def decode_manifest(raw: bytes) -> Manifest:
    """Parse and validate ``manifest.json``; refuse anything this build cannot import."""
    try:
        header = msgspec.json.decode(raw, type=_Header)
    except msgspec.DecodeError as exc:
        raise SavepointError(f"{MANIFEST_NAME} is not a savepoint manifest: {exc}") from exc
    if header.format != FORMAT:
        raise SavepointError(f"not a {FORMAT} manifest (format {header.format!r})")
    if header.format_version != FORMAT_VERSION:
        raise SavepointError(
            f"savepoint format version {header.format_version} is not supported: this "
            f"fraudscore reads format version {FORMAT_VERSION}"
        )
    try:
        manifest = msgspec.json.decode(raw, type=Manifest)
    except msgspec.DecodeError as exc:
        raise SavepointError(f"{MANIFEST_NAME} is malformed: {exc}") from exc
    validate_manifest(manifest)
    return manifest


def validate_manifest(manifest: Manifest) -> None:
    """Check the manifest's own consistency and that its state version can be migrated."""
    listed = [snapshot.partition for snapshot in manifest.partitions]
    if manifest.partition_count < 1 or listed != list(range(manifest.partition_count)):
        raise SavepointError(
            f"the manifest lists partitions {listed} for a partition count of "
            f"{manifest.partition_count}; expected each of 0..{manifest.partition_count - 1} once"
        )
    for snapshot in manifest.partitions:
        _validate_snapshot(snapshot)
    if not can_migrate(manifest.state_version):
        raise SavepointError(
            f"the savepoint's card state version {manifest.state_version} cannot be read: this "
            f"fraudscore reads versions {oldest_readable_version()} to {STATE_VERSION}"
        )


def _validate_snapshot(snapshot: PartitionSnapshot) -> None:
    where = f"partition {snapshot.partition} of the manifest"
    if snapshot.file != data_file_name(snapshot.partition):
        raise SavepointError(f"{where} names data file {snapshot.file!r}")
    if len(snapshot.sha256) != 64 or not all(c in "0123456789abcdef" for c in snapshot.sha256):
        raise SavepointError(f"{where} has no valid sha256 ({snapshot.sha256!r})")
    if snapshot.cards < 0 or (snapshot.committed_offset or 0) < 0:
        raise SavepointError(f"{where} has a negative card count or offset")
    if snapshot.cards and snapshot.committed_offset is None:
        raise SavepointError(f"{where} holds card state but no committed input offset")


class SavedPartition(NamedTuple):
    """What a data file holds: card states, and the partition's own state if it had one."""

    cards: list[tuple[str, CardState]]
    partition_state: PartitionState | None


def decode_partition(data: bytes, snapshot: PartitionSnapshot) -> SavedPartition:
    """Check a data file against its manifest entry; its states, migrated to the current version."""
    if sha256_hex(data) != snapshot.sha256:
        raise SavepointError(
            f"{snapshot.file} does not match the checksum in the manifest: the savepoint is "
            "corrupt or was modified"
        )
    try:
        entries = dict(_entries_decoder.decode(data))
        partition_raw = entries.pop(PARTITION_KEY, None)
        partition = None if partition_raw is None else decode_partition_state(partition_raw)
        states = [(card_id, migrate(raw)) for card_id, raw in entries.items()]
    except (msgspec.DecodeError, StateVersionError, ValueError) as exc:
        raise SavepointError(f"{snapshot.file} cannot be read: {exc}") from exc
    if len(states) != snapshot.cards:
        raise SavepointError(
            f"{snapshot.file} holds {len(states)} cards, the manifest says {snapshot.cards}"
        )
    return SavedPartition(states, partition)


# --- The directory --------------------------------------------------------------------------


def load_manifest(directory: Path) -> Manifest:
    path = directory / MANIFEST_NAME
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SavepointError(
            f"{path} does not exist: {directory} is not a savepoint (or an unfinished one)"
        ) from None
    return decode_manifest(raw)


def read_partition(directory: Path, snapshot: PartitionSnapshot) -> SavedPartition:
    """The states of one partition, checksum-verified and migrated."""
    try:
        data = (directory / snapshot.file).read_bytes()
    except FileNotFoundError:
        raise SavepointError(f"{directory / snapshot.file} is missing") from None
    return decode_partition(data, snapshot)


def verify_savepoint(directory: Path) -> Manifest:
    """Load the manifest and read every data file (checksums, decoding, migration)."""
    manifest = load_manifest(directory)
    for snapshot in manifest.partitions:
        read_partition(directory, snapshot)
    return manifest


def _prepare_directory(directory: Path) -> None:
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise SavepointError(f"{directory} exists and is not an empty directory; pick a new one")
    directory.mkdir(parents=True, exist_ok=True)


def _write_atomically(path: Path, data: bytes) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    temporary.replace(path)


def _write_partition(
    directory: Path, partition: int, states: Mapping[bytes, bytes], offset: int | None, end: int
) -> PartitionSnapshot:
    data = encode_partition(states)
    name = data_file_name(partition)
    _write_atomically(directory / name, data)
    return PartitionSnapshot(
        partition=partition,
        committed_offset=offset,
        cards=sum(key != _PARTITION_KEY for key in states),
        file=name,
        sha256=sha256_hex(data),
        changelog_end_offset=end,
    )


def _new_manifest(settings: FraudscoreSettings, snapshots: list[PartitionSnapshot]) -> Manifest:
    try:
        version = importlib.metadata.version("fraudscore")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return Manifest(
        created_at=datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        fraudscore_version=version,
        service_name=settings.service_name,
        input_topic=settings.input_topic,
        changelog_topic=settings.changelog_topic,
        group_id=settings.group_id,
        partition_count=len(snapshots),
        feature_schema_version=FEATURE_SCHEMA_VERSION,
        state_version=STATE_VERSION,
        partitions=tuple(snapshots),
    )


# --- Kafka: what the deployment looks like --------------------------------------------------


class _Marks(NamedTuple):
    """Everything that must not move while a savepoint is taken."""

    offsets: dict[int, int | None]  # committed input offsets
    stable: dict[int, int]  # changelog last stable offsets
    high: dict[int, int]  # changelog high watermarks


async def _retrying(call: Callable[[], Awaitable[T]], attempts: int = 40) -> T:
    """Retry retriable broker errors (a group coordinator that is still loading, ...)."""
    for attempt in range(attempts):
        try:
            return await call()
        except KafkaError as exc:
            if not exc.retriable or attempt == attempts - 1:
                raise
            await asyncio.sleep(0.25)
    raise AssertionError("unreachable")


@asynccontextmanager
async def _admin(settings: FraudscoreSettings) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def _group_members(admin: AIOKafkaAdminClient, group_id: str) -> tuple[str, int]:
    """The group's state and its number of members."""

    async def describe() -> tuple[str, int]:
        response = (await admin.describe_consumer_groups([group_id]))[0]
        error_code, _group, state, _type, _protocol, members = response.groups[0][:6]
        if error_code:
            raise for_code(error_code)(f"cannot describe consumer group {group_id!r}")
        return str(state), len(members)

    return await _retrying(describe)


async def _require_inactive_group(
    admin: AIOKafkaAdminClient, settings: FraudscoreSettings, wait_s: float = 0.0
) -> None:
    deadline = asyncio.get_running_loop().time() + wait_s
    while True:
        state, members = await _group_members(admin, settings.group_id)
        if state in _INACTIVE_GROUP_STATES:
            return
        if asyncio.get_running_loop().time() >= deadline:
            raise SavepointError(
                f"consumer group {settings.group_id!r} is {state} with {members} active "
                "member(s): stop the workers first: SIGTERM makes them checkpoint and leave the "
                "group (workers with FRAUDSCORE_INSTANCE_ID stay members until "
                "FRAUDSCORE_SESSION_TIMEOUT_MS has passed: retry then, or pass --wait)"
            )
        await asyncio.sleep(0.5)


async def _committed_offsets(
    admin: AIOKafkaAdminClient, settings: FraudscoreSettings, partitions: int
) -> dict[int, int | None]:
    tps = [TopicPartition(settings.input_topic, p) for p in range(partitions)]
    fetched = await _retrying(
        lambda: admin.list_consumer_group_offsets(settings.group_id, partitions=tps)
    )
    offsets: dict[int, int | None] = {}
    for tp in tps:
        committed = fetched.get(tp)
        offsets[tp.partition] = (
            None if committed is None or committed.offset < 0 else committed.offset
        )
    return offsets


async def _log_offsets(
    settings: FraudscoreSettings, topic: str, partitions: int, isolation: str
) -> tuple[dict[int, int], dict[int, int]]:
    """(log start offsets, end offsets) of ``topic``; the end is the LSO with read_committed."""
    consumer = AIOKafkaConsumer(
        **client_options(settings), group_id=None, isolation_level=isolation
    )
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        begin = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return {tp.partition: begin[tp] for tp in tps}, {tp.partition: end[tp] for tp in tps}


async def _partition_counts(settings: FraudscoreSettings, *topics: str) -> dict[str, int]:
    counts = dict.fromkeys(topics, 0)
    for tp in await topic_partitions(settings, *topics):
        counts[tp.topic] += 1
    return counts


async def _marks(
    admin: AIOKafkaAdminClient, settings: FraudscoreSettings, partitions: int
) -> _Marks:
    offsets = await _committed_offsets(admin, settings, partitions)
    topic = settings.changelog_topic
    _, stable = await _log_offsets(settings, topic, partitions, "read_committed")
    _, high = await _log_offsets(settings, topic, partitions, "read_uncommitted")
    return _Marks(offsets, stable, high)


def _require_exactly_once(settings: FraudscoreSettings) -> None:
    if not settings.exactly_once:
        raise SavepointError(
            "savepoints need FRAUDSCORE_PROCESSING_GUARANTEE=exactly_once: at least once, the "
            "changelog may be ahead of the committed input offsets"
        )


# --- Creating a savepoint -------------------------------------------------------------------


async def create_savepoint(
    settings: FraudscoreSettings,
    directory: Path,
    *,
    progress: Progress = _no_progress,
    wait_s: float = 0.0,
) -> Manifest:
    """Snapshot the stopped deployment ``settings`` describes into the new ``directory``."""
    _require_exactly_once(settings)
    _prepare_directory(directory)
    try:
        snapshots = await _save_partitions(settings, directory, progress, wait_s)
    except BaseException:
        for path in directory.iterdir():
            path.unlink()
        raise
    manifest = _new_manifest(settings, snapshots)
    _write_atomically(directory / MANIFEST_NAME, encode_manifest(manifest))
    return manifest


async def _save_partitions(
    settings: FraudscoreSettings, directory: Path, progress: Progress, wait_s: float
) -> list[PartitionSnapshot]:
    partitions = await _source_partitions(settings)
    async with _admin(settings) as admin:
        await _require_inactive_group(admin, settings, wait_s)
        before = await _marks(admin, settings, partitions)
        _require_settled(settings, before)
        snapshots = [
            await _save_partition(settings, directory, p, before.offsets[p], progress)
            for p in range(partitions)
        ]
        await _require_inactive_group(admin, settings)
        if await _marks(admin, settings, partitions) != before:
            raise SavepointError(
                "the deployment committed a checkpoint while the savepoint was taken (did a "
                "worker start?): stop every worker and take the savepoint again"
            )
    return snapshots


async def _source_partitions(settings: FraudscoreSettings) -> int:
    counts = await _partition_counts(settings, settings.input_topic, settings.changelog_topic)
    partitions = counts[settings.input_topic]
    if partitions == 0:
        raise SavepointError(f"input topic {settings.input_topic!r} does not exist")
    if counts[settings.changelog_topic] != partitions:
        raise SavepointError(
            f"changelog {settings.changelog_topic!r} has {counts[settings.changelog_topic]} "
            f"partitions, the input {partitions}: is FRAUDSCORE_CHANGELOG_TOPIC right?"
        )
    return partitions


def _require_settled(settings: FraudscoreSettings, marks: _Marks) -> None:
    if all(offset is None for offset in marks.offsets.values()):
        raise SavepointError(
            f"consumer group {settings.group_id!r} has no committed offsets on "
            f"{settings.input_topic!r}: nothing to save (is FRAUDSCORE_GROUP_ID right?)"
        )
    for p, stable in marks.stable.items():
        if stable != marks.high[p]:
            raise SavepointError(
                f"a checkpoint transaction is still open on {settings.changelog_topic!r} "
                f"partition {p} (did a worker die mid-checkpoint?); the broker aborts it within "
                "FRAUDSCORE_TRANSACTION_TIMEOUT_MS: take the savepoint again then"
            )


async def _save_partition(
    settings: FraudscoreSettings,
    directory: Path,
    partition: int,
    offset: int | None,
    progress: Progress,
) -> PartitionSnapshot:
    """Read changelog partition ``partition`` up to its last stable offset into a data file."""
    states: dict[bytes, bytes] = {}
    with open_changelog(settings, partition) as changelog:
        total = changelog.end - changelog.begin
        progress(partition, 0, total)
        for batch in changelog_batches(changelog, changelog.begin):
            for key, value in batch:
                if value is None:
                    states.pop(key, None)
                else:
                    states[key] = value
            progress(partition, changelog.position() - changelog.begin, total)
        progress(partition, total, total)
    if states and offset is None:
        raise SavepointError(
            f"changelog partition {partition} holds card state but the group has no committed "
            f"offset for input partition {partition} (expired?): the savepoint would replay it"
        )
    return _write_partition(directory, partition, states, offset, changelog.end)


# --- Importing a savepoint into a new deployment ----------------------------------------------


async def import_savepoint(
    settings: FraudscoreSettings, directory: Path, *, progress: Progress = _no_progress
) -> Manifest:
    """Publish a savepoint's states and offsets to the new deployment ``settings`` describes.

    Everything is checked before anything is published: the files (checksums, decoding,
    migration), the input topic, and that the deployment is new: its group has no committed
    offsets and its changelog no records. Then each partition's local RocksDB is wiped and
    its states and input offset go out in one transaction.
    """
    _require_exactly_once(settings)
    manifest = verify_savepoint(directory)
    await _require_new_deployment(settings, manifest)
    _wipe_local_state(settings, manifest.partition_count)
    for snapshot in manifest.partitions:
        await _publish_partition(settings, snapshot, read_partition(directory, snapshot), progress)
    return manifest


async def _require_new_deployment(settings: FraudscoreSettings, manifest: Manifest) -> None:
    if settings.input_topic != manifest.input_topic:
        raise SavepointError(
            f"the savepoint holds offsets of input topic {manifest.input_topic!r}, not "
            f"{settings.input_topic!r}: FRAUDSCORE_INPUT_TOPIC must be the same"
        )
    partitions = (await _partition_counts(settings, settings.input_topic))[settings.input_topic]
    if partitions != manifest.partition_count:
        raise SavepointError(
            f"the savepoint has {manifest.partition_count} partitions but input topic "
            f"{settings.input_topic!r} has {partitions}"
        )
    await ensure_topics(settings)
    async with _admin(settings) as admin:
        await _require_inactive_group(admin, settings)
        offsets = await _committed_offsets(admin, settings, partitions)
    if any(offset is not None for offset in offsets.values()):
        raise SavepointError(
            f"consumer group {settings.group_id!r} already has committed offsets: a savepoint "
            "starts a new deployment, so set a new FRAUDSCORE_GROUP_ID (if this savepoint was "
            "imported already, start the workers without --from-savepoint)"
        )
    begin, end = await _log_offsets(
        settings, settings.changelog_topic, partitions, "read_uncommitted"
    )
    if any(end[p] > begin[p] for p in range(partitions)):
        raise SavepointError(
            f"changelog {settings.changelog_topic!r} already has records: a new deployment "
            "needs a new, empty FRAUDSCORE_CHANGELOG_TOPIC"
        )


def _wipe_local_state(settings: FraudscoreSettings, partitions: int) -> None:
    """Drop local RocksDB of the input partitions: it would not match the new changelog."""
    for p in range(partitions):
        path = settings.state_dir / f"{settings.input_topic}-{p}"  # as PartitionTask names it
        if not path.exists():
            continue
        try:
            store = PartitionStore(path, shared_memory(settings.state_memory_mb))
        except Exception as exc:  # rocksdict reports a held lock as a bare Exception
            raise SavepointError(f"local state {path} is in use (is a worker running?)") from exc
        store.wipe()
        store.close()


async def _publish_partition(
    settings: FraudscoreSettings,
    snapshot: PartitionSnapshot,
    saved: SavedPartition,
    progress: Progress,
) -> None:
    """One transaction: the partition's states to the changelog and its input offset."""
    partition, total = snapshot.partition, len(saved.cards)
    progress(partition, 0, total)
    if not saved.cards and saved.partition_state is None and snapshot.committed_offset is None:
        return
    long_timeout = max(settings.transaction_timeout_ms, IMPORT_TRANSACTION_TIMEOUT_MS)
    producer_settings = settings.model_copy(update={"transaction_timeout_ms": long_timeout})
    producer = savepoint_producer(producer_settings, partition)
    await producer.start()
    try:
        async with producer.transaction():
            await _send_states(settings, partition, saved, producer, progress)
            if snapshot.committed_offset is not None:
                await producer.send_offsets_to_transaction(
                    {TopicPartition(settings.input_topic, partition): snapshot.committed_offset},
                    settings.group_id,
                )
    finally:
        await producer.stop()
    progress(partition, total, total)


async def _send_states(
    settings: FraudscoreSettings,
    partition: int,
    saved: SavedPartition,
    producer: Any,
    progress: Progress,
) -> None:
    topic, total = settings.changelog_topic, len(saved.cards)
    for sent, (card_id, state) in enumerate(saved.cards, 1):
        await producer.send(
            topic, key=card_id.encode(), value=encode_state(state), partition=partition
        )
        if sent % _PROGRESS_EVERY == 0:
            progress(partition, sent, total)
    if saved.partition_state is not None:
        value = encode_partition_state(saved.partition_state)
        await producer.send(topic, key=_PARTITION_KEY, value=value, partition=partition)
