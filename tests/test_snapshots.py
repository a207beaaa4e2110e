"""The link library on a real SQLite file with real HTTP fetches to 127.0.0.1."""

import pytest
from sqlmodel import select

from core.library.bookmarks import export_links, import_bookmarks, parse_netscape
from core.library.snapshots import (
    LibraryError,
    add_tags,
    delete_tag,
    diff_snapshots,
    list_links,
    list_tags,
    merge_tags,
    raw_html,
    refresh_link,
    remove_tags,
    rename_tag,
    snapshot_many,
    snapshot_url,
    snapshots_of,
)
from core.storage.db import session_scope
from core.storage.schema import Snapshot


@pytest.fixture
def engine(any_engine):
    """Every test here runs on SQLite and on a real PostgreSQL server."""
    return any_engine


def test_snapshot_of_article_keeps_text_metadata_and_html(web_server, engine):
    outcome = snapshot_url(engine, f"{web_server}/article?utm_source=mail", ["News"])
    s = outcome.snapshot
    assert not outcome.error and outcome.created_link
    assert outcome.link.normalized_url == f"{web_server}/article"
    assert s.title == "City council approves new riverside park"
    assert "Maria Okafor" in s.authors and s.publish_date.startswith("2026-03-14")
    assert "riverside park" in s.text and "Cookie settings" not in s.text and "Subscribe now" not in s.text
    assert s.extractor in ("trafilatura", "newspaper3k") and s.extractor_version
    assert len(s.text_sha256) == 64 and s.byte_size > 1000
    assert "<nav>" in raw_html(s)
    assert outcome.tags == ["news"]


def test_same_url_twice_is_one_link_with_two_versions_and_a_diff(web_server, engine):
    first = snapshot_url(engine, f"{web_server}/versioned", [])
    second = snapshot_url(engine, f"{web_server}/versioned#section", [])
    assert first.link.id == second.link.id and not second.created_link
    versions = snapshots_of(engine, first.link.id)
    assert [v.id for v in versions] == [second.snapshot.id, first.snapshot.id]
    patch = diff_snapshots(versions[1], versions[0])
    # The page says "version N" with N counting this test's fetches of it.
    import re

    assert re.findall(r"^-.*?version (\d+)", patch, flags=re.MULTILINE)[:1] == ["1"]
    assert re.findall(r"^\+.*?version (\d+)", patch, flags=re.MULTILINE)[:1] == ["2"]


def test_failed_refresh_never_alters_earlier_snapshots(web_server, engine):
    good = snapshot_url(engine, f"{web_server}/article", [])
    before = good.snapshot.model_dump()

    def broken(url):
        from core.library.fetch import FetchError
        raise FetchError("The server answered 500 Internal Server Error.", "http_error", 500)

    failed = refresh_link(engine, good.link.id, fetcher=broken)
    assert failed.error.startswith("The server answered 500")
    with session_scope(engine) as session:
        rows = session.exec(select(Snapshot).where(Snapshot.link_id == good.link.id)).all()
    assert len(rows) == 2
    assert next(r for r in rows if r.id == good.snapshot.id).model_dump() == before
    assert list_links(engine)[0].latest_error.startswith("The server answered 500")


@pytest.mark.parametrize(("path", "message"), [
    ("/doc.pdf", "PDF"), ("/missing", "404"), ("/empty", "No readable text"), ("/loop-a", "loop"),
])
def test_failures_are_stored_as_attempts(web_server, engine, path, message):
    outcome = snapshot_url(engine, f"{web_server}{path}", [])
    assert message in outcome.error
    assert outcome.snapshot.id is not None and outcome.link.id is not None


def test_bad_url_raises_a_clear_error_and_stores_nothing(engine):
    with pytest.raises(LibraryError, match="http"):
        snapshot_url(engine, "ftp://example.com/file", [])
    assert list_links(engine) == []


def test_bulk_continues_after_failures_and_summarises(web_server, engine):
    progress = []
    summary = snapshot_many(engine, f"{web_server}/article\nnot a url\n{web_server}/doc.pdf\n\n{web_server}/plain", ["batch"], progress=lambda f, m: progress.append(f))
    assert summary.succeeded == 2
    failed = dict(summary.failures)
    assert set(failed) == {"not a url", f"{web_server}/doc.pdf"}
    assert progress[-1] == 1.0 and len(progress) == 5  # one per link, then done


def test_legacy_charset_snapshot(web_server, engine):
    outcome = snapshot_url(engine, f"{web_server}/legacy", [])
    assert "crème brûlée" in outcome.snapshot.text


