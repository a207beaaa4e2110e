"""Links, snapshots, tags and the snapshot full-text index.

Revision ID: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "link",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("url", sa.String, nullable=False),
        sa.Column("normalized_url", sa.String, nullable=False),
        sa.Column("title", sa.String, nullable=False, server_default=""),
        sa.Column("notes", sa.String, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )
    op.create_index("ix_link_normalized_url", "link", ["normalized_url"], unique=True)
    op.create_table(
        "tag",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("name", sa.String, nullable=False),
    )
    op.create_index("ix_tag_name", "tag", ["name"], unique=True)
    op.create_table(
        "link_tag",
        sa.Column("link_id", sa.Integer, sa.ForeignKey("link.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("tag_id", sa.Integer, sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True),
    )
    op.create_table(
        "snapshot",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("link_id", sa.Integer, sa.ForeignKey("link.id"), nullable=False),
        sa.Column("fetched_at", sa.DateTime, nullable=False),
        sa.Column("final_url", sa.String, nullable=False, server_default=""),
        sa.Column("status_code", sa.Integer, nullable=True),
        sa.Column("content_type", sa.String, nullable=False, server_default=""),
        sa.Column("title", sa.String, nullable=False, server_default=""),
        sa.Column("authors", sa.String, nullable=False, server_default=""),
        sa.Column("publish_date", sa.String, nullable=False, server_default=""),
        sa.Column("text", sa.Text, nullable=False, server_default=""),
        sa.Column("raw_html", sa.LargeBinary, nullable=True),
        sa.Column("extractor", sa.String, nullable=False, server_default=""),
        sa.Column("extractor_version", sa.String, nullable=False, server_default=""),
        sa.Column("text_sha256", sa.String, nullable=False, server_default=""),
        sa.Column("byte_size", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", sa.String, nullable=False, server_default=""),
    )
    op.create_index("ix_snapshot_link_id", "snapshot", ["link_id"])
    if op.get_bind().dialect.name == "sqlite":
        # FTS5 index over snapshot title and text; core.library.snapshots keeps it in sync (rowid = snapshot id).
        op.execute(
            "CREATE VIRTUAL TABLE snapshot_fts USING fts5(title, text, tokenize='unicode61 remove_diacritics 2')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE snapshot_fts")
    op.drop_table("snapshot")
    op.drop_table("link_tag")
    op.drop_table("tag")
    op.drop_table("link")
