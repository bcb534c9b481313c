"""Initial schema: API keys, opt-out registry, cached answers, audit events, quota ledger.

Revision ID: 0001
Revises:
Create Date: 2026-11-22 03:34:50.042964
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table(
        "api_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_key")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_key_key_hash")),
    )
    op.create_table(
        "audit_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_event")),
    )
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.create_index("ix_audit_event_action_at", ["action", "at"], unique=False)

    op.create_table(
        "cached_answer",
        sa.Column("namespace", sa.String(length=64), nullable=False),
        sa.Column("identity_key", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Float(), nullable=True),
        sa.Column("fact", sa.String(length=300), nullable=False),
        sa.Column("fetched_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("namespace", "identity_key", name=op.f("pk_cached_answer")),
    )
    with op.batch_alter_table("cached_answer", schema=None) as batch_op:
        batch_op.create_index("ix_cached_answer_identity_key", ["identity_key"], unique=False)
        batch_op.create_index(
            "ix_cached_answer_namespace_kind", ["namespace", "kind"], unique=False
        )

    op.create_table(
        "opt_out",
        sa.Column("identity_key", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("identity_key", name=op.f("pk_opt_out")),
    )
    op.create_table(
        "quota_ledger",
        sa.Column("provider", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("provider", "window_start", name=op.f("pk_quota_ledger")),
    )


def downgrade() -> None:

    op.drop_table("quota_ledger")
    op.drop_table("opt_out")
    with op.batch_alter_table("cached_answer", schema=None) as batch_op:
        batch_op.drop_index("ix_cached_answer_namespace_kind")
        batch_op.drop_index("ix_cached_answer_identity_key")

    op.drop_table("cached_answer")
    with op.batch_alter_table("audit_event", schema=None) as batch_op:
        batch_op.drop_index("ix_audit_event_action_at")

    op.drop_table("audit_event")
    op.drop_table("api_key")
