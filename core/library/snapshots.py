"""The link library: links, their snapshots over time, tags, search, bulk snapshotting.

Every function takes the engine first, as everywhere in core, so pages, the CLI
and tests all go through the same code. Snapshots are append-only: a refresh adds a version and
a failed fetch is stored as a failed attempt, never touching earlier snapshots.
"""

from __future__ import annotations

import difflib
import hashlib
import math
import re
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Engine, func, text
from sqlmodel import Session, col, select

from core.library.bounded import Budget, BudgetExceeded, run_bounded
from core.library.extract import ExtractionRefused, extract_html, extract_plain_text
from core.library.fetch import FetchError, FetchLimits, FetchResult, fetch
from core.library.urls import InvalidURLError, has_credentials, normalize_url, without_credentials
from core.storage.db import session_scope
from core.storage.schema import Link, LinkTag, Snapshot, Tag, utcnow
from core.storage.settings import load_settings
from core.words import for_search, needs_segmenting

Fetcher = Callable[[str], FetchResult]
ProgressFn = Callable[[float, str], None]


class LibraryError(ValueError):
    """A request on the library that cannot be done (unknown id, bad tag name, bad URL)."""


@dataclass(frozen=True)
class SnapshotOutcome:
    link: Link
    snapshot: Snapshot | None  # None only when the URL itself was invalid
    tags: list[str]
    created_link: bool
    unchanged_since: Snapshot | None = None  # the earlier snapshot with the same text, when nothing changed
    notice: str = ""  # something the user should know, e.g. credentials removed from the link

    @property
    def error(self) -> str:
        return self.snapshot.error if self.snapshot else ""

    def to_dict(self) -> dict:
        s = self.snapshot
        return {
            "link_id": self.link.id, "snapshot_id": s.id if s else None, "url": self.link.url,
            "normalized_url": self.link.normalized_url, "final_url": s.final_url if s else "",
            "status": s.status_code if s else None, "title": s.title if s else "", "text": s.text if s else "",
            "extractor": s.extractor if s else "", "tags": self.tags, "error": self.error,
            "fetched_at": s.fetched_at.isoformat() if s else None,
            "unchanged_since": self.unchanged_since.id if self.unchanged_since else None,
            "notice": self.notice, "requested_by": s.requested_by if s else self.link.requested_by,
        }


@dataclass
class LinkView:
    id: int
    url: str
    normalized_url: str
    title: str
    notes: str
    created_at: datetime
    tags: list[str] = field(default_factory=list)
    snapshot_count: int = 0
    latest_snapshot_id: int | None = None
    latest_error: str = ""
    latest_fetched_at: datetime | None = None
    latest_good_snapshot_id: int | None = None  # the newest snapshot with text (a failed refresh keeps it usable)
    requested_by: str = "unknown"  # who added the link
    latest_requested_by: str = ""  # who took the newest snapshot


# -- tags ------------------------------------------------------------------------------------------
def clean_tag(name: str) -> str:
    """A tag's one spelling: NFC-normalised (so "café" is one tag however it was typed), invisible
    characters (zero-width spaces, joiners, direction marks) removed, lower case, spaces as dashes."""
    visible = "".join(c for c in unicodedata.normalize("NFC", name) if unicodedata.category(c) not in ("Cf", "Cc"))
    cleaned = re.sub(r"\s+", "-", visible.strip().lower())
    if not cleaned or "," in cleaned or len(cleaned) > 64:
        raise LibraryError(f"'{name}' is not a usable tag: use 1-64 characters and no commas.")
    return cleaned