def test_tags_add_remove_rename_merge_delete(web_server, engine):
    a = snapshot_url(engine, f"{web_server}/article", ["alpha"]).link.id
    b = snapshot_url(engine, f"{web_server}/plain", ["beta"]).link.id
    add_tags(engine, [a, b], ["shared", "Both Words"])
    assert {v.id: v.tags for v in list_links(engine)} == {
        a: ["alpha", "both-words", "shared"], b: ["beta", "both-words", "shared"]}
    remove_tags(engine, [b], ["shared"])
    assert [v.id for v in list_links(engine, tags_all=["shared"])] == [a]
    assert {v.id for v in list_links(engine, tags_any=["alpha", "beta"])} == {a, b}
    assert list_links(engine, tags_all=["alpha", "beta"]) == []

    rename_tag(engine, "alpha", "first")
    assert [v.id for v in list_links(engine, tags_all=["first"])] == [a]
    with pytest.raises(LibraryError, match="already exists"):
        rename_tag(engine, "first", "beta")
    assert merge_tags(engine, "beta", "first").moved == 1
    assert {v.id for v in list_links(engine, tags_all=["first"])} == {a, b}
    assert "beta" not in dict(list_tags(engine))
    # A merge reports the links that already had the target (before, "0 link(s) moved" though both were merged).
    merged = merge_tags(engine, "shared", "first")
    assert (merged.moved, merged.already_tagged) == (0, 1)
    assert merged.sentence("shared", "first") == ("Merged tag 'shared' into 'first': 0 link(s) moved, 1 already had "
                                                  "'first'; 'shared' is gone.")
    delete_tag(engine, "first")
    assert len(list_links(engine)) == 2  # links stay
    with pytest.raises(LibraryError):
        merge_tags(engine, "nope", "first")


def test_full_text_search(web_server, engine):
    a = snapshot_url(engine, f"{web_server}/article", []).link.id
    b = snapshot_url(engine, f"{web_server}/legacy", []).link.id
    assert [v.id for v in list_links(engine, search="riverside budget")] == [a]
    assert [v.id for v in list_links(engine, search="brûlée")] == [b]
    assert [v.id for v in list_links(engine, search="BRULEE")] == [b]  # case and accents folded on both
    assert [v.id for v in list_links(engine, search="terra")] == [b]  # prefix of the last word
    assert list_links(engine, search="zeppelin") == []
    assert len(list_links(engine, search='"; DROP TABLE link; --')) == 0
    assert len(list_links(engine)) == 2


BOOKMARKS = """<!DOCTYPE NETSCAPE-Bookmark-file-1>
<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">
<TITLE>Bookmarks</TITLE>
<H1>Bookmarks</H1>
<DL><p>
<DT><A HREF="https://example.com/one?utm_source=x" ADD_DATE="1700000000" TAGS="news,Politics">One &amp; only</A>
<DD>A note about one
<DT><A HREF="https://example.org/two" ADD_DATE="1700000100" TAGS="">Two</A>
<DT><A HREF="javascript:alert(1)" TAGS="bad">Bad</A>
</DL><p>
"""


def test_import_is_idempotent_and_export_round_trips(engine, tmp_path):
    first = import_bookmarks(engine, BOOKMARKS)
    assert (first.added, first.existing, len(first.skipped)) == (2, 0, 1)
    second = import_bookmarks(engine, BOOKMARKS)
    assert (second.added, second.existing) == (0, 2)
    views = {v.normalized_url: v for v in list_links(engine)}
    one = views["https://example.com/one"]
    assert one.tags == ["news", "politics"] and one.title == "One & only" and one.notes == "A note about one"

    exported = export_links(engine, "html")
    parsed = {b.url: b for b in parse_netscape(exported)}
    assert parsed["https://example.com/one?utm_source=x"].tags == ["news", "politics"]
    assert parsed["https://example.com/one?utm_source=x"].notes == "A note about one"
    # Importing our own export into a fresh database gives the same links and tags.
    from core.storage.db import make_engine

    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    import_bookmarks(other, exported)
    assert {(v.normalized_url, tuple(v.tags)) for v in list_links(other)} == {
        (v.normalized_url, tuple(v.tags)) for v in list_links(engine)}

    import csv
    import io
    import json

    assert {r["url"] for r in json.loads(export_links(engine, "json"))} == set(parsed)
    rows = list(csv.DictReader(io.StringIO(export_links(engine, "csv"))))
    assert {r["tags"] for r in rows} == {"news,politics", ""}


def test_set_tags_makes_the_tag_list_exact(web_server, engine):
    from core.library.snapshots import set_tags

    link = snapshot_url(engine, f"{web_server}/article", ["old", "keep"]).link.id
    assert set_tags(engine, link, ["keep", " New ", ""]) == ["keep", "new"]
    assert list_links(engine)[0].tags == ["keep", "new"]
    with pytest.raises(LibraryError):
        set_tags(engine, 999, ["x"])


def test_extractor_choice_and_fallbacks():
    from core.library.extract import choose_body, extract_html

    assert choose_body("a long body " * 10, "a long body " * 12) == "trafilatura"
    assert choose_body("", "something") == "newspaper3k"
    assert choose_body("short", "much longer text " * 20) == "newspaper3k"
    assert choose_body("", "") == "none"
    empty = extract_html("<html><head><title>Only a title</title></head><body></body></html>")
    assert empty.text == "" and empty.title == "Only a title" and empty.extractor == ""


