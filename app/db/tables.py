"""The service's own relational records (SQLAlchemy 2, typed ORM).

The schema is created and changed only by the Alembic migrations in ``alembic/versions/``
(``fraudscore db upgrade``); ``tests/integration/db/test_migrations.py`` checks that the
migrations produce exactly these tables on SQLite and on PostgreSQL.

- ``model_versions``: every registered model artefact, its status and what its metadata says;
- ``model_promotions``: every promotion, newest last; ``rollback`` undoes the newest one that
  is not rolled back yet, so the promotions not rolled back form a stack;
- ``decision_policies``: versioned thresholds and hard rules, exactly one of them active;
- ``labels``: late verdicts (chargebacks, reviews) on transactions, as received from the labels
  topic by ``fraudscore merchant-risk``; one row per (transaction, label, report time), so a
  label delivered or read twice is stored once;
- ``label_positions``: how far into each labels partition the rows above (and the snapshots
  below) go: the aggregator's committed position, written in the same database transaction;
- ``merchant_risk_snapshots`` and ``merchant_risk``: the published daily merchant snapshots
  (:mod:`features.merchant`) and their per-merchant counts; immutable once written;
- ``admin_actions``: who changed which model or policy, when: the audit log of the registry.

At most one model is ``active``, at most one is ``shadow`` and at most one policy is active:
partial unique indexes make the database itself refuse a second one.

Times are timezone-aware UTC in Python (:class:`UTCDateTime`), whatever the database keeps.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Double,
    Enum,
    ForeignKey,
    Index,
    MetaData,
    String,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAME = 200  # length of versions, actors and other short names


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime (SQLite keeps no zone: values are stored as UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_name)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        float: Double(),
    }


class ModelStatus(StrEnum):
    CANDIDATE = "candidate"  # registered, not scored
    SHADOW = "shadow"  # scored beside the active model, recorded, never decides
    ACTIVE = "active"  # decides
    RETIRED = "retired"  # was active, replaced or rolled back


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(NAME), unique=True)
    status: Mapped[ModelStatus] = mapped_column(
        Enum(
            ModelStatus,
            name="status",
            native_enum=False,
            create_constraint=True,
            length=16,
            values_callable=lambda statuses: [s.value for s in statuses],
        )
    )
    artefact_path: Mapped[str] = mapped_column(String(4096))
    model_sha256: Mapped[str] = mapped_column(String(64))
    feature_schema_version: Mapped[int]
    feature_schema_hash: Mapped[str] = mapped_column(String(64))
    metrics: Mapped[dict[str, Any]]  # the artefact's training metrics
    artefact_metadata: Mapped[dict[str, Any]]  # all of metadata.json, as registered
    registered_by: Mapped[str] = mapped_column(String(NAME))
    registered_at: Mapped[datetime]
    status_changed_by: Mapped[str] = mapped_column(String(NAME))
    status_changed_at: Mapped[datetime]

    __table_args__ = (
        Index(
            "uq_model_versions_one_active",
            "status",
            unique=True,
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
        Index(
            "uq_model_versions_one_shadow",
            "status",
            unique=True,
            sqlite_where=text("status = 'shadow'"),
            postgresql_where=text("status = 'shadow'"),
        ),
    )


class ModelPromotion(Base):
    __tablename__ = "model_promotions"

    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int] = mapped_column(ForeignKey("model_versions.id"), index=True)
    promoted_by: Mapped[str] = mapped_column(String(NAME))
    promoted_at: Mapped[datetime]
    rolled_back_by: Mapped[str | None] = mapped_column(String(NAME))
    rolled_back_at: Mapped[datetime | None]

    model: Mapped[ModelVersion] = relationship()


class DecisionPolicy(Base):
    """The fields of :class:`models.policy.Policy`, versioned."""

    __tablename__ = "decision_policies"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(NAME), unique=True)
    review_threshold: Mapped[float]
    decline_threshold: Mapped[float]
    velocity_count_above: Mapped[int]
    velocity_amount_above: Mapped[float]
    many_merchants_10m: Mapped[int]
    high_amount: Mapped[float]
    active: Mapped[bool]
    created_by: Mapped[str] = mapped_column(String(NAME))
    created_at: Mapped[datetime]

    __table_args__ = (
        Index(
            "uq_decision_policies_one_active",
            "active",
            unique=True,
            sqlite_where=text("active"),
            postgresql_where=text("active"),
        ),
    )


class Label(Base):
    """A verdict on a transaction as it arrived on the labels topic."""

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(primary_key=True)
    transaction_id: Mapped[str] = mapped_column(String(NAME), index=True)
    card_id: Mapped[str] = mapped_column(String(NAME), index=True)
    merchant_id: Mapped[str] = mapped_column(String(NAME))
    label: Mapped[str] = mapped_column(String(16))  # "fraud" or "genuine"
    event_time: Mapped[datetime] = mapped_column(index=True)  # of the transaction
    reported_at: Mapped[datetime]
    received_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("transaction_id", "label", "reported_at", name="uq_labels_transaction_id"),
    )


class LabelPosition(Base):
    """The next offset of a labels partition not yet in ``labels``."""

    __tablename__ = "label_positions"

    topic: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    partition: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    next_offset: Mapped[int] = mapped_column(BigInteger)


class MerchantRiskSnapshot(Base):
    """One published daily snapshot of merchant risk: what scoring on ``day`` uses."""

    __tablename__ = "merchant_risk_snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[str] = mapped_column(String(NAME), unique=True)  # 2026-01-08/d7
    day: Mapped[int] = mapped_column(index=True)  # UTC days since the epoch
    delay_days: Mapped[int]
    labels_reported_before: Mapped[datetime]
    window_end: Mapped[datetime]
    merchants: Mapped[int]
    created_at: Mapped[datetime]


class MerchantRisk(Base):
    """One merchant's counts in one snapshot (merchants without labels have no row)."""

    __tablename__ = "merchant_risk"

    snapshot_id: Mapped[int] = mapped_column(
        ForeignKey("merchant_risk_snapshots.id"), primary_key=True
    )
    merchant_id: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    labelled_1d: Mapped[int]
    fraud_1d: Mapped[int]
    labelled_7d: Mapped[int]
    fraud_7d: Mapped[int]
    labelled_30d: Mapped[int]
    fraud_30d: Mapped[int]


class AdminAction(Base):
    """One change made through the registry: the audit log of models and policies."""

    __tablename__ = "admin_actions"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(64))  # e.g. model.promote, policy.set
    model_version: Mapped[str | None] = mapped_column(String(NAME))
    policy_version: Mapped[str | None] = mapped_column(String(NAME))
    detail: Mapped[dict[str, Any]]
