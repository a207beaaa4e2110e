"""Hostile input: servers that dribble, lie or redirect to nonsense, pages built to exhaust a parser, and
the one-line errors every bad input gets. Every hostile server runs on 127.0.0.1, bounded in time."""

from __future__ import annotations

import gzip
import socket
import threading
import time

import pytest

from core.fetch import FetchError, FetchLimits, fetch

PAGE = b"<html><head><title>Fine</title></head><body><article><p>" + b"A readable sentence about the park. " * 40 \
    + b"</p></article></body></html>"


def _respond(conn: socket.socket, path: str) -> None:
    if path == "/dribble-status":
        for byte in b"HTTP/1.1 200 OK\r\n":  # one byte a second: each read succeeds, the whole never ends
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
    elif path in ("/tiny-elements", "/many-links"):
        body = (b"<html><body>" + (b"<p>x</p>" * 400_000 if path == "/tiny-elements" else
                                   b"".join(b'<a href="/l%d">l</a>' % i for i in range(200_000))) + b"</body></html>")
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                     + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)


@pytest.fixture(scope="module")
def hostile():
    """A raw TCP server: each connection reads a request line and misbehaves according to its path."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            try:
                request = conn.recv(65536).decode("latin-1")
                _respond(conn, request.split(" ")[1] if " " in request else "/")
            except OSError:
                pass  # the client gave up: exactly what these tests want

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    server.close()


@pytest.fixture
def allowed(monkeypatch):
    monkeypatch.setenv("RASHOMON_ALLOWED_INTERNAL_HOSTS", "127.0.0.1")


@pytest.mark.parametrize("path", ["/dribble-status", "/dribble-headers"])
def test_one_deadline_covers_status_line_and_headers(hostile, allowed, path):
    started = time.monotonic()
    with pytest.raises(FetchError) as error:
        fetch(f"{hostile}{path}", FetchLimits(total_timeout=2.0))
    assert error.value.kind == "timeout" and time.monotonic() - started < 4.0


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
    from core.snapshots import snapshot_url

    started = time.monotonic()
    outcome = snapshot_url(engine, f"{hostile}{path}")
    assert time.monotonic() - started < 10
    assert outcome.snapshot is not None and "more than the" in outcome.error and "elements" in outcome.error


def test_a_bad_redirect_in_a_batch_is_one_failure_and_the_batch_goes_on(hostile, allowed, engine, web_server):
    from core.snapshots import list_links, snapshot_many

    summary = snapshot_many(engine, f"{hostile}/bad-redirect\n{web_server}/article")
    assert summary.succeeded == 1 and len(summary.failures) == 1
    assert "unusable address" in summary.failures[0][1]
    assert all(v.snapshot_count == 1 for v in list_links(engine))  # the failed link has its failed snapshot
