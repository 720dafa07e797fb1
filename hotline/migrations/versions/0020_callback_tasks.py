"""callback tasks (漏接回拨, virtual hold)

Revision ID: 0020
Revises: 0050
Create Date: 2026-11-27 18:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import hotline.db

revision = "0020"
down_revision = "0050"
branch_labels = None
depends_on = None

REASONS = sa.Enum(
    "abandoned_queue", "abandoned_ivr", "lost", "virtual_hold", "fallback",
    name="callbackreason", native_enum=False, length=32,
)  # fmt: skip
STATUSES = sa.Enum(
    "open", "dialling", "done", "failed", "cancelled", name="callbackstatus", native_enum=False, length=32
)


def upgrade() -> None:
    op.create_table(
        "callback_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("caller", sa.String(length=64), nullable=False),
        sa.Column("call_id", sa.String(length=64), nullable=False),
        sa.Column("queue", sa.String(length=32), nullable=False),
        sa.Column("reason", REASONS, nullable=False),
        sa.Column("status", STATUSES, nullable=False),
        sa.Column("created_at", hotline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("entered_at", hotline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", hotline.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("missed", sa.Integer(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("seat_id", sa.Integer(), nullable=True),
        sa.Column("done_at", hotline.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(["seat_id"], ["seats.id"], name=op.f("fk_callback_tasks_seat_id_seats")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_callback_tasks")),
    )
    with op.batch_alter_table("callback_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_callback_tasks_caller"), ["caller"], unique=False)
        batch_op.create_index(batch_op.f("ix_callback_tasks_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("callback_tasks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_callback_tasks_status"))
        batch_op.drop_index(batch_op.f("ix_callback_tasks_caller"))
    op.drop_table("callback_tasks")
