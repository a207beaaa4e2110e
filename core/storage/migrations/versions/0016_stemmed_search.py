"""Search with stemming: "parks" finds "park", "approving" finds "approves".

SQLite: the FTS5 table is rebuilt with the porter stemmer over the same unicode61 tokenizer (accents still folded:
"brulee" finds "brûlée") and filled again from the snapshots. PostgreSQL: the search index is rebuilt over the
`english` text search configuration (core.library.snapshots.SEARCH_CONFIG, which the queries use). The Chinese
issue extends this one search layer.

Revision ID: 0016
"""

from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

STEMMED = "porter unicode61 remove_diacritics 2"
PLAIN = "unicode61 remove_diacritics 2"


def document(config: str) -> str:
    return f"to_tsvector('{config}', rashomon_unaccent(coalesce(title, '') || ' ' || coalesce(text, '')))"


def _rebuild_sqlite(tokenizer: str) -> None:
    op.execute("DROP TABLE IF EXISTS snapshot_fts")
    op.execute(f"CREATE VIRTUAL TABLE snapshot_fts USING fts5(title, text, tokenize='{tokenizer}')")
    op.execute("INSERT INTO snapshot_fts(rowid, title, text) SELECT id, coalesce(title, ''), coalesce(text, '') "
               "FROM snapshot WHERE error IS NULL OR error = ''")


def _rebuild_postgresql(config: str) -> None:
    op.execute("DROP INDEX IF EXISTS ix_snapshot_search")
    op.execute(f"CREATE INDEX ix_snapshot_search ON snapshot USING GIN ({document(config)})")


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _rebuild_sqlite(STEMMED)
    elif dialect == "postgresql":
        _rebuild_postgresql("english")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        _rebuild_sqlite(PLAIN)
    elif dialect == "postgresql":
        _rebuild_postgresql("simple")
