"""The Alembic migrations, from scratch, on SQLite and PostgreSQL: they build exactly the
tables of ``app/db/tables.py``, undo cleanly, and the database enforces the registry's
invariants (one active model, one shadow, one active policy) by itself."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db import migration
from app.db.errors import DatabaseError
from app.db.tables import AdminAction, Base, ModelStatus, ModelVersion

pytestmark = pytest.mark.integration

TABLES = {
    "model_versions",
    "model_promotions",
    "decision_policies",
    "labels",
    "label_positions",
    "merchant_risk_snapshots",
    "merchant_risk",
    "admin_actions",
}


def _differences(engine: Engine) -> list[object]:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))


def test_upgrade_from_scratch_builds_exactly_the_declared_tables(engine: Engine) -> None:
    with pytest.raises(DatabaseError, match="fraudscore db upgrade"):
        migration.require_current(engine)
    migration.upgrade(engine)
    assert migration.current_revision(engine) == migration.head_revision(engine)
    migration.require_current(engine)
    assert set(inspect(engine).get_table_names()) == TABLES | {"alembic_version"}
    assert _differences(engine) == []


def test_downgrade_to_base_and_up_again(engine: Engine) -> None:
    migration.upgrade(engine)
    migration.downgrade(engine, "base")
    assert migration.current_revision(engine) is None
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    migration.upgrade(engine)
    assert _differences(engine) == []


def _model(version: str, status: ModelStatus) -> ModelVersion:
    now = datetime.now(UTC)
    return ModelVersion(
        version=version,
        status=status,
        artefact_path=f"/models/{version}",
        model_sha256="0" * 64,
        feature_schema_version=2,
        feature_schema_hash="0" * 64,
        metrics={},
        artefact_metadata={},
        registered_by="test",
        registered_at=now,
        status_changed_by="test",
        status_changed_at=now,
    )


@pytest.mark.parametrize("status", [ModelStatus.ACTIVE, ModelStatus.SHADOW])
def test_the_database_refuses_a_second_active_or_shadow_model(
    engine: Engine, status: ModelStatus
) -> None:
    migration.upgrade(engine)
    with Session(engine) as session:
        session.add_all([_model("a", status), _model("b", ModelStatus.CANDIDATE)])
        session.commit()
        session.add(_model("c", status))
        with pytest.raises(IntegrityError):
            session.commit()


def test_times_come_back_as_the_same_instant_in_utc(engine: Engine) -> None:
    migration.upgrade(engine)
    at = datetime(2026, 3, 1, 9, 30, 15, 123000, tzinfo=timezone(timedelta(hours=-5)))
    with Session(engine) as session:
        session.add(AdminAction(at=at, actor="t", action="x", detail={"k": [1, "v"]}))
        session.commit()
    with Session(engine) as session:
        row = session.query(AdminAction).one()
        assert (row.at, row.at.tzinfo, row.detail) == (at, UTC, {"k": [1, "v"]})
