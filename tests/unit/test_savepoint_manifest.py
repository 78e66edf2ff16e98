"""The savepoint format without a broker: manifest round trip, validation and data files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from app.errors import SavepointError
from app.savepoint import (
    FORMAT_VERSION,
    MANIFEST_NAME,
    Manifest,
    PartitionSnapshot,
    create_savepoint,
    data_file_name,
    decode_manifest,
    encode_manifest,
    encode_partition,
    load_manifest,
    read_partition,
    sha256_hex,
    verify_savepoint,
)
from app.settings import FraudscoreSettings
from features.card import STATE_VERSION, CardState, encode_state
from features.state_migration import migrate, register, unregister
from features.stream import (
    PARTITION_KEY,
    PARTITION_STATE_VERSION,
    PartitionState,
    encode_partition_state,
)

T0 = 1_767_225_600_000


def _v1(newest_ms: int, events: list[list[Any]]) -> bytes:
    """A card state as state version 1 encoded it: ``[1, newest_ms, [[t, amount, m], ...]]``."""
    return msgspec.msgpack.encode([1, newest_ms, events])


STATES = {
    0: {
        b"tok_b": migrate(_v1(T0 + 5, [[T0 + 5, 20_000, "m_2"]])),
        b"tok_a": migrate(_v1(T0, [[T0, 1_000_000, "m_1"]])),
    },
    1: {},
}


def _write(
    directory: Path, raw: dict[int, dict[bytes, bytes]], state_version: int = STATE_VERSION
) -> Manifest:
    """A savepoint directory holding ``raw`` (partition → card → encoded state)."""
    snapshots = []
    for partition, states in raw.items():
        data = encode_partition(states)
        (directory / data_file_name(partition)).write_bytes(data)
        snapshots.append(
            PartitionSnapshot(
                partition=partition,
                committed_offset=len(states) * 3 if states else None,
                cards=len(states.keys() - {PARTITION_KEY.encode()}),
                file=data_file_name(partition),
                sha256=sha256_hex(data),
                changelog_end_offset=len(states) + 1,
            )
        )
    manifest = Manifest(
        created_at="2026-01-01T00:00:00.000Z",
        fraudscore_version="0.1.0",
        service_name="fraudscore",
        input_topic="transactions",
        changelog_topic="fraudscore.card-state.changelog",
        group_id="fraudscore",
        partition_count=len(raw),
        feature_schema_version=1,
        state_version=state_version,
        partitions=tuple(snapshots),
    )
    (directory / MANIFEST_NAME).write_bytes(encode_manifest(manifest))
    return manifest


def _encoded(states: dict[int, dict[bytes, CardState]]) -> dict[int, dict[bytes, bytes]]:
    return {p: {k: encode_state(s) for k, s in cards.items()} for p, cards in states.items()}


def _edit_manifest(directory: Path, **changes: Any) -> None:
    path = directory / MANIFEST_NAME
    document = msgspec.json.decode(path.read_bytes())
    document.update(changes)
    path.write_bytes(msgspec.json.encode(document))


def test_a_savepoint_round_trips(tmp_path: Path) -> None:
    written = _write(tmp_path, _encoded(STATES))
    manifest = verify_savepoint(tmp_path)
    assert manifest == written
    assert decode_manifest(encode_manifest(manifest)) == manifest
    assert (manifest.format, manifest.format_version) == ("fraudscore-savepoint", 1)
    assert manifest.cards == 2
    states = read_partition(tmp_path, manifest.partitions[0])
    assert states.cards == sorted((k.decode(), s) for k, s in STATES[0].items())  # by card id
    assert states.partition_state is None  # as in savepoints of builds before it existed
    assert read_partition(tmp_path, manifest.partitions[1]) == ([], None)


def test_the_partition_state_travels_in_the_data_file_and_is_not_a_card(tmp_path: Path) -> None:
    stream = PartitionState(PARTITION_STATE_VERSION, T0 + 7, 490_000, 3, 2)
    raw = _encoded(STATES)
    raw[1][PARTITION_KEY.encode()] = encode_partition_state(stream)
    manifest = _write(tmp_path, raw)
    assert manifest.partitions[1].cards == 0
    saved = verify_savepoint(tmp_path)
    assert read_partition(tmp_path, saved.partitions[1]) == ([], stream)


def test_the_manifest_is_readable_json(tmp_path: Path) -> None:
    _write(tmp_path, _encoded(STATES))
    document = msgspec.json.decode((tmp_path / MANIFEST_NAME).read_bytes())
    assert document["format"] == "fraudscore-savepoint"
    assert document["partitions"][0]["file"] == "partition-00000.msgpack"
    assert document["partitions"][1]["committed_offset"] is None


def test_data_files_are_deterministic() -> None:
    forward = encode_partition(_encoded(STATES)[0])
    backward = encode_partition(dict(reversed(list(_encoded(STATES)[0].items()))))
    assert forward == backward


def test_a_modified_data_file_is_refused(tmp_path: Path) -> None:
    manifest = _write(tmp_path, _encoded(STATES))
    path = tmp_path / manifest.partitions[0].file
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(SavepointError, match="does not match the checksum"):
        verify_savepoint(tmp_path)


def test_a_missing_data_file_is_refused(tmp_path: Path) -> None:
    manifest = _write(tmp_path, _encoded(STATES))
    (tmp_path / manifest.partitions[1].file).unlink()
    with pytest.raises(SavepointError, match="missing"):
        verify_savepoint(tmp_path)


def test_another_format_version_is_refused(tmp_path: Path) -> None:
    _write(tmp_path, _encoded(STATES))
    _edit_manifest(tmp_path, format_version=FORMAT_VERSION + 1, new_field="from the future")
    with pytest.raises(SavepointError, match="format version 2 is not supported"):
        load_manifest(tmp_path)


def test_something_else_is_not_a_savepoint(tmp_path: Path) -> None:
    with pytest.raises(SavepointError, match="is not a savepoint"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text('{"format": "other", "format_version": 1}')
    with pytest.raises(SavepointError, match="not a fraudscore-savepoint manifest"):
        load_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text("[1, 2")
    with pytest.raises(SavepointError, match="not a savepoint manifest"):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("partition_count", 3, "expected each of 0..2 once"),
        ("state_version", STATE_VERSION + 1, f"state version {STATE_VERSION + 1} cannot"),
        ("partitions", [], "expected each of 0..1 once"),
    ],
)
def test_an_inconsistent_manifest_is_refused(
    tmp_path: Path, field: str, value: object, message: str
) -> None:
    _write(tmp_path, _encoded(STATES))
    _edit_manifest(tmp_path, **{field: value})
    with pytest.raises(SavepointError, match=message):
        load_manifest(tmp_path)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"file": "../../etc/passwd"}, "names data file"),
        ({"committed_offset": None}, "no committed input offset"),
        ({"sha256": "abc"}, "no valid sha256"),
        ({"cards": -1}, "negative"),
        ({"unknown": 1}, "malformed"),
    ],
)
def test_an_inconsistent_partition_entry_is_refused(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    manifest = _write(tmp_path, _encoded(STATES))
    entry = msgspec.to_builtins(manifest.partitions[0]) | change
    _edit_manifest(tmp_path, partitions=[entry, msgspec.to_builtins(manifest.partitions[1])])
    with pytest.raises(SavepointError, match=message):
        load_manifest(tmp_path)


def test_a_card_count_that_does_not_match_the_file_is_refused(tmp_path: Path) -> None:
    manifest = _write(tmp_path, _encoded(STATES))
    entry = msgspec.to_builtins(manifest.partitions[0]) | {"cards": 3}
    _edit_manifest(tmp_path, partitions=[entry, msgspec.to_builtins(manifest.partitions[1])])
    with pytest.raises(SavepointError, match="holds 2 cards, the manifest says 3"):
        verify_savepoint(tmp_path)


def test_a_version_1_savepoint_is_migrated_on_read(tmp_path: Path) -> None:
    v1 = {0: {b"tok_a": _v1(T0, [[T0, 1_000_000, "m_1"]])}, 1: {}}
    manifest = _write(tmp_path, v1, state_version=1)
    assert verify_savepoint(tmp_path) == manifest
    assert read_partition(tmp_path, manifest.partitions[0]).cards == [
        ("tok_a", STATES[0][b"tok_a"])
    ]


def test_an_older_savepoint_is_migrated_on_read(tmp_path: Path) -> None:
    """A savepoint of a (test-only) version 0 layout: amounts in 1/100 of the major unit."""
    v0 = {0: {b"tok_a": msgspec.msgpack.encode([0, T0, [[T0, 10_000, "m_1"]]])}, 1: {}}
    _write(tmp_path, v0, state_version=0)
    with pytest.raises(SavepointError, match="state version 0 cannot be read"):
        load_manifest(tmp_path)
    register(0, lambda old: [1, old[1], [[t, a * 100, m] for t, a, m in old[2]]])
    try:
        manifest = verify_savepoint(tmp_path)
        assert read_partition(tmp_path, manifest.partitions[0]).cards == [
            ("tok_a", STATES[0][b"tok_a"])
        ]
    finally:
        unregister(0)


async def test_create_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "something").write_text("keep me")
    settings = FraudscoreSettings(kafka_bootstrap="127.0.0.1:1", var_dir=tmp_path / "var")
    with pytest.raises(SavepointError, match="not an empty directory"):
        await create_savepoint(settings, tmp_path)
    assert (tmp_path / "something").read_text() == "keep me"


async def test_savepoints_need_exactly_once(tmp_path: Path) -> None:
    settings = FraudscoreSettings(
        kafka_bootstrap="127.0.0.1:1", processing_guarantee="at_least_once"
    )
    with pytest.raises(SavepointError, match="exactly_once"):
        await create_savepoint(settings, tmp_path / "new")
    assert not (tmp_path / "new").exists()
