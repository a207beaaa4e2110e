"""Full-text search on PostgreSQL: a GIN index over the snapshots' title and text as a tsvector.

SQLite has its FTS5 table since revision 0001; this revision does nothing there. On PostgreSQL the
index is an expression index (no extra column), over the same expression `core.library.snapshots` queries,
with accents folded by `unaccent` as FTS5's `remove_diacritics` folds them ("brulee" finds "brûlée").
`unaccent` is not immutable, so an immutable wrapper (the documented way to index it) is created.

Revision ID: 0009
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

DOCUMENT = "to_tsvector('simple', rashomon_unaccent(coalesce(title, '') || ' ' || coalesce(text, '')))"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute("CREATE OR REPLACE FUNCTION rashomon_unaccent(text) RETURNS text "
               "LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT AS $$ SELECT public.unaccent('public.unaccent', $1) $$")
    op.execute(f"CREATE INDEX ix_snapshot_search ON snapshot USING GIN ({DOCUMENT})")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_snapshot_search")
    op.execute("DROP FUNCTION IF EXISTS rashomon_unaccent(text)")
