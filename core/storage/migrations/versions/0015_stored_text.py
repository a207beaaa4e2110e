"""Free text stored by a short key: Compare and Training data addresses carry `t=KEY`, not the text.

Revision ID: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table("stored_text",
                    sa.Column("key", sa.String(16), primary_key=True),
                    sa.Column("text", sa.Text, nullable=False),
                    sa.Column("created_at", sa.DateTime, nullable=False))


def downgrade() -> None:
    op.drop_table("stored_text")
