"""Search that stems and finds Chinese words: "parks" finds "park", "训练数据" and "房间" are found inside sentences.

Words are first separated by the word layer where the script does not separate them (core/words.py `spaced`:
Chinese through jieba, Japanese through TinySegmenter): a full-text index's own tokenizer keeps a run of Han
characters as one token, so a word inside a sentence could not be found (and trigram indexes cannot serve the
two-character words most Chinese words are). The spaced title and text are kept in `snapshot.search_text` ("" for
text that needs no segmenting).
SQLite: the FTS5 table is rebuilt with the porter stemmer over the same unicode61 tokenizer (accents still folded:
"brulee" finds "brûlée") and filled again, spaced. PostgreSQL: the search index is rebuilt over the `english`
configuration, on `search_text` where there is one (core.library.snapshots.SEARCH_DOCUMENT, which the queries use).

Revision ID: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

STEMMED = "porter unicode61 remove_diacritics 2"
PLAIN = "unicode61 remove_diacritics 2"
DOCUMENT = ("to_tsvector('english', rashomon_unaccent(CASE WHEN search_text = '' THEN "
            "coalesce(title, '') || ' ' || coalesce(text, '') ELSE search_text END))")
OLD_DOCUMENT = "to_tsvector('simple', rashomon_unaccent(coalesce(title, '') || ' ' || coalesce(text, '')))"


def _spaced_rows(bind) -> list[tuple[int, str, str]]:
    """(id, spaced title, spaced text) of every readable snapshot; `search_text` is filled on the way."""
    from core.words import for_search, needs_segmenting

    rows = []
    for snapshot_id, title, text in bind.execute(sa.text(
            "SELECT id, coalesce(title, ''), coalesce(text, '') FROM snapshot WHERE error IS NULL OR error = ''")).all():
        if needs_segmenting(title + text):
            title, text = for_search(title), for_search(text)
            bind.execute(sa.text("UPDATE snapshot SET search_text = :s WHERE id = :id"),
                         {"s": title + "\n" + text, "id": snapshot_id})
        rows.append((snapshot_id, title, text))
    return rows


def upgrade() -> None:
    with op.batch_alter_table("snapshot") as batch:
        batch.add_column(sa.Column("search_text", sa.Text, nullable=False, server_default=""))
    bind = op.get_bind()
    rows = _spaced_rows(bind)
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS snapshot_fts")
        op.execute(f"CREATE VIRTUAL TABLE snapshot_fts USING fts5(title, text, tokenize='{STEMMED}')")
        for snapshot_id, title, text in rows:
            bind.execute(sa.text("INSERT INTO snapshot_fts(rowid, title, text) VALUES (:id, :title, :text)"),
                         {"id": snapshot_id, "title": title, "text": text})
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_snapshot_search")
        op.execute(f"CREATE INDEX ix_snapshot_search ON snapshot USING GIN ({DOCUMENT})")


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS snapshot_fts")
        op.execute(f"CREATE VIRTUAL TABLE snapshot_fts USING fts5(title, text, tokenize='{PLAIN}')")
        op.execute("INSERT INTO snapshot_fts(rowid, title, text) SELECT id, coalesce(title, ''), coalesce(text, '') "
                   "FROM snapshot WHERE error IS NULL OR error = ''")
    elif bind.dialect.name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_snapshot_search")
        op.execute(f"CREATE INDEX ix_snapshot_search ON snapshot USING GIN ({OLD_DOCUMENT})")
    with op.batch_alter_table("snapshot") as batch:
        batch.drop_column("search_text")
