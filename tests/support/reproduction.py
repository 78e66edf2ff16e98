"""Decisions made with a registered model and policy and appended to the audit table, for
the tests of ``audit reproduce`` (CLI and REST)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from app.audit import open_audit_table
from app.db import registry
from app.db.session import registry_session
from app.live_pipeline import configured_policy
from app.settings import FraudscoreSettings
from features.stream import MemoryCardStore
from models.pipeline import DecisionRecord, Pipeline, SourceRecord
from models.synthetic import encode_record, generate
from sinks.iceberg import CommittedDecision

INGESTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def decide_and_audit(settings: FraudscoreSettings, artefact: Path) -> list[DecisionRecord]:
    """Register and promote the model, set a policy that flags often, decide generated
    traffic with them as a worker does, and append the decisions to the audit table."""
    with registry_session(settings) as session:
        registry.register_model(session, artefact, "alice")
        registry.promote(session, "m1", "alice")
        changes = {"review_threshold": 0.02, "decline_threshold": 0.2}
        registry.set_policy(session, "alice", configured_policy(settings), changes)
        selection = registry.read_selection(session)
    assert selection.model is not None
    assert selection.policy is not None
    pipeline = Pipeline(registry.load_registered(selection.model), selection.policy, 8192)
    items = generate(400, cards=40, seed=3)
    records = [
        SourceRecord("tx", 0, n, i.key, encode_record(i.record)) for n, i in enumerate(items)
    ]
    decisions = [d for _, d in pipeline.run(records, MemoryCardStore()).decisions]
    audit_rows(settings, decisions)
    return decisions


def audit_rows(settings: FraudscoreSettings, decisions: list[DecisionRecord]) -> None:
    table = open_audit_table(settings)
    start = table.position().next_offset("decisions", 0)
    read = [CommittedDecision(d, "decisions", 0, start + i, None) for i, d in enumerate(decisions)]
    staged = table.stage(read, INGESTED)
    assert staged is not None
    assert table.commit(staged) is not None
