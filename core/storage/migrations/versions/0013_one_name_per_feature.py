"""One name per feature: the task kind that finds the training examples behind a prediction is `training_data`,
as the page, the module (`core/analyses/training_data`) and the CLI group (`rashomon training-data`) say.

Revision ID: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(sa.text("UPDATE task SET kind = 'training_data' WHERE kind = 'training_examples'"))


def downgrade() -> None:
    op.execute(sa.text("UPDATE task SET kind = 'training_examples' WHERE kind = 'training_data'"))