def test_extraction_quality_on_fixture_pages():
    """Body extraction against hand-written gold text (the same measure as scripts/bench_extraction.py)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).parents[1] / "scripts"))
    from bench_extraction import scores

    from core.library.extract import extract_html

    folder = Path(__file__).parent / "fixtures" / "extraction"
    for page in sorted(folder.glob("*.html")):
        gold = page.with_name(page.stem + ".gold.txt").read_text(encoding="utf-8")
        precision, recall, f1 = scores(extract_html(page.read_text(encoding="utf-8")).text, gold)
        assert recall >= 0.95 and f1 >= 0.9, (page.name, precision, recall)


def test_diff_keeps_an_unchanged_last_paragraph_and_refetches_say_unchanged(web_server, engine):
    from core.storage.schema import Snapshot as Row

    old = Row(id=1, link_id=1, text="First paragraph.\n\nLast paragraph.")
    new = Row(id=2, link_id=1, text="First paragraph.\n\nLast paragraph.\n\nA new closing line.")
    patch = diff_snapshots(old, new)
    assert "-Last paragraph." not in patch and "+A new closing line." in patch
    assert diff_snapshots(old, old) == ""
    first = snapshot_url(engine, f"{web_server}/article", [])
    again = refresh_link(engine, first.link.id)
    assert again.unchanged_since is not None and again.unchanged_since.id == first.snapshot.id
    assert again.to_dict()["unchanged_since"] == first.snapshot.id
    from core.library.snapshots import same_text_as

    assert same_text_as(snapshots_of(engine, first.link.id)) == {again.snapshot.id: first.snapshot.id}
    changed = snapshot_url(engine, f"{web_server}/versioned", [])
    assert changed.unchanged_since is None
    assert refresh_link(engine, changed.link.id).unchanged_since is None  # the page says "version 2" now


def test_search_puts_the_most_relevant_link_first(engine):
    """Ranked by each database's own relevance (bm25 on SQLite, ts_rank on PostgreSQL), not by age."""
    from tests.support.servers import text_pages

    pages = {"https://rank.example/dense": "Budget talks: the budget, the budget vote and the park budget.",
             "https://rank.example/sparse": "A long note on parks, rivers, trees and, once, the budget of a town.",
             "https://rank.example/other": "Nothing about money here at all, only birds and weather."}

    fetcher = text_pages(pages)

    for url in pages:  # the densest page is the oldest: newest-first order would put it last
        snapshot_url(engine, url, [], fetcher)
    assert [v.url for v in list_links(engine)][-1] == "https://rank.example/dense"
    assert [v.url for v in list_links(engine, search="budget")] == ["https://rank.example/dense",
                                                                    "https://rank.example/sparse"]
    assert [v.url for v in list_links(engine, search="bud")] == ["https://rank.example/dense",
                                                                 "https://rank.example/sparse"]  # prefix
    assert list_links(engine, search="budget birds") == []  # every word required


def test_search_stems_words_and_still_folds_accents(any_engine):
    """Before, "parks" missed a page about a park and "approving" one that approves (no stemming on either
    database); migration 0016 stems (FTS5's porter tokenizer, PostgreSQL's `english` configuration), and
    accents stay folded."""
    from tests.support.servers import text_pages

    pages = {"https://stem.example/park": "The council approves a new riverside park after a long budget debate.",
             "https://stem.example/cafe": "A café serving crème brûlée beside the station.",
             "https://stem.example/birds": "Birds and weather, nothing else."}

    fetcher = text_pages(pages)

    for url in pages:
        snapshot_url(any_engine, url, [], fetcher)

    def found(query: str) -> list[str]:
        return [v.url for v in list_links(any_engine, search=query)]

    assert found("parks") == ["https://stem.example/park"]
    assert found("approving councils") == ["https://stem.example/park"]
    assert found("debates") == ["https://stem.example/park"]
    assert found("brulee") == ["https://stem.example/cafe"]
    assert found("bird") == ["https://stem.example/birds"]
    assert found("zeppelins") == []


def test_search_finds_chinese_words_inside_sentences(any_engine):
    """Before, a run of Han characters was one token: a snapshot was found by the start of a sentence (影响函数)
    but not by a word inside one (训练数据), and never by a two-character word such as 房间. The word layer spaces
    the words for the index (migration 0016), on SQLite and PostgreSQL alike."""
    from core.library.fetch import SAMPLES_PATH

    hotel, notes = (snapshot_url(any_engine, f"http://127.0.0.1:8501{SAMPLES_PATH}{name}", []).link.id
                    for name in ("zh-hotel-review.html", "zh-training-data-notes.html"))

    def found(query: str) -> list[int]:
        return [v.id for v in list_links(any_engine, search=query)]

    assert found("影响函数") == [notes]  # the start of a sentence (found before too)
    assert found("训练数据") == [notes]  # inside "检查训练数据以后才明白"
    assert found("房间") == [hotel]  # a two-character word inside two sentences
    assert found("物流 标签") == [notes]  # every word required
    assert found("早餐 物流") == []
    assert found("海港酒店") == [hotel]  # in the title
    assert found("訓練數據") == [notes]  # traditional characters find the simplified text