def _insert_if_absent(session: Session, model: type, values: dict) -> bool:
    """INSERT ... ON CONFLICT DO NOTHING: two processes creating the same row at once both succeed (one
    inserts, the other finds it), where a select-then-insert lets the loser hit a unique constraint."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        session.add(model(**values))
        session.flush()
        return True
    # RETURNING, not rowcount: psycopg reports -1 for an INSERT ... ON CONFLICT through SQLAlchemy.
    statement = insert(model).values(**values).on_conflict_do_nothing().returning(*model.__table__.primary_key)
    return session.execute(statement).first() is not None


def _get_or_create_tag(session: Session, name: str) -> Tag:
    name = clean_tag(name)
    tag = session.exec(select(Tag).where(Tag.name == name)).first()
    if tag is None:
        _insert_if_absent(session, Tag, {"name": name})
        tag = session.exec(select(Tag).where(Tag.name == name)).one()
    return tag


def _tags_of(session: Session, link_id: int) -> list[str]:
    rows = session.exec(select(Tag.name).join(LinkTag, LinkTag.tag_id == Tag.id).where(LinkTag.link_id == link_id))
    return sorted(rows.all())


def add_tags(engine: Engine, link_ids: Iterable[int], names: Iterable[str]) -> None:
    names = [clean_tag(n) for n in names if n.strip()]
    with session_scope(engine) as session:
        for link_id in link_ids:
            _require_link(session, link_id)
            tag_link(session, link_id, names)


def _insert_many_if_absent(session: Session, model: type, rows: list[dict]) -> int:
    """`_insert_if_absent` for many rows in one statement; how many were new."""
    if not rows:
        return 0
    dialect = session.get_bind().dialect.name
    if dialect not in ("sqlite", "postgresql"):
        return sum(_insert_if_absent(session, model, row) for row in rows)
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert
    inserted = 0
    for start in range(0, len(rows), 500):  # SQLite's bound on variables in one statement
        statement = insert(model).values(rows[start:start + 500]).on_conflict_do_nothing().returning(
            *model.__table__.primary_key)
        inserted += len(session.execute(statement).all())
    return inserted


def insert_links(session: Session, rows: list[dict]) -> int:
    """Insert links (url, normalized_url, title, notes, created_at) not yet stored; how many were new."""
    return _insert_many_if_absent(session, Link, rows)


def link_ids(session: Session, normalized_urls: Sequence[str]) -> dict[str, int]:
    ids: dict[str, int] = {}
    for start in range(0, len(normalized_urls), 500):
        chunk = normalized_urls[start:start + 500]
        ids |= dict(session.exec(select(Link.normalized_url, Link.id).where(col(Link.normalized_url).in_(chunk))).all())
    return ids


def tag_links(session: Session, tags_by_link: dict[int, Iterable[str]]) -> None:
    """Give each link its (clean) tags, creating missing tags, in a few statements."""
    names = sorted({name for names in tags_by_link.values() for name in names})
    _insert_many_if_absent(session, Tag, [{"name": name} for name in names])
    tag_ids: dict[str, int] = {}
    for start in range(0, len(names), 500):
        tag_ids |= dict(session.exec(select(Tag.name, Tag.id).where(col(Tag.name).in_(names[start:start + 500]))).all())
    _insert_many_if_absent(session, LinkTag, [{"link_id": link_id, "tag_id": tag_ids[name]}
                                              for link_id, names in tags_by_link.items() for name in set(names)])


def tag_link(session: Session, link_id: int, names: Iterable[str]) -> None:
    """Give a link these (clean) tags inside the caller's transaction."""
    for name in names:
        tag = _get_or_create_tag(session, name)
        if session.get(LinkTag, (link_id, tag.id)) is None:
            session.add(LinkTag(link_id=link_id, tag_id=tag.id))
    session.flush()


def remove_tags(engine: Engine, link_ids: Iterable[int], names: Iterable[str]) -> None:
    with session_scope(engine) as session:
        for name in names:
            tag = session.exec(select(Tag).where(Tag.name == clean_tag(name))).first()
            if tag is None:
                continue
            for link_id in link_ids:
                row = session.get(LinkTag, (link_id, tag.id))
                if row is not None:
                    session.delete(row)


