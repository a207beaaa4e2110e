"""Who did what: every table a person causes records who asked (`requested_by`; rows from before say "unknown"),
notes and verdicts on results (`note`), and the request log (`request_log`: each time someone asked, shared or not).

Revision ID: 0017
"""

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

PERSON_TABLES = ("link", "link_tag", "tag", "snapshot", "explanation_record", "comparison_report", "check_record",
                 "demo", "stored_text", "corpus_job", "training_set", "task")


def upgrade() -> None:
    for table in PERSON_TABLES:
        op.add_column(table, sa.Column("requested_by", sa.String, nullable=False, server_default="unknown"))
    op.create_table(
        "note",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("author", sa.String, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("verdict", sa.String, nullable=False),
        sa.Column("method", sa.String, nullable=False),
        sa.Column("ref_kind", sa.String, nullable=False),
        sa.Column("ref_id", sa.String, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("page", sa.String, nullable=False),
        sa.Column("address", sa.Text, nullable=False),
        sa.Column("tags", sa.String, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=True),
    )
    op.create_index("ix_note_author", "note", ["author"])
    op.create_index("ix_note_ref_kind", "note", ["ref_kind"])
    op.create_table(
        "request_log",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("person", sa.String, nullable=False),
        sa.Column("kind", sa.String, nullable=False),
        sa.Column("ref", sa.String, nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_request_log_person", "request_log", ["person"])


def downgrade() -> None:
    op.drop_table("request_log")
    op.drop_table("note")
    for table in PERSON_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("requested_by")
