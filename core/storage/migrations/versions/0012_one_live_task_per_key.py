"""One live task per key, held by the database: a partial unique index over queued and running tasks.

Submitting checked for a live task and then inserted; eight processes submitting the same work at once made
three to eight queued tasks. Older duplicates are ended as stopped (their newest live twin is kept) before the
index is made.

Revision ID: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

LIVE = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.execute(sa.text(
        f"UPDATE task SET status = 'stopped', error = 'A duplicate of a newer live task with the same work.' "
        f"WHERE {LIVE} AND id NOT IN (SELECT MAX(id) FROM task WHERE {LIVE} GROUP BY key)"))
    op.create_index("ux_task_live_key", "task", ["key"], unique=True,
                    sqlite_where=sa.text(LIVE), postgresql_where=sa.text(LIVE))


def downgrade() -> None:
    op.drop_index("ux_task_live_key", "task")