def set_tags(engine: Engine, link_id: int, names: Iterable[str]) -> list[str]:
    """Make the link's tags exactly `names` (added and removed as needed); returns them."""
    wanted = sorted({clean_tag(n) for n in names if n.strip()})
    with session_scope(engine) as session:
        current = _tags_of(session, _require_link(session, link_id).id)
    remove_tags(engine, [link_id], [t for t in current if t not in wanted])
    add_tags(engine, [link_id], wanted)
    return wanted


def list_tags(engine: Engine) -> list[tuple[str, int]]:
    """(tag, number of links) pairs, by name."""
    with session_scope(engine) as session:
        rows = session.exec(
            select(Tag.name, func.count(LinkTag.link_id)).join(LinkTag, LinkTag.tag_id == Tag.id, isouter=True)
            .group_by(Tag.id).order_by(Tag.name)
        ).all()
        return [(name, int(count)) for name, count in rows]


def rename_tag(engine: Engine, old: str, new: str) -> None:
    old, new = clean_tag(old), clean_tag(new)
    with session_scope(engine) as session:
        tag = session.exec(select(Tag).where(Tag.name == old)).first()
        if tag is None:
            raise LibraryError(f"There is no tag '{old}'.")
        if old == new:
            return
        if session.exec(select(Tag).where(Tag.name == new)).first() is not None:
            raise LibraryError(f"A tag '{new}' already exists; merge '{old}' into it instead.")
        tag.name = new
        session.add(tag)


@dataclass(frozen=True)
class TagMerge:
    """What a tag merge did: links that gained the target tag, and links that already had it (the source tag
    is removed from both)."""

    moved: int
    already_tagged: int

    def sentence(self, source: str, target: str) -> str:
        return (f"Merged tag '{source}' into '{target}': {self.moved} link(s) moved"
                + (f", {self.already_tagged} already had '{target}'" if self.already_tagged else "")
                + f"; '{source}' is gone.")


def merge_tags(engine: Engine, source: str, target: str) -> TagMerge:
    """Move every link of `source` to `target` and delete `source`."""
    source, target = clean_tag(source), clean_tag(target)
    if source == target:
        raise LibraryError("Merging a tag into itself does nothing; pick two different tags.")
    with session_scope(engine) as session:
        src = session.exec(select(Tag).where(Tag.name == source)).first()
        if src is None:
            raise LibraryError(f"There is no tag '{source}'.")
        dst = _get_or_create_tag(session, target)
        moved = already = 0
        for row in session.exec(select(LinkTag).where(LinkTag.tag_id == src.id)).all():
            if session.get(LinkTag, (row.link_id, dst.id)) is None:
                session.add(LinkTag(link_id=row.link_id, tag_id=dst.id))
                moved += 1
            else:
                already += 1
            session.delete(row)
        session.flush()
        session.delete(src)
        return TagMerge(moved, already)


def delete_tag(engine: Engine, name: str) -> None:
    """Delete a tag; its links stay."""
    with session_scope(engine) as session:
        tag = session.exec(select(Tag).where(Tag.name == clean_tag(name))).first()
        if tag is None:
            raise LibraryError(f"There is no tag '{name}'.")
        for row in session.exec(select(LinkTag).where(LinkTag.tag_id == tag.id)).all():
            session.delete(row)
        session.flush()
        session.delete(tag)


# -- links and snapshots ----------------------------------------------------------------------------
def _require_link(session: Session, link_id: int) -> Link:
    link = session.get(Link, link_id)
    if link is None:
        raise LibraryError(f"There is no link with id {link_id}.")
    return link


def get_or_create_link(session: Session, url: str, title: str = "", notes: str = "") -> tuple[Link, bool]:
    try:
        normalized = normalize_url(url)
    except InvalidURLError as exc:
        raise LibraryError(str(exc)) from exc
    link = session.exec(select(Link).where(Link.normalized_url == normalized)).first()
    if link is not None:
        return link, False
    created = _insert_if_absent(session, Link, {"url": without_credentials(url), "normalized_url": normalized,
                                                "title": title, "notes": notes, "created_at": utcnow()})
    return session.exec(select(Link).where(Link.normalized_url == normalized)).one(), created


