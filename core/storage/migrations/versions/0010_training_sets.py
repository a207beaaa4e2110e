"""Labelled training sets attached to models (training-data attribution).

Revision ID: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "training_set",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("model_path", sa.String, nullable=False),
        sa.Column("model_name", sa.String, nullable=False),
        sa.Column("name", sa.String, nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("sha256", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_training_set_model_path", "training_set", ["model_path"])
    op.create_table(
        "training_example",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("set_id", sa.Integer, sa.ForeignKey("training_set.id", ondelete="CASCADE"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("example_id", sa.String, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("label", sa.String, nullable=False),
    )
    op.create_index("ix_training_example_set_id", "training_example", ["set_id"])


def downgrade() -> None:
    op.drop_index("ix_training_example_set_id", "training_example")
    op.drop_table("training_example")
    op.drop_index("ix_training_set_model_path", "training_set")
    op.drop_table("training_set")
