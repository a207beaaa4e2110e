"""Corpus jobs: how many inputs get faithfulness metrics (0 = every input).

Revision ID: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Jobs created before this column measured faithfulness on every input, which 0 means.
    with op.batch_alter_table("corpus_job") as batch:
        batch.add_column(sa.Column("faithfulness_inputs", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("corpus_job") as batch:
        batch.drop_column("faithfulness_inputs")