def make_snapshot(link: Link, result: FetchResult | None = None, error: FetchError | None = None) -> Snapshot:
    """A Snapshot row from a fetch result (extracting text) or from a failure."""
    if error is not None:
        return Snapshot(link_id=link.id, final_url=error.final_url, status_code=error.status, error=str(error))
    assert result is not None
    settings = load_settings()
    budget = Budget(seconds=settings.extraction_seconds, memory_bytes=settings.extraction_mb << 20)
    try:
        if result.is_html:
            extracted = run_bounded(extract_html, result.text, result.final_url, budget=budget,
                                    what="extracting the page's text")
        else:
            extracted = extract_plain_text(result.text)
    except (ExtractionRefused, BudgetExceeded) as exc:
        return Snapshot(link_id=link.id, final_url=result.final_url, status_code=result.status,
                        content_type=result.content_type, raw_html=zlib.compress(result.body, 6),
                        byte_size=len(result.body), error=str(exc))
    snapshot = Snapshot(
        link_id=link.id, final_url=result.final_url, status_code=result.status, content_type=result.content_type,
        title=extracted.title, authors=extracted.authors, publish_date=extracted.publish_date, text=extracted.text,
        raw_html=zlib.compress(result.body, 6), extractor=extracted.extractor,
        extractor_version=extracted.extractor_version,
        text_sha256=hashlib.sha256(extracted.text.encode("utf-8")).hexdigest(), byte_size=len(result.body),
    )
    if not extracted.text:
        snapshot.error = "No readable text was found on the page (it may be empty or built by JavaScript)."
    return snapshot


def _store_snapshot(session: Session, link: Link, snapshot: Snapshot) -> Snapshot:
    session.add(snapshot)
    session.flush()
    if not snapshot.error:
        if snapshot.title:
            link.title = snapshot.title
            session.add(link)
        title, body = for_search(snapshot.title), for_search(snapshot.text)  # segmented once, for both indexes
        if needs_segmenting(snapshot.title + snapshot.text):  # Chinese or Japanese: words spaced for the index
            snapshot.search_text = title + "\n" + body
            session.add(snapshot)
        if session.get_bind().dialect.name == "sqlite":
            session.execute(text("INSERT INTO snapshot_fts(rowid, title, text) VALUES (:id, :title, :text)"),
                            {"id": snapshot.id, "title": title, "text": body})
    return snapshot


def snapshot_url(engine: Engine, url: str, tags: Sequence[str] = (),
                 fetcher: Fetcher | None = None, limits: FetchLimits | None = None) -> SnapshotOutcome:
    """Add (or find) the link for `url`, fetch it, and store a new snapshot (failed or not)."""
    tags = [clean_tag(t) for t in tags if t.strip()]
    with session_scope(engine) as session:
        link, created = get_or_create_link(session, url)
    if tags:
        add_tags(engine, [link.id], tags)
    outcome = _snapshot_link(link, created, engine, fetcher, limits)
    if has_credentials(url):
        outcome = replace(outcome, notice="The user name and password in the link were removed before storing "
                                          "it; Rashomon never sends them to the server.")
    return outcome


def refresh_link(engine: Engine, link_id: int, fetcher: Fetcher | None = None,
                 limits: FetchLimits | None = None) -> SnapshotOutcome:
    with session_scope(engine) as session:
        link = _require_link(session, link_id)
    return _snapshot_link(link, False, engine, fetcher, limits)


