"""Registry: model versions and promotions, decision policies, labels, admin actions.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

NAME = 200


def _when(name: str, nullable: bool = False) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "model_versions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(NAME), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                "candidate",
                "shadow",
                "active",
                "retired",
                name="status",
                native_enum=False,
                create_constraint=True,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column("artefact_path", sa.String(4096), nullable=False),
        sa.Column("model_sha256", sa.String(64), nullable=False),
        sa.Column("feature_schema_version", sa.Integer(), nullable=False),
        sa.Column("feature_schema_hash", sa.String(64), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.Column("artefact_metadata", sa.JSON(), nullable=False),
        sa.Column("registered_by", sa.String(NAME), nullable=False),
        _when("registered_at"),
        sa.Column("status_changed_by", sa.String(NAME), nullable=False),
        _when("status_changed_at"),
        sa.PrimaryKeyConstraint("id", name="pk_model_versions"),
        sa.UniqueConstraint("version", name="uq_model_versions_version"),
    )
    for status in ("active", "shadow"):
        op.create_index(
            f"uq_model_versions_one_{status}",
            "model_versions",
            ["status"],
            unique=True,
            sqlite_where=sa.text(f"status = '{status}'"),
            postgresql_where=sa.text(f"status = '{status}'"),
        )
    op.create_table(
        "model_promotions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model_version_id", sa.Integer(), nullable=False),
        sa.Column("promoted_by", sa.String(NAME), nullable=False),
        _when("promoted_at"),
        sa.Column("rolled_back_by", sa.String(NAME), nullable=True),
        _when("rolled_back_at", nullable=True),
        sa.ForeignKeyConstraint(
            ["model_version_id"],
            ["model_versions.id"],
            name="fk_model_promotions_model_version_id_model_versions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_model_promotions"),
    )
    op.create_index(
        "ix_model_promotions_model_version_id", "model_promotions", ["model_version_id"]
    )
    op.create_table(
        "decision_policies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(NAME), nullable=False),
        sa.Column("review_threshold", sa.Double(), nullable=False),
        sa.Column("decline_threshold", sa.Double(), nullable=False),
        sa.Column("velocity_count_above", sa.Integer(), nullable=False),
        sa.Column("velocity_amount_above", sa.Double(), nullable=False),
        sa.Column("many_merchants_10m", sa.Integer(), nullable=False),
        sa.Column("high_amount", sa.Double(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_by", sa.String(NAME), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_decision_policies"),
        sa.UniqueConstraint("version", name="uq_decision_policies_version"),
    )
    op.create_index(
        "uq_decision_policies_one_active",
        "decision_policies",
        ["active"],
        unique=True,
        sqlite_where=sa.text("active"),
        postgresql_where=sa.text("active"),
    )
    op.create_table(
        "labels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("transaction_id", sa.String(NAME), nullable=False),
        sa.Column("card_id", sa.String(NAME), nullable=False),
        sa.Column("merchant_id", sa.String(NAME), nullable=False),
        sa.Column("label", sa.String(16), nullable=False),
        _when("event_time"),
        _when("reported_at"),
        _when("received_at"),
        sa.PrimaryKeyConstraint("id", name="pk_labels"),
    )
    op.create_index("ix_labels_transaction_id", "labels", ["transaction_id"])
    op.create_index("ix_labels_card_id", "labels", ["card_id"])
    op.create_table(
        "admin_actions",
        sa.Column("id", sa.Integer(), nullable=False),
        _when("at"),
        sa.Column("actor", sa.String(NAME), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("model_version", sa.String(NAME), nullable=True),
        sa.Column("policy_version", sa.String(NAME), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admin_actions"),
    )
    op.create_index("ix_admin_actions_at", "admin_actions", ["at"])


def downgrade() -> None:
    op.drop_table("admin_actions")
    op.drop_table("labels")
    op.drop_table("decision_policies")
    op.drop_table("model_promotions")
    op.drop_table("model_versions")
