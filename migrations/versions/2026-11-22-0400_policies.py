"""Fairness policies: named policies, immutable versions, activations, webhook announcements.

At most one version per policy is active; the partial unique index
``uq_policy_version_one_active`` makes the database refuse a second one, so concurrent activations
cannot both win. Every attempt to deliver an announcement is kept in ``policy_delivery_attempt``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 04:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy")),
        sa.UniqueConstraint("name", name=op.f("uq_policy_name")),
    )
    op.create_table(
        "policy_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policy.id"],
            name=op.f("fk_policy_version_policy_id_policy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_version")),
        sa.UniqueConstraint("policy_id", "version", name="uq_policy_version_policy_id_version"),
    )
    with op.batch_alter_table("policy_version", schema=None) as batch_op:
        batch_op.create_index(
            "uq_policy_version_one_active",
            ["policy_id"],
            unique=True,
            sqlite_where=sa.text("state = 'active'"),
            postgresql_where=sa.text("state = 'active'"),
        )

    op.create_table(
        "policy_activation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("policy_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("previous_version", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("effective_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("is_rollback", sa.Boolean(), nullable=False),
        sa.Column("demotion_allowed", sa.Boolean(), nullable=False),
        sa.Column("guard", sa.JSON(), nullable=False),
        sa.Column("diff", sa.JSON(), nullable=False),
        sa.Column("outcome", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["policy_id"],
            ["policy.id"],
            name=op.f("fk_policy_activation_policy_id_policy"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_activation")),
    )
    with op.batch_alter_table("policy_activation", schema=None) as batch_op:
        batch_op.create_index(
            "ix_policy_activation_state_effective_at", ["state", "effective_at"], unique=False
        )
        batch_op.create_index(
            "ix_policy_activation_policy_id_requested_at",
            ["policy_id", "requested_at"],
            unique=False,
        )

    op.create_table(
        "policy_subscription",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=2000), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=120), nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_subscription")),
    )
    op.create_table(
        "policy_delivery",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("activation_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["policy_subscription.id"],
            name=op.f("fk_policy_delivery_subscription_id_policy_subscription"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["activation_id"],
            ["policy_activation.id"],
            name=op.f("fk_policy_delivery_activation_id_policy_activation"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_delivery")),
    )
    with op.batch_alter_table("policy_delivery", schema=None) as batch_op:
        batch_op.create_index(
            "ix_policy_delivery_state_created_at", ["state", "created_at"], unique=False
        )
        batch_op.create_index(
            "ix_policy_delivery_subscription_id", ["subscription_id"], unique=False
        )

    op.create_table(
        "policy_delivery_attempt",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["policy_delivery.id"],
            name=op.f("fk_policy_delivery_attempt_delivery_id_policy_delivery"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_delivery_attempt")),
    )
    with op.batch_alter_table("policy_delivery_attempt", schema=None) as batch_op:
        batch_op.create_index(
            "ix_policy_delivery_attempt_delivery_id", ["delivery_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("policy_delivery_attempt", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_delivery_attempt_delivery_id")
    op.drop_table("policy_delivery_attempt")
    with op.batch_alter_table("policy_delivery", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_delivery_subscription_id")
        batch_op.drop_index("ix_policy_delivery_state_created_at")
    op.drop_table("policy_delivery")
    op.drop_table("policy_subscription")
    with op.batch_alter_table("policy_activation", schema=None) as batch_op:
        batch_op.drop_index("ix_policy_activation_policy_id_requested_at")
        batch_op.drop_index("ix_policy_activation_state_effective_at")
    op.drop_table("policy_activation")
    with op.batch_alter_table("policy_version", schema=None) as batch_op:
        batch_op.drop_index("uq_policy_version_one_active")
    op.drop_table("policy_version")
    op.drop_table("policy")