def _snapshot_link(link: Link, created: bool, engine: Engine, fetcher: Fetcher | None,
                   limits: FetchLimits | None) -> SnapshotOutcome:
    fetch_page = fetcher or (lambda u: fetch(u, limits))
    try:
        snapshot = make_snapshot(link, result=fetch_page(link.url))
    except FetchError as exc:
        snapshot = make_snapshot(link, error=exc)
    except Exception as exc:  # a bug or a page no one foresaw: a failed snapshot with a reason, never a lost link
        snapshot = make_snapshot(link, error=FetchError(
            f"The page could not be snapshotted ({type(exc).__name__}: {str(exc)[:120]}).", "unexpected"))
    previous = latest_good_snapshot(engine, link.id)
    with session_scope(engine) as session:
        link = session.get(Link, link.id)
        _store_snapshot(session, link, snapshot)
        tags = _tags_of(session, link.id)
    unchanged = previous if previous is not None and not snapshot.error and \
        previous.text_sha256 == snapshot.text_sha256 else None
    return SnapshotOutcome(link=link, snapshot=snapshot, tags=tags, created_link=created, unchanged_since=unchanged)


@dataclass
class BulkSummary:
    outcomes: list[SnapshotOutcome] = field(default_factory=list)
    invalid: list[tuple[str, str]] = field(default_factory=list)  # (line, reason)

    @property
    def failures(self) -> list[tuple[str, str]]:
        return self.invalid + [(o.link.url, o.error) for o in self.outcomes if o.error]

    @property
    def succeeded(self) -> int:
        return sum(1 for o in self.outcomes if not o.error)


def snapshot_many(engine: Engine, lines: str | Iterable[str], tags: Sequence[str] = (),
                  fetcher: Fetcher | None = None, progress: ProgressFn | None = None,
                  limits: FetchLimits | None = None,
                  on_result: Callable[[str, SnapshotOutcome | None, str], None] | None = None) -> BulkSummary:
    """Snapshot one link per line; a failure in one never stops the rest.

    `on_result(url, outcome, error)` is called after each link (outcome None for an invalid line).
    """
    urls = [u.strip() for u in (lines.splitlines() if isinstance(lines, str) else lines)]
    urls = list(dict.fromkeys(u for u in urls if u and not u.startswith("#")))
    summary = BulkSummary()
    for index, url in enumerate(urls):
        if progress:
            progress(index / max(1, len(urls)), f"Fetching {url}")
        try:
            outcome = snapshot_url(engine, url, tags, fetcher, limits)
            summary.outcomes.append(outcome)
            if on_result:
                on_result(url, outcome, outcome.error)
        except LibraryError as exc:
            summary.invalid.append((url, str(exc)))
            if on_result:
                on_result(url, None, str(exc))
    if progress:
        progress(1.0, f"{summary.succeeded} of {len(urls)} links snapshotted")
    return summary


def get_snapshot(engine: Engine, snapshot_id: int) -> Snapshot | None:
    with session_scope(engine) as session:
        return session.get(Snapshot, snapshot_id)


def snapshots_of(engine: Engine, link_id: int) -> list[Snapshot]:
    """All snapshots of a link, newest first."""
    with session_scope(engine) as session:
        return list(session.exec(select(Snapshot).where(Snapshot.link_id == link_id)
                                 .order_by(col(Snapshot.fetched_at).desc(), col(Snapshot.id).desc())).all())


def raw_html(snapshot: Snapshot) -> str:
    """The stored page source as text (to be shown escaped, never rendered)."""
    if not snapshot.raw_html:
        return ""
    return zlib.decompress(snapshot.raw_html).decode("utf-8", errors="replace")


def diff_snapshots(old: Snapshot, new: Snapshot) -> str:
    """A unified diff of two snapshots' texts, line by line. Lines are compared without their line ends,
    so a last line that merely gained a newline (text added after it) is not shown as removed."""
    lines = list(difflib.unified_diff(
        old.text.splitlines(), new.text.splitlines(),
        fromfile=f"snapshot {old.id} ({old.fetched_at:%Y-%m-%d %H:%M:%S})",
        tofile=f"snapshot {new.id} ({new.fetched_at:%Y-%m-%d %H:%M:%S})", lineterm=""))
    return "\n".join(lines) + "\n" if lines else ""


