"""Corpus jobs record which process runs them.

Revision ID: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("corpus_job") as batch:
        batch.add_column(sa.Column("owner", sa.String, nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("corpus_job") as batch:
        batch.drop_column("owner")
