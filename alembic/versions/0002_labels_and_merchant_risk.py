"""Labels stored once each, the aggregator's position, merchant-risk snapshots.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21

The labels table had no writer before this revision, so the unique constraint meets no
duplicates.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

NAME = 200
_COUNTS = ("labelled_1d", "fraud_1d", "labelled_7d", "fraud_7d", "labelled_30d", "fraud_30d")


def _when(name: str) -> sa.Column[datetime]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=False)


def upgrade() -> None:
    with op.batch_alter_table("labels") as batch:
        batch.create_unique_constraint(
            "uq_labels_transaction_id", ["transaction_id", "label", "reported_at"]
        )
        batch.create_index("ix_labels_event_time", ["event_time"])
    op.create_table(
        "label_positions",
        sa.Column("topic", sa.String(NAME), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("topic", "partition", name="pk_label_positions"),
    )
    op.create_table(
        "merchant_risk_snapshots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(NAME), nullable=False),
        sa.Column("day", sa.Integer(), nullable=False),
        sa.Column("delay_days", sa.Integer(), nullable=False),
        _when("labels_reported_before"),
        _when("window_end"),
        sa.Column("merchants", sa.Integer(), nullable=False),
        _when("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_merchant_risk_snapshots"),
        sa.UniqueConstraint("version", name="uq_merchant_risk_snapshots_version"),
    )
    op.create_index("ix_merchant_risk_snapshots_day", "merchant_risk_snapshots", ["day"])
    op.create_table(
        "merchant_risk",
        sa.Column("snapshot_id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.String(NAME), nullable=False),
        *(sa.Column(name, sa.Integer(), nullable=False) for name in _COUNTS),
        sa.ForeignKeyConstraint(
            ["snapshot_id"],
            ["merchant_risk_snapshots.id"],
            name="fk_merchant_risk_snapshot_id_merchant_risk_snapshots",
        ),
        sa.PrimaryKeyConstraint("snapshot_id", "merchant_id", name="pk_merchant_risk"),
    )


def downgrade() -> None:
    op.drop_table("merchant_risk")
    op.drop_table("merchant_risk_snapshots")
    op.drop_table("label_positions")
    with op.batch_alter_table("labels") as batch:
        batch.drop_index("ix_labels_event_time")
        batch.drop_constraint("uq_labels_transaction_id", type_="unique")