def same_text_as(snapshots: Sequence[Snapshot]) -> dict[int, int]:
    """For each good snapshot whose text equals the good snapshot before it: that earlier snapshot's id."""
    out, previous = {}, None
    for snap in sorted(snapshots, key=lambda s: (s.fetched_at, s.id)):
        if snap.error:
            continue
        if previous is not None and snap.text_sha256 == previous.text_sha256:
            out[snap.id] = out.get(previous.id, previous.id)
        previous = snap
    return out


# PostgreSQL's text search configuration for snapshots: `english` stems ("parks" finds "park"), as SQLite's FTS5
# table does with the porter tokenizer; Chinese and Japanese words are spaced by the word layer first (the
# `search_text` column, and the FTS5 table's content). Migration 0016 indexes exactly this expression.
SEARCH_CONFIG = "english"
SEARCH_DOCUMENT = (f"to_tsvector('{SEARCH_CONFIG}', rashomon_unaccent(CASE WHEN search_text = '' THEN "
                   "coalesce(title, '') || ' ' || coalesce(text, '') ELSE search_text END))")


def _query_words(query: str) -> list[list[str]]:
    """The query's words, each as the words the word layer splits it into (a Chinese run is several: a phrase)."""
    out = []
    for word in re.findall(r"\w+", query, flags=re.UNICODE):
        parts = for_search(word).split() if needs_segmenting(word) else [word]
        out.append([p for p in parts if re.fullmatch(r"\w+", p)])
    return [parts for parts in out if parts]


def fts_query(query: str) -> str:
    """Turn free text into a safe FTS5 query: every word quoted (a Chinese run as the phrase of its words), all
    required, the last one a prefix."""
    phrases = [f'"{" ".join(parts)}"' for parts in _query_words(query)]
    if not phrases:
        return ""
    phrases[-1] += "*"
    return " ".join(phrases)


def ts_query(query: str) -> str:
    """The same query for PostgreSQL's `to_tsquery`: every word required (a Chinese run: its words adjacent, in
    order), the last one a prefix."""
    phrases = ["(" + " <-> ".join(f"'{p}'" for p in parts) + ")" for parts in _query_words(query)]
    if not phrases:
        return ""
    phrases[-1] = phrases[-1][:-1] + ":*)"
    return " & ".join(phrases)


def _search_ranks(session: Session, query: str) -> dict[int, float]:
    """Links matching `query` with a relevance (higher first): each database's own full-text index over
    the snapshots (SQLite FTS5 ranked by bm25, PostgreSQL tsvector/GIN ranked by ts_rank), plus links
    whose title or address contains every word (relevance 0 unless their snapshots match too)."""
    words = re.findall(r"\w+", query, flags=re.UNICODE)
    if not words:
        return {}
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # FTS5's rank (bm25, lower is better) is only available in a plain query over the FTS table.
        ranks = dict(session.execute(text("SELECT rowid, rank FROM snapshot_fts WHERE snapshot_fts MATCH :q"),
                                     {"q": fts_query(query)}).all())
        best: dict[int, float] = {}
        for snapshot_id, link_id in session.exec(select(Snapshot.id, Snapshot.link_id)
                                                 .where(col(Snapshot.id).in_(list(ranks)))).all():
            best[link_id] = max(best.get(link_id, -math.inf), -float(ranks[snapshot_id]))
        rows = list(best.items())
    elif dialect == "postgresql":
        document = SEARCH_DOCUMENT  # the expression migration 0016 indexes
        rows = session.execute(text(
            f"SELECT link_id, max(ts_rank({document}, q)) FROM snapshot, "
            f"to_tsquery('{SEARCH_CONFIG}', rashomon_unaccent(:q)) AS q "
            f"WHERE {document} @@ q GROUP BY link_id"), {"q": ts_query(query)}).all()
    else:  # any other database: every word somewhere in title or text, unranked
        statement = select(Snapshot.link_id)
        for word in words:
            pattern = f"%{_like_escaped(word)}%"
            statement = statement.where(col(Snapshot.title).ilike(pattern, escape="\\")
                                        | col(Snapshot.text).ilike(pattern, escape="\\"))
        rows = [(link_id, 0.0) for link_id in set(session.exec(statement).all())]
    ranks = {int(link_id): float(rank or 0.0) for link_id, rank in rows}
    statement = select(Link.id)
    for word in words:
        pattern = f"%{_like_escaped(word)}%"
        statement = statement.where(col(Link.title).ilike(pattern, escape="\\")
                                    | col(Link.url).ilike(pattern, escape="\\"))
    for link_id in session.exec(statement).all():
        ranks.setdefault(int(link_id), 0.0)
    return ranks


