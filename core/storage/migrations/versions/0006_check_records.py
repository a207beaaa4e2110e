"""Stored trust checks (stability, randomisation).

Revision ID: 0006
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "check_record",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("model_name", sa.String, nullable=False),
        sa.Column("model_fingerprint", sa.String, nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_check_record_model_fingerprint", "check_record", ["model_fingerprint"])


def downgrade() -> None:
    op.drop_index("ix_check_record_model_fingerprint", "check_record")
    op.drop_table("check_record")
