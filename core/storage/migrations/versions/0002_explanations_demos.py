"""Stored explanation results and saved demos.

Revision ID: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "explanation_record",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_name", sa.String, nullable=False),
        sa.Column("model_fingerprint", sa.String, nullable=False),
        sa.Column("text_sha256", sa.String, nullable=False),
        sa.Column("method", sa.String, nullable=False),
        sa.Column("params_key", sa.String, nullable=False),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("seconds", sa.Float, nullable=False),
        sa.Column("forward_passes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("model_fingerprint", "text_sha256", "method", "params_key", "target"),
    )
    op.create_index("ix_explanation_record_model_fingerprint", "explanation_record", ["model_fingerprint"])
    op.create_index("ix_explanation_record_text_sha256", "explanation_record", ["text_sha256"])
    op.create_table(
        "demo",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False, unique=True),
        sa.Column("note", sa.String, nullable=False, server_default=""),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("demo")
    op.drop_index("ix_explanation_record_text_sha256", "explanation_record")
    op.drop_index("ix_explanation_record_model_fingerprint", "explanation_record")
    op.drop_table("explanation_record")
