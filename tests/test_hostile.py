"""Hostile input: servers that dribble, lie or redirect to nonsense, pages built to exhaust a parser, and
the one-line errors every bad input gets. Every hostile server runs on 127.0.0.1, bounded in time."""

from __future__ import annotations

import gzip
import socket
import threading
import time

import pytest

from core.library.fetch import FetchError, FetchLimits, fetch
from tests.support.waiting import wait_until

PAGE = b"<html><head><title>Fine</title></head><body><article><p>" + b"A readable sentence about the park. " * 40 \
    + b"</p></article></body></html>"


def _respond(conn: socket.socket, path: str) -> None:
    if path == "/dribble-status":
        # two bytes a second: each read succeeds, the response never ends
        for byte in b"HTTP/1.1 200 OK\r\nX-Pad: " + b"a" * 200:
            conn.sendall(bytes([byte]))
            time.sleep(0.5)
    elif path == "/dribble-headers":
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        for n in range(100):
            conn.sendall(f"X-Slow-{n}: yes\r\n".encode())
            time.sleep(0.5)
    elif path == "/bad-redirect":
        conn.sendall(b"HTTP/1.1 302 Found\r\nLocation: http://[x]/\r\nContent-Length: 0\r\n\r\n")
    elif path == "/gzip":
        body = gzip.compress(PAGE)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Encoding: gzip\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    elif path == "/gzip-bomb":
        body = gzip.compress(b"<p>" + b"x" * 30_000_000 + b"</p>")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    elif path in ("/paragraphs-49900", "/links-49000"):  # just under the element budget: slow to extract
        body = (b"<html><body><article>" + (b"".join(b"<p>Paragraph %d of a long page, with some words.</p>" % i
                                                     for i in range(49_900)) if path == "/paragraphs-49900" else
                                            b"".join(b'<a href="/l%d">link %d</a> ' % (i, i) for i in range(49_000)))
                + b"</article></body></html>")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    elif path in ("/tiny-elements", "/many-links", "/tiny-elements-9mb"):
        body = (b"<html><body>" + (b"<p>x</p>" * 400_000 if path == "/tiny-elements" else
                                   b"<p>x</p>" * 1_150_000 if path == "/tiny-elements-9mb" else
                                   b"".join(b'<a href="/l%d">l</a>' % i for i in range(200_000))) + b"</body></html>")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


# How each path's last connection ended, as the server saw it.
ENDED: dict[str, str] = {}


