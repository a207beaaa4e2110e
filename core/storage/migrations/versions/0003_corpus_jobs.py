"""Corpus jobs and their items.

Revision ID: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "corpus_job",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("source", sa.String, nullable=False, server_default=""),
        sa.Column("model", sa.String, nullable=False, server_default=""),
        sa.Column("methods", sa.Text, nullable=False),
        sa.Column("options", sa.Text, nullable=False, server_default="{}"),
        sa.Column("k", sa.Integer, nullable=False, server_default="5"),
        sa.Column("status", sa.String, nullable=False, server_default="queued"),
        sa.Column("stop_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.String, nullable=False, server_default=""),
        sa.Column("total", sa.Integer, nullable=False, server_default="0"),
        sa.Column("done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("failed", sa.Integer, nullable=False, server_default="0"),
        sa.Column("seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("heartbeat_at", sa.DateTime, nullable=True),
    )
    op.create_table(
        "corpus_item",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("job_id", sa.Integer, sa.ForeignKey("corpus_job.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("origin", sa.String, nullable=False, server_default=""),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("gold_label", sa.String, nullable=False, server_default=""),
        sa.Column("status", sa.String, nullable=False, server_default="pending"),
        sa.Column("predicted_label", sa.String, nullable=False, server_default=""),
        sa.Column("result", sa.Text, nullable=False, server_default=""),
        sa.Column("seconds", sa.Float, nullable=False, server_default="0"),
        sa.Column("error", sa.String, nullable=False, server_default=""),
    )
    op.create_index("ix_corpus_item_job_id", "corpus_item", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_corpus_item_job_id", "corpus_item")
    op.drop_table("corpus_item")
    op.drop_table("corpus_job")
