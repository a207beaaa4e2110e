"""Corpus jobs may also search each input for flipping edits (attack, counterfactual agreement, fragility).

Revision ID: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("corpus_job") as batch:
        batch.add_column(sa.Column("edits", sa.Text, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("corpus_job") as batch:
        batch.drop_column("edits")
