"""Netscape bookmark files (what browsers and linkding export) in and out, plus JSON and CSV export."""

from __future__ import annotations

import html
import io
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser

from sqlalchemy import Engine

from core.library.snapshots import LibraryError, clean_tag, insert_links, link_ids, list_links, tag_links
from core.library.urls import InvalidURLError, normalize_url, without_credentials
from core.params import ParamError, parse_int
from core.spreadsheet import SafeDictWriter
from core.storage.db import session_scope
from core.storage.schema import utcnow


@dataclass
class Bookmark:
    url: str
    title: str = ""
    tags: list[str] = field(default_factory=list)
    notes: str = ""
    added: datetime | None = None


class _NetscapeParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.bookmarks: list[Bookmark] = []
        self._current: Bookmark | None = None
        self._in_anchor = False
        self._in_note = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): (v or "") for k, v in attrs}
        if tag == "a" and values.get("href"):
            added = values.get("add_date", "")
            self._current = Bookmark(
                url=values["href"].strip(),
                tags=[t.strip() for t in values.get("tags", "").split(",") if t.strip()],
                added=parse_add_date(added),
            )
            self.bookmarks.append(self._current)
            self._in_anchor = True
        elif tag == "dd" and self._current is not None:
            self._in_note = True
        elif tag in ("dt", "dl", "h3"):
            self._in_note = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "a":
            self._in_anchor = False

    def handle_data(self, data: str) -> None:
        if self._current is None:
            return
        if self._in_anchor:
            self._current.title += data
        elif self._in_note:
            self._current.notes += data


def parse_add_date(value: str) -> datetime | None:
    """ADD_DATE as browsers write it: seconds since 1970, though some exports use milliseconds or
    microseconds. A value that is none of these (out of range, not a number) is ignored, not fatal."""
    try:
        number = parse_int(value, 0, 10**20)  # ASCII digits only ("²" passes isdigit), 4,000 digits refused
    except ParamError:
        return None
    for divisor in (1, 1_000, 1_000_000):  # seconds, then milliseconds, then microseconds
        seconds = number / divisor
        if seconds < 4_102_444_800:  # before 2100: a plausible bookmark date
            try:
                return datetime.fromtimestamp(seconds, UTC)
            except (OverflowError, OSError, ValueError):
                return None
    return None


def parse_netscape(content: str) -> list[Bookmark]:
    parser = _NetscapeParser()
    parser.feed(content)
    for b in parser.bookmarks:
        b.title, b.notes = b.title.strip(), b.notes.strip()
    return parser.bookmarks


@dataclass
class ImportSummary:
    added: int = 0
    existing: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)


IMPORT_BATCH = 2_000  # bookmarks per transaction: one per bookmark ran at ~8 links/s


def import_bookmarks(engine: Engine, content: str) -> ImportSummary:
    """Add the file's links and tags; links already present only gain missing tags (idempotent). Each bookmark
    is checked before its batch's transaction opens, so a bad one is skipped without undoing the others."""
    summary = ImportSummary()
    checked: dict[str, tuple[Bookmark, str, list[str]]] = {}  # normalized URL -> its first bookmark
    tags_of: dict[str, set[str]] = {}
    for bookmark in parse_netscape(content):
        try:
            normalized = normalize_url(bookmark.url)
            tags = [clean_tag(t) for t in bookmark.tags]
        except (LibraryError, InvalidURLError) as exc:
            summary.skipped.append((bookmark.url, str(exc)))
            continue
        # Exports write an untitled link's URL as its text; read back, that is still "no title".
        title = "" if bookmark.title.strip() in (bookmark.url.strip(), without_credentials(bookmark.url)) \
            else bookmark.title
        if normalized in checked:
            summary.existing += 1
        checked.setdefault(normalized, (bookmark, title, tags))
        tags_of.setdefault(normalized, set()).update(tags)
    urls = list(checked)
    for start in range(0, len(urls), IMPORT_BATCH):
        batch = urls[start:start + IMPORT_BATCH]
        with session_scope(engine) as session:
            added = insert_links(session, [
                {"url": without_credentials(checked[u][0].url), "normalized_url": u, "title": checked[u][1],
                 "notes": checked[u][0].notes, "created_at": checked[u][0].added or utcnow()} for u in batch])
            summary.added += added
            summary.existing += len(batch) - added
            ids = link_ids(session, batch)
            tag_links(session, {ids[u]: tags_of[u] for u in batch if tags_of[u]})
    return summary


def _rows(engine: Engine) -> list[dict]:
    return [{"url": v.url, "normalized_url": v.normalized_url, "title": v.title, "notes": v.notes,
             "tags": v.tags, "created_at": v.created_at.isoformat(), "snapshots": v.snapshot_count}
            for v in list_links(engine)]


def export_links(engine: Engine, fmt: str) -> str:
    rows = _rows(engine)
    if fmt == "json":
        return json.dumps(rows, ensure_ascii=False, indent=2)
    if fmt == "csv":
        buffer = io.StringIO()
        writer = SafeDictWriter(buffer, fieldnames=list(rows[0]) if rows else
                                ["url", "normalized_url", "title", "notes", "tags", "created_at", "snapshots"])
        writer.writeheader()
        for row in rows:
            writer.writerow({**row, "tags": ",".join(row["tags"])})
        return buffer.getvalue()
    if fmt == "html":
        lines = ["<!DOCTYPE NETSCAPE-Bookmark-file-1>",
                 '<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">',
                 "<TITLE>Bookmarks</TITLE>", "<H1>Bookmarks</H1>", "<DL><p>"]
        for row in rows:
            added = int(datetime.fromisoformat(row["created_at"]).replace(tzinfo=UTC).timestamp())
            lines.append(f'<DT><A HREF="{html.escape(row["url"])}" ADD_DATE="{added}" '
                         f'TAGS="{html.escape(",".join(row["tags"]))}">{html.escape(row["title"] or row["url"])}</A>')
            if row["notes"]:
                lines.append(f"<DD>{html.escape(row['notes'])}")
        lines.append("</DL><p>")
        return "\n".join(lines) + "\n"
    raise LibraryError(f"Unknown export format '{fmt}'; use html, json or csv.")