def _like_escaped(word: str) -> str:
    """A word matched literally by LIKE: `_` and `%` are wildcards there ("_" alone matched every link)."""
    return word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def list_links(engine: Engine, tags_all: Sequence[str] = (), tags_any: Sequence[str] = (), search: str = "",
               link_ids: Sequence[int] | None = None) -> list[LinkView]:
    """Links, newest first (most relevant first with a search), filtered by tags (all-of and any-of) and
    full-text search."""
    with session_scope(engine) as session:
        statement = select(Link).order_by(col(Link.created_at).desc(), col(Link.id).desc())
        if link_ids is not None:
            statement = statement.where(col(Link.id).in_(list(link_ids)))
        links = session.exec(statement).all()
        tag_rows = session.exec(select(LinkTag.link_id, Tag.name).join(Tag, Tag.id == LinkTag.tag_id)).all()
        tags_by_link: dict[int, list[str]] = {}
        for link_id, name in tag_rows:
            tags_by_link.setdefault(link_id, []).append(name)
        wanted_all = {clean_tag(t) for t in tags_all}
        wanted_any = {clean_tag(t) for t in tags_any}
        matches = _search_ranks(session, search) if search.strip() else None
        counts = dict(session.exec(select(Snapshot.link_id, func.count(Snapshot.id)).group_by(Snapshot.link_id)).all())
        latest_ids = session.exec(select(func.max(Snapshot.id)).group_by(Snapshot.link_id)).all()
        latest = {s.link_id: s for s in session.exec(select(Snapshot).where(col(Snapshot.id).in_(latest_ids))).all()}
        latest_good = dict(session.exec(select(Snapshot.link_id, func.max(Snapshot.id)).where(Snapshot.error == "")
                                        .group_by(Snapshot.link_id)).all())
        views = []
        for link in links:
            tags = sorted(tags_by_link.get(link.id, []))
            if wanted_all and not wanted_all <= set(tags):
                continue
            if wanted_any and not wanted_any & set(tags):
                continue
            if matches is not None and link.id not in matches:
                continue
            snap = latest.get(link.id)
            views.append(LinkView(
                id=link.id, url=link.url, normalized_url=link.normalized_url, title=link.title, notes=link.notes,
                created_at=link.created_at, tags=tags, snapshot_count=int(counts.get(link.id, 0)),
                latest_snapshot_id=snap.id if snap else None, latest_error=snap.error if snap else "",
                latest_fetched_at=snap.fetched_at if snap else None,
                latest_good_snapshot_id=latest_good.get(link.id), requested_by=link.requested_by,
                latest_requested_by=snap.requested_by if snap else "",
            ))
        if matches is not None:  # most relevant first; ties stay newest first (the sort is stable)
            views.sort(key=lambda view: -matches[view.id])
        return views


def latest_good_snapshot(engine: Engine, link_id: int) -> Snapshot | None:
    return next((s for s in snapshots_of(engine, link_id) if not s.error), None)


def update_notes(engine: Engine, link_id: int, notes: str) -> None:
    with session_scope(engine) as session:
        link = _require_link(session, link_id)
        link.notes = notes
        session.add(link)


def counts(engine: Engine) -> dict[str, int]:
    with session_scope(engine) as session:
        return {
            "links": session.exec(select(func.count(Link.id))).one(),
            "snapshots": session.exec(select(func.count(Snapshot.id))).one(),
            "tags": session.exec(select(func.count(Tag.id))).one(),
        }
