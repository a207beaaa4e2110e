"""A real `streamlit run` of the app on a free 127.0.0.1 port, driven by Debian's chromium."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "browser"
CHROMIUM = os.environ.get("RASHOMON_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def app_server(tmp_path_factory, tiny_model_dir, trained_tiny_model_dir, chinese_tiny_model_dir):
    """Start the dashboard with a temporary RASHOMON_HOME and the tiny model; stop it afterwards."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium).")
    home = tmp_path_factory.mktemp("browser-home")
    env = {**os.environ, "RASHOMON_HOME": str(home), "RASHOMON_MODEL": str(tiny_model_dir),
           "RASHOMON_ALLOWED_INTERNAL_HOSTS": "127.0.0.1", "HF_HUB_OFFLINE": "1", "RASHOMON_TASK_WORKERS": "2",
           # the server and its workers count their model loads and passes (journey 14 reads the server's)
           "RASHOMON_COUNT_PASSES": "1",
           # the models a visitor may choose, by name (links carry names, never paths)
           "RASHOMON_MODELS": f"tiny={tiny_model_dir},trained={trained_tiny_model_dir},zh={chinese_tiny_model_dir}",
           # a page's rebuild button builds a tiny default model (the real one takes 9 minutes)
           "RASHOMON_BUILD_OPTIONS": "--train-rows 24 --heldout-rows 12 --checkpoints 1"}
    env.pop("RASHOMON_DATABASE_URL", None)
    with serving(env, tmp_path_factory.mktemp("logs") / "streamlit.log") as (url, process):
        yield {"url": url, "home": home, "env": env, "pid": process.pid}


@pytest.fixture(scope="session")
def fresh_server(tmp_path_factory, tiny_model_dir):
    """`scripts/serve.py` as a newcomer starts it: an empty data directory and no model configured, so the
    server queues the default model's build, then its preparation and sample workspace, on its workers. The
    build is the real build task on the tweet corpus, with the tiny network as the encoder (the real one takes
    minutes; scripts/bench_first_minutes.py times that)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium (apt-get install chromium).")
    home = tmp_path_factory.mktemp("fresh-home")
    env = {**os.environ, "RASHOMON_HOME": str(home), "RASHOMON_ALLOWED_INTERNAL_HOSTS": "127.0.0.1",
           "HF_HUB_OFFLINE": "1", "RASHOMON_TASK_WORKERS": "2",
           "RASHOMON_BUILD_OPTIONS": f"--train-rows 90 --heldout-rows 30 --checkpoints 2 --encoder {tiny_model_dir}",
           "RASHOMON_SAMPLES": "6", "RASHOMON_SAMPLE_HELDOUT": "60"}
    for name in ("RASHOMON_DATABASE_URL", "RASHOMON_MODEL", "RASHOMON_MODELS"):
        env.pop(name, None)
    with serving(env, tmp_path_factory.mktemp("logs") / "fresh-streamlit.log") as (url, process):
        yield {"url": url, "home": home, "env": env, "pid": process.pid}


@contextlib.contextmanager
def serving(env: dict, log_path: Path, *, port: int | None = None, args: tuple[str, ...] = ()):
    """A `scripts/serve.py` on `port` (default: a free one) with `env` and extra Streamlit `args`, answering its
    health check; stopped afterwards."""
    port = port or free_port()
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "serve.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", *args],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"streamlit did not start; see {log.name}")
        time.sleep(0.3)
    yield url, process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import expect, sync_playwright

    # Assertions wait for what a person would wait for: a page rerun can take seconds on a busy CI machine.
    expect.set_options(timeout=60_000)

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield instance
        instance.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1500, "height": 1000}, accept_downloads=True)
    context.set_default_timeout(60_000)
    page = context.new_page()
    yield page
    context.close()


def screenshot(page, name: str, height: int = 1000) -> Path:
    """Save the page; Streamlit scrolls inside its own container, so a tall viewport shows more."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / f"{name}.png"
    if height > 1000:
        page.set_viewport_size({"width": 1500, "height": height})
        page.wait_for_load_state("networkidle")
    page.screenshot(path=str(path), full_page=True)
    return path


def open_tab(page, name: str) -> None:
    """Open Compare's result tab `name` (Words, Agreement, Faithfulness, Attention, What would flip it?, Summary and
    export) and wait until it is the selected one (selecting it reruns the page)."""
    tab = page.get_by_role("tab", name=name, exact=True)
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")  # the rerun has ended