def start_hostile_server() -> tuple[str, threading.Event]:
    """A raw TCP server on 127.0.0.1: each connection reads a request line and misbehaves according to
    its path. Returns its base URL and an event that stops it."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            path = "/"
            try:
                request = conn.recv(65536).decode("latin-1")
                path = request.split(" ")[1] if " " in request else "/"
                _respond(conn, path)
                ENDED[path] = "finished"
            except OSError:
                ENDED[path] = "client hung up"  # the client gave up: exactly what these tests want

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return f"http://127.0.0.1:{server.getsockname()[1]}", stop


@pytest.fixture(scope="module")
def hostile():
    url, stop = start_hostile_server()
    yield url
    stop.set()


@pytest.fixture
def allowed(monkeypatch):
    monkeypatch.setenv("RASHOMON_ALLOWED_INTERNAL_HOSTS", "127.0.0.1")


@pytest.mark.parametrize("path", ["/dribble-status", "/dribble-headers"])
def test_one_deadline_covers_status_line_and_headers(hostile, allowed, path):
    """Every read succeeds within half a second, so only a deadline over the whole response can end the
    fetch before the server does (50-100 s later): the server sees the client hang up mid-response."""
    ENDED.pop(path, None)
    with pytest.raises(FetchError) as error:
        fetch(f"{hostile}{path}", FetchLimits(total_timeout=2.0))
    assert error.value.kind == "timeout"
    assert wait_until(lambda: ENDED.get(path), timeout=30, what="the server to see the end") == "client hung up"


def test_a_redirect_to_a_malformed_address_is_a_failed_fetch(hostile, allowed):
    with pytest.raises(FetchError) as error:
        fetch(f"{hostile}/bad-redirect")
    assert error.value.kind == "bad_redirect" and "http://[x]/" in str(error.value)


def test_a_gzip_page_is_read_and_a_gzip_bomb_is_capped(hostile, allowed):
    assert "readable sentence about the park" in fetch(f"{hostile}/gzip").text
    with pytest.raises(FetchError) as error:
        fetch(f"{hostile}/gzip-bomb", FetchLimits(max_bytes=10_000_000))
    assert error.value.kind == "too_large"


@pytest.mark.parametrize("path", ["/tiny-elements", "/many-links"])
def test_pages_built_to_exhaust_the_parser_are_failed_snapshots(hostile, allowed, engine, path):
    from core.library.snapshots import snapshot_url

    outcome = snapshot_url(engine, f"{hostile}{path}")  # bounded by the test's timeout, not a guess
    assert outcome.snapshot is not None and "more than the" in outcome.error and "HTML tags" in outcome.error


def test_a_bad_redirect_in_a_batch_is_one_failure_and_the_batch_goes_on(hostile, allowed, engine, web_server):
    from core.library.snapshots import list_links, snapshot_many

    summary = snapshot_many(engine, f"{hostile}/bad-redirect\n{web_server}/article")
    assert summary.succeeded == 1 and len(summary.failures) == 1
    assert "unusable address" in summary.failures[0][1]
    assert all(v.snapshot_count == 1 for v in list_links(engine))  # the failed link has its failed snapshot


def test_bookmarks_with_impossible_dates_are_imported_with_the_rest(engine):
    from core.library.bookmarks import import_bookmarks, parse_add_date
    from core.library.snapshots import list_links

    content = ('<DL><p>\n<DT><A HREF="https://a.example/" ADD_DATE="99999999999999999999">Far future</A>\n'
               '<DT><A HREF="https://b.example/" ADD_DATE="1700000000000">Milliseconds</A>\n'
               '<DT><A HREF="https://c.example/" ADD_DATE="1700000000000000">Microseconds</A>\n'
               '<DT><A HREF="https://d.example/" ADD_DATE="-5">Negative</A>\n</DL>')
    summary = import_bookmarks(engine, content)
    assert summary.added == 4 and not summary.skipped
    years = {v.title: v.created_at.year for v in list_links(engine)}
    assert years["Milliseconds"] == years["Microseconds"] == 2023
    assert parse_add_date("99999999999999999999") is None and parse_add_date("1700000000").year == 2023


def test_the_same_new_url_and_tag_added_at_once_by_many_writers(any_engine):
    """Get-or-create is race-safe: every writer succeeds, one link and one tag exist, every snapshot is kept."""
    engine = any_engine  # on SQLite and on PostgreSQL
    from concurrent.futures import ThreadPoolExecutor

    from core.library.fetch import FetchResult
    from core.library.snapshots import list_links, list_tags, snapshot_url, snapshots_of

    def fetcher(url: str) -> FetchResult:
        return FetchResult(url=url, final_url=url, status=200, content_type="text/plain", charset="utf-8",
                           body=b"Same words.", text="Same words.")

    with ThreadPoolExecutor(8) as pool:
        outcomes = list(pool.map(lambda _: snapshot_url(engine, "https://race.example/page", ["fresh-tag"], fetcher),
                                 range(16), timeout=120))
    assert len({o.link.id for o in outcomes}) == 1 and sum(o.created_link for o in outcomes) == 1
    assert [v.url for v in list_links(engine)] == ["https://race.example/page"]
    assert dict(list_tags(engine)) == {"fresh-tag": 1}
    assert len(snapshots_of(engine, outcomes[0].link.id)) == 16


def test_tags_have_one_spelling_and_searches_match_literally(any_engine, web_server):
    engine = any_engine  # on SQLite and on PostgreSQL
    from core.library.snapshots import LibraryError, add_tags, clean_tag, list_links, list_tags, snapshot_url

    assert clean_tag("cafe\u0301") == clean_tag("café") == "café"  # decomposed and composed: one tag
    assert clean_tag("news\u200b") == "news"
    with pytest.raises(LibraryError):
        clean_tag("\u200b\u200d")  # only invisible characters: not a tag
    link = snapshot_url(engine, f"{web_server}/article", []).link.id
    add_tags(engine, [link], ["cafe\u0301", "café"])
    assert [name for name, _ in list_tags(engine)] == ["café"]
    assert list_links(engine, search="_") == [] and list_links(engine, search="%") == []


def test_credentials_in_a_link_are_never_stored_or_exported(any_engine, web_server):
    engine = any_engine  # on SQLite and on PostgreSQL
    from core.library.bookmarks import export_links
    from core.library.snapshots import list_links, snapshot_url

    base = web_server.replace("http://", "http://alice:s3cret@")
    outcome = snapshot_url(engine, f"{base}/article", [])
    assert not outcome.error and "removed before storing" in outcome.notice
    assert "s3cret" not in outcome.link.url and "alice" not in outcome.link.normalized_url
    assert all("s3cret" not in export_links(engine, fmt) for fmt in ("html", "json", "csv"))
    assert "s3cret" not in str([v.__dict__ for v in list_links(engine)])


def test_untitled_links_stay_untitled_through_export_and_import(engine, tmp_path):
    from core.library.bookmarks import export_links, import_bookmarks
    from core.library.snapshots import get_or_create_link, list_links
    from core.storage.db import make_engine, session_scope

    with session_scope(engine) as session:
        get_or_create_link(session, "https://untitled.example/x")
    other = make_engine(f"sqlite:///{tmp_path / 'other.db'}")
    import_bookmarks(other, export_links(engine, "html"))
    assert [v.title for v in list_links(other)] == [""]


@pytest.mark.parametrize(("url", "words"), [
    ("postgresql://bob:hunter2@127.0.0.1:1/rashomon", "cannot be used"),
    ("this is not a url", "not a database URL"),
    ("sqlite:////proc/no/such/dir/x.db", "cannot be used"),
])
@pytest.mark.processes
def test_database_problems_are_one_line_in_the_cli_and_a_message_on_pages(home, monkeypatch, url, words):
    from streamlit.testing.v1 import AppTest

    from tests.test_app import ROOT
    from tests.test_cli import rashomon

    result = rashomon("snapshot", "list", env={"RASHOMON_DATABASE_URL": url})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1 and words in lines[0], result.stderr
    assert "hunter2" not in result.stderr and "Traceback" not in result.stderr
    monkeypatch.setenv("RASHOMON_DATABASE_URL", url)
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    app.run()
    for path in ("pages/snapshots.py", "pages/compare.py", "pages/corpus.py", "pages/checks.py"):
        page = app.switch_page(path).run()
        assert not page.exception, path
        assert any(words in e.value for e in page.error), path
        assert all("hunter2" not in e.value for e in page.error)


def test_a_database_from_a_newer_rashomon_and_a_corrupt_file(home, tmp_path):
    from sqlalchemy import text

    from core.storage.db import DatabaseUnavailable, make_engine

    newer = tmp_path / "newer.db"
    engine = make_engine(f"sqlite:///{newer}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(DatabaseUnavailable, match="newer Rashomon"):
        make_engine(f"sqlite:///{newer}")
    corrupt = tmp_path / "corrupt.db"
    corrupt.write_bytes(b"not a database at all " * 500)
    with pytest.raises(DatabaseUnavailable, match="not a database"):
        make_engine(f"sqlite:///{corrupt}")
    assert corrupt.read_bytes().startswith(b"not a database")  # never overwritten


def test_the_home_page_masks_the_database_password(home, monkeypatch, tmp_path):
    from core.storage.db import masked_url

    assert masked_url("postgresql://bob:hunter2@db.example/r") == "postgresql://bob:***@db.example/r"
    monkeypatch.setenv("RASHOMON_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    from tests.test_app import run_page

    app = run_page("app.py")
    assert not app.exception and any("x.db" in t.value for t in app.text)


@pytest.mark.processes
def test_more_bad_inputs_get_one_line(home, tmp_path, capsys):
    # In this process (the same `main` as `python -m core`; test_cli.py covers the start-up): four interpreter
    # starts cost this test 20 s.
    from core.cli import main

    for args, words in ((("explain", "--text", "fine", "--methods", ","), "names no method"),
                        (("explain", "--text", "\x01\x02\x03", "--methods", "attention"), "control or invisible"),
                        (("snapshot", "bulk", str(tmp_path / "missing.txt")), "Cannot read"),
                        (("snapshot", "add", "--file", "/bin/ls"), "binary")):
        capsys.readouterr()
        code = main(list(args))
        stderr = capsys.readouterr().err
        lines = stderr.strip().splitlines()
        assert code == 1 and len(lines) == 1 and words in lines[0], (args, stderr)


def test_a_link_whose_last_refresh_failed_keeps_its_good_snapshot_in_the_pickers(any_engine, web_server):
    engine = any_engine  # on SQLite and on PostgreSQL
    from core.library.snapshots import list_links, refresh_link, snapshot_url

    good = snapshot_url(engine, f"{web_server}/article", [])

    def broken(url):
        raise FetchError("The server answered 500 Internal Server Error.", "http_error", 500)

    refresh_link(engine, good.link.id, fetcher=broken)
    view = list_links(engine)[0]
    assert view.latest_error and view.latest_good_snapshot_id == good.snapshot.id


@pytest.mark.processes
def test_several_processes_adding_the_same_new_url_and_tag(backend_url, web_server):
    """Real processes (the CLI), not threads: every one succeeds and no snapshot is lost, on both backends."""
    import os
    import subprocess
    import sys

    from core.library.snapshots import list_links, list_tags, snapshots_of
    from core.storage.db import get_engine

    get_engine()  # migrate once, as a running server would have
    processes = [subprocess.Popen([sys.executable, "-m", "core", "snapshot", "add", f"{web_server}/plain",
                                   "--tag", "shared-new-tag"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=os.environ.copy()) for _ in range(4)]
    results = [(p.returncode, err) for p in processes for _, err in [p.communicate(timeout=120)]]
    assert all(code == 0 for code, _ in results), results
    assert all("Traceback" not in err for _, err in results)
    [view] = list_links(get_engine())
    assert len(snapshots_of(get_engine(), view.id)) == 4 and dict(list_tags(get_engine())) == {"shared-new-tag": 1}


@pytest.mark.processes
def test_processes_adding_refreshing_tagging_and_searching_at_once(backend_url, web_server):
    """Four processes each add links, refresh one shared link, tag and search, all at once, on SQLite and
    on PostgreSQL: every process succeeds, every link, snapshot and tag is there, and no error reaches a user."""
    import json
    import os
    import subprocess
    import sys

    from core.library.snapshots import list_links, list_tags, snapshots_of
    from core.storage.db import get_engine

    get_engine()
    workers, rounds = 4, 5
    processes = [subprocess.Popen([sys.executable, "-m", "tests.concurrency_worker", web_server, str(w), str(rounds)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
                 for w in range(workers)]
    results = [(p.returncode, out, err) for p in processes for out, err in [p.communicate(timeout=240)]]
    assert all(code == 0 for code, _, _ in results), [err[-800:] for _, _, err in results]
    reports = [json.loads(out) for _, out, _ in results]
    assert len({r["shared"] for r in reports}) == 1  # one shared link, however many created it at once
    links = list_links(get_engine())
    assert len(links) == 1 + workers * rounds
    shared = next(v for v in links if v.id == reports[0]["shared"])
    # One snapshot per add of the shared link and per refresh: nothing lost to a lock or a race.
    assert len(snapshots_of(get_engine(), shared.id)) == workers + workers * rounds
    tags = dict(list_tags(get_engine()))
    assert tags["shared"] == 1 + workers * rounds
    assert all(tags[f"worker-{w}"] == rounds for w in range(workers))
    assert all(tags[f"round-{i}"] == workers + 1 for i in range(rounds))
    assert set(shared.tags) >= {"shared", *(f"round-{i}" for i in range(rounds))}


@pytest.mark.parametrize("url", [
    "postgresql://bob:hunter2@127.0.0.1:1/r",
    "postgresql://bob@127.0.0.1:1/r?password=hunter2",
    "postgresql:///r?host=127.0.0.1&port=1&password=hunter2",
    "postgresql+psycopg://bob@127.0.0.1:1/r?sslpassword=hunter2&sslmode=disable",
    "postgresql://bob:hunter2@127.0.0.1:1/r?password=hunter2&PASSWORD=hunter2",
    "host=127.0.0.1 port=1 password=hunter2",
])
def test_a_database_password_is_masked_wherever_libpq_lets_it_stand(url, home, monkeypatch, capsys):
    """Before, only the user:secret@host form was masked: a password in the query reached every visitor."""
    from core.cli import main
    from core.storage.db import masked_url

    assert "hunter2" not in masked_url(url)
    monkeypatch.setenv("RASHOMON_DATABASE_URL", url)
    assert main(["snapshot", "list"]) == 1
    error = capsys.readouterr().err
    assert error.startswith("rashomon: The database ") and "hunter2" not in error and error.count("\n") == 1


def test_csv_cells_that_a_spreadsheet_would_run_are_written_as_text(home):
    """A title `=HYPERLINK(...)` was exported verbatim (formula injection); Rashomon's own CSV read back (an
    error group as extra training rows) keeps the text as it was."""
    import csv
    import io

    from core.analyses.evaluation import inputs_from_file
    from core.library.bookmarks import export_links
    from core.library.snapshots import get_or_create_link
    from core.spreadsheet import SafeWriter
    from core.storage.db import get_engine, session_scope

    hostile = ['=HYPERLINK("http://evil.example","click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\t=1"]
    with session_scope(get_engine()) as session:
        for n, title in enumerate(hostile):
            get_or_create_link(session, f"https://example.org/{n}", title=title)
    rows = list(csv.DictReader(io.StringIO(export_links(get_engine(), "csv"))))
    assert sorted(r["title"] for r in rows) == sorted("'" + t for t in hostile)
    buffer = io.StringIO()
    writer = SafeWriter(buffer)
    writer.writerow(["text", "label"])
    for text in hostile[:4] + ["@united lost my bag", "fine"]:
        writer.writerow([text, "negative"])
    read = inputs_from_file(buffer.getvalue(), "group.csv", "text", "label")
    assert [i.text for i in read] == [t.strip() for t in hostile[:4]] + ["@united lost my bag", "fine"]


@pytest.mark.parametrize("path", ["/charset-undefined", "/charset-punycode", "/charset-base64", "/length-superscript"])
def test_a_broken_charset_or_length_falls_back_instead_of_failing(path, web_server):
    """These ended the snapshot with an internal exception message; now the body is decoded by detection."""
    from core.library.fetch import AddressPolicy, fetch

    result = fetch(f"{web_server}{path}", policy=AddressPolicy(("127.0.0.1",)))
    assert "harbour" in result.text or "Plain words" in result.text


def test_binary_bytes_served_as_text_are_not_a_snapshot(home, web_server):
    """1 MB of random bytes as text/plain was stored as a successful snapshot."""
    from core.library.snapshots import snapshot_url
    from core.storage.db import get_engine

    outcome = snapshot_url(get_engine(), f"{web_server}/random-bytes")
    assert outcome.snapshot.error and "binary data, not text" in outcome.snapshot.error


def test_corpus_status_says_interrupted_when_the_driver_is_gone(home, capsys):
    """`corpus status` said "running" after its driver was killed."""
    from core.analyses import corpus
    from core.analyses.corpus.inputs import Input
    from core.cli import main
    from core.storage.db import get_engine, session_scope
    from core.storage.schema import CorpusJob, utcnow

    job = corpus.create_job(get_engine(), "killed", [Input("a", "Fine.")], ["occlusion"])
    with session_scope(get_engine()) as session:  # as a killed driver on this host leaves it: its pid is gone
        row = session.get(CorpusJob, job)
        row.status, row.owner, row.heartbeat_at = "running", f"{socket.gethostname()}:999999999:x", utcnow()
        session.add(row)
    assert main(["corpus", "status"]) == 0
    assert "interrupted" in capsys.readouterr().out
    assert main(["corpus", "status", str(job)]) == 0
    assert f"job {job} 'killed': interrupted" in capsys.readouterr().out


def test_extraction_is_stopped_at_its_budget_and_the_process_goes_on(home, monkeypatch):
    """A page built to be slow to extract (49,900 paragraphs, just under the element budget) ran for minutes in
    the page; extraction now runs in a forked child that is stopped at its budget. Here the budget is tiny (1 MB
    of memory), and the test waits for the snapshot to end, not for a clock."""
    from core.library.snapshots import snapshot_url
    from core.storage.db import get_engine

    monkeypatch.setenv("RASHOMON_EXTRACTION_MB", "1")
    base, stop = start_hostile_server()
    try:
        outcome = snapshot_url(get_engine(), f"{base}/paragraphs-49900")
    finally:
        stop.set()
    assert outcome.snapshot.error == "Stopped extracting the page's text: it needed more than 1 MB."
    assert outcome.snapshot.raw_html  # the page itself is kept


def test_a_bounded_function_returns_its_value_or_raises_its_own_error():
    from core.library.bounded import Budget, BudgetExceeded, run_bounded

    assert run_bounded(sorted, [3, 1, 2]) == [1, 2, 3]
    with pytest.raises(ZeroDivisionError):
        run_bounded(divmod, 1, 0)
    with pytest.raises(BudgetExceeded, match="it took longer than 0.2 s"):
        run_bounded(time.sleep, 30, budget=Budget(seconds=0.2))


def _crash_the_first_time(flag: str) -> str:
    """Ends its process on SIGSEGV unless `flag` exists (it creates it first): a crash that a second fork survives."""
    import os
    import signal
    from pathlib import Path

    if not Path(flag).exists():
        Path(flag).touch()
        os.kill(os.getpid(), signal.SIGSEGV)
    return "parsed"


def test_a_child_that_crashes_once_is_forked_again_and_one_that_always_crashes_says_so(tmp_path):
    """A forked extraction ended once on signal 11 in CI (a parser's C code in a copy of a busy test process); the
    work is forked a second time, and a child that crashes every time is one clear sentence."""
    from core.library.bounded import BudgetExceeded, run_bounded

    assert run_bounded(_crash_the_first_time, str(tmp_path / "crashed-once")) == "parsed"
    with pytest.raises(BudgetExceeded, match="it ended on signal 11"):
        run_bounded(_always_crash)


def _always_crash() -> None:
    import os
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)


def test_uploads_are_read_row_by_row_up_to_a_stated_bound(monkeypatch):
    """A 1-million-row upload took the server from 0.72 to 1.15 GB; uploads stop at a bound the page states."""
    from core.analyses import evaluation
    from core.analyses.corpus import inputs

    monkeypatch.setattr(evaluation, "MAX_ROWS", 50)
    monkeypatch.setattr(inputs, "MAX_ROWS", 50)
    rows = "text,label\n" + "".join(f"row {i},positive\n" for i in range(51))
    with pytest.raises(evaluation.EvaluationError, match="more than 50 rows"):
        evaluation.inputs_from_file(rows, "big.csv")
    with pytest.raises(evaluation.EvaluationError, match="more than 50 rows"):
        evaluation.inputs_from_file("".join(f'{{"text": "r{i}", "label": "positive"}}\n' for i in range(51)), "big.jsonl")
    with pytest.raises(inputs.CorpusError, match="more than 50 texts"):
        inputs.inputs_from_csv(rows)
    assert len(evaluation.inputs_from_file(rows.rsplit("row 50", 1)[0], "fine.csv")) == 50
