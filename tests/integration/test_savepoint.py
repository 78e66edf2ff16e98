"""Savepoint round trip: a stopped deployment's state and offsets start a new deployment.

One generated stream (the same cards throughout) is split in two halves. The first deployment
decides the first half and is stopped with SIGTERM; ``fraudscore savepoint create`` snapshots
it; a new deployment (new group, decisions, changelog and state directory; same input topic)
starts with ``fraudscore worker --from-savepoint`` and decides the second half. Together the
two decision topics must hold every transaction once, byte-identical to one uninterrupted
replay of the pipeline: features of the second half depend on the first half's state, and a
lost or wrong offset would redecide or skip records. Afterwards, what cannot be used is refused:
a running group, a deployment that is not new, another input topic.
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest
from typer.testing import CliRunner

from app.cli import app as cli
from app.errors import SavepointError
from app.loadgen import Outgoing, outgoing
from app.process import WorkerProcess, settings_env
from app.savepoint import create_savepoint, import_savepoint, load_manifest, read_partition
from app.settings import FraudscoreSettings
from sinks.kafka import ensure_topics
from tests.support.kafka import Record, read_partitions, read_topic, send_input
from tests.support.reference import reference_of
from tests.support.settings import isolated_settings

pytestmark = pytest.mark.integration

TOTAL, FIRST, CARDS, SEED = 6000, 3000, 300, 23


@pytest.fixture
def old(kafka_bootstrap: str, unique: str, tmp_path: Path) -> FraudscoreSettings:
    return isolated_settings(kafka_bootstrap, unique, tmp_path / "var-old")


@pytest.fixture
def new(old: FraudscoreSettings, unique: str, tmp_path: Path) -> FraudscoreSettings:
    """The new deployment: everything of its own but the input topic."""
    return old.model_copy(
        update={
            "decisions_topic": f"decisions-{unique}-new",
            "dlq_topic": f"tx-{unique}-new.dlq",
            "late_topic": f"tx-{unique}-new.late",
            "changelog_topic": f"state-{unique}-new.changelog",
            "group_id": f"fraudscore-{unique}-new",
            "var_dir": tmp_path / "var-new",
        }
    )


async def _send(settings: FraudscoreSettings, records: list[Outgoing]) -> None:
    await send_input(settings, [(record.key, record.value) for record in records])


def _fraudscore(settings: FraudscoreSettings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _ids(records: list[Record]) -> Counter[str]:
    return Counter(msgspec.json.decode(r.value)["transaction_id"] for r in records)


async def _first_deployment(
    settings: FraudscoreSettings, records: list[Outgoing], savepoint: Path, log: Path
) -> list[Record]:
    """Decide the first half, refuse a savepoint while running, stop, take the savepoint."""
    await ensure_topics(settings)
    await _send(settings, records)
    worker = WorkerProcess(settings, log)
    try:
        decisions = await read_topic(settings, settings.decisions_topic, expect=len(records))
        with pytest.raises(SavepointError, match="stop the workers first: SIGTERM makes them"):
            await create_savepoint(settings, savepoint)
    finally:
        assert worker.stop() == 0, worker.log_tail()
    created = _fraudscore(settings, "savepoint", "create", str(savepoint))
    assert created.returncode == 0, created.stderr
    return decisions


async def _new_deployment(
    settings: FraudscoreSettings, records: list[Outgoing], savepoint: Path, log: Path
) -> list[Record]:
    """Start from the savepoint and decide the second half."""
    worker = WorkerProcess(settings, log, ["--from-savepoint", str(savepoint)])
    try:
        await _send(settings, records)
        # the import creates the new deployment's topics: read them once the worker runs
        assert await worker.wait_for_log("ready at offset"), worker.log_tail()
        return await read_topic(settings, settings.decisions_topic, expect=len(records))
    finally:
        assert worker.stop() == 0, worker.log_tail()


async def test_a_savepoint_carries_state_and_offsets_to_a_new_deployment(
    old: FraudscoreSettings, new: FraudscoreSettings, tmp_path: Path
) -> None:
    records = list(outgoing(TOTAL, cards=CARDS, seed=SEED, malformed=0))
    savepoint = tmp_path / "savepoint"
    first = await _first_deployment(old, records[:FIRST], savepoint, tmp_path / "old.log")
    second = await _new_deployment(new, records[FIRST:], savepoint, tmp_path / "new.log")

    inputs = await read_partitions(old, old.input_topic)
    expected = reference_of(old, inputs).decisions
    ids = _ids(first) + _ids(second)
    assert set(ids.values()) == {1}, f"duplicates: {[i for i, n in ids.items() if n > 1][:5]}"
    assert set(ids) == set(expected)
    assert len(_ids(first)) == FIRST
    mismatched = [
        r.value
        for r in first + second
        if expected[msgspec.json.decode(r.value)["transaction_id"]] != r.value
    ]
    assert not mismatched, f"{len(mismatched)} decisions differ, e.g. {mismatched[0]!r}"

    manifest = load_manifest(savepoint)
    offsets = {s.partition: s.committed_offset or 0 for s in manifest.partitions}
    assert sum(offsets.values()) == FIRST
    at_savepoint = reference_of(
        old, {p: [r for r in log if r.offset < offsets[p]] for p, log in inputs.items()}
    )
    assert set(at_savepoint.decisions) == set(_ids(first))
    assert manifest.cards == sum(len(states) for states in at_savepoint.states.values())
    for snapshot in manifest.partitions:
        saved = read_partition(savepoint, snapshot)
        assert dict(saved.cards) == at_savepoint.states[snapshot.partition], (
            f"p{snapshot.partition}"
        )
        assert saved.partition_state == at_savepoint.partitions[snapshot.partition]
    await _assert_refusals(old, new, savepoint)


async def _assert_refusals(
    old: FraudscoreSettings, new: FraudscoreSettings, savepoint: Path
) -> None:
    """``show`` reads the savepoint; what cannot be used is refused with a clear message."""
    shown = CliRunner().invoke(cli, ["savepoint", "show", str(savepoint)])
    assert shown.exit_code == 0, shown.output
    assert "fraudscore-savepoint v1" in shown.output
    with pytest.raises(SavepointError, match="already has committed offsets"):
        await import_savepoint(new, savepoint)  # imported already
    fresh_group = new.model_copy(update={"group_id": f"{new.group_id}-2"})
    reused_changelog = fresh_group.model_copy(update={"changelog_topic": old.changelog_topic})
    with pytest.raises(SavepointError, match="already has records"):
        await import_savepoint(reused_changelog, savepoint)
    other_input = fresh_group.model_copy(update={"input_topic": f"{old.input_topic}-other"})
    with pytest.raises(SavepointError, match="FRAUDSCORE_INPUT_TOPIC must be the same"):
        await import_savepoint(other_input, savepoint)
