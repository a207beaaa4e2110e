"""Tasks: page work (comparisons, checks) run by worker processes.

Revision ID: 0011
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "task",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("params", sa.Text, nullable=False),
        sa.Column("key", sa.String, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("stop_requested", sa.Boolean, nullable=False),
        sa.Column("progress", sa.Text, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("error", sa.String, nullable=False),
        sa.Column("owner", sa.String, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=True),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=True),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("forward_passes", sa.Integer, nullable=False),
    )
    op.create_index("ix_task_key", "task", ["key"])


def downgrade() -> None:
    op.drop_index("ix_task_key", "task")
    op.drop_table("task")
