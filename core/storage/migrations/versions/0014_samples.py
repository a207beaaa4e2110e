"""The sample workspace: results the workers compute after the default model's build are marked as samples (one
click removes them all); the model build's task kind is `model_build`.

Revision ID: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

MARKED = ("demo", "corpus_job", "check_record", "comparison_report", "explanation_record")


def upgrade() -> None:
    for table in MARKED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("sample", sa.Boolean, nullable=False, server_default=sa.false()))
    op.execute(sa.text("UPDATE task SET kind = 'model_build' WHERE kind = 'build'"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE task SET kind = 'build' WHERE kind = 'model_build'"))
    for table in MARKED:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("sample")
