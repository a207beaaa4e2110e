"""Stored comparison reports: everything one Compare view shows.

Revision ID: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comparison_report",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_name", sa.String, nullable=False),
        sa.Column("model_fingerprint", sa.String, nullable=False),
        sa.Column("text_sha256", sa.String, nullable=False),
        sa.Column("view_key", sa.Text, nullable=False),
        sa.Column("target", sa.String, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.UniqueConstraint("model_fingerprint", "text_sha256", "view_key", "target"),
    )
    op.create_index("ix_comparison_report_model_fingerprint", "comparison_report", ["model_fingerprint"])
    op.create_index("ix_comparison_report_text_sha256", "comparison_report", ["text_sha256"])


def downgrade() -> None:
    op.drop_index("ix_comparison_report_text_sha256", "comparison_report")
    op.drop_index("ix_comparison_report_model_fingerprint", "comparison_report")
    op.drop_table("comparison_report")
