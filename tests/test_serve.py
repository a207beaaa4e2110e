"""scripts/serve.py switches off Streamlit's old pages-folder mode through a private class attribute
(streamlit#9624). These tests fail when Streamlit changes underneath it: then look for a supported way,
or drop the switch if the relic is gone."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_streamlit_still_guesses_the_pages_folder_mode_and_the_switch_still_overrides_it(monkeypatch):
    from streamlit.runtime import pages_manager
    from streamlit.runtime.pages_manager import PagesManager

    monkeypatch.setattr(PagesManager, "uses_pages_directory", None)
    PagesManager(str(ROOT / "app.py"))
    # The problem: a `pages/` folder beside app.py turns the old mode on (if this fails, the relic is gone
    # and serve.py's switch can go).
    assert PagesManager.uses_pages_directory is True
    monkeypatch.setattr(PagesManager, "uses_pages_directory", False)  # what serve.py does before the server starts
    PagesManager(str(ROOT / "app.py"))
    assert PagesManager.uses_pages_directory is False
    # ...and the script runner still reads the flag, so setting it still matters.
    from streamlit.runtime.scriptrunner import script_runner

    assert "uses_pages_directory" in inspect.getsource(script_runner)
    assert "uses_pages_directory" in inspect.getsource(pages_manager)


def test_serve_py_sets_the_switch_before_starting_streamlit():
    source = (ROOT / "scripts" / "serve.py").read_text()
    assert source.index("PagesManager.uses_pages_directory = False") < source.index("cli.main()")


@pytest.mark.processes
def test_the_servers_workers_start_with_it_and_take_up_queued_work_before_any_page_view(home, tmp_path):
    """After a restart, an interrupted task waited until someone opened a page (workers started on the first
    page view). Now serve.py starts them: a task queued before the server is done with no page ever opened."""
    import os
    import socket
    import subprocess
    import sys

    from core.storage.db import get_engine
    from core.work import tasks
    from tests.support.waiting import wait_until

    task = tasks.submit(get_engine(), "comparison", os.environ["RASHOMON_MODEL"],
                        {"text": "Fine words.", "methods": ["occlusion"], "options": {}, "target": ""})
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RASHOMON_TASK_WORKERS": "1"}
    server = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve.py"), "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done = wait_until(lambda: (t := tasks.get_task(get_engine(), task.id)) and t.status == "done" and t,
                          timeout=240, what="the queued task done by the server's worker")
    finally:
        server.terminate()
        server.wait(timeout=30)  # its workers watch it and end with it
    assert done.owner and done.attempts == 1


@pytest.mark.processes
@pytest.mark.slow
def test_a_fresh_server_answers_at_once_and_builds_the_missing_default_model_on_its_worker(home, tmp_path, monkeypatch):
    """`make run` used to build the default model before serving (minutes with nothing to see); the server now
    starts at once, queues the build and its worker builds it, with no page opened."""
    import os
    import socket
    import subprocess
    import sys
    import urllib.request

    from core.storage.db import get_engine
    from core.storage.settings import load_settings
    from core.work import builds
    from tests.support.waiting import wait_until

    monkeypatch.setenv("RASHOMON_MODEL", "default")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "RASHOMON_TASK_WORKERS": "1",
           "RASHOMON_BUILD_OPTIONS": "--train-rows 24 --heldout-rows 12 --checkpoints 1"}
    server = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "serve.py"), "--server.port", str(port),
                               "--server.address", "127.0.0.1", "--server.headless", "true"],
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def answers() -> bool:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).status == 200
        except OSError:
            return False

    try:
        wait_until(answers, timeout=120, what="the server's health check")
        assert builds.list_builds(get_engine())  # queued before any page view
        built = wait_until(lambda: (b := builds.list_builds(get_engine())) and b[0].status == "done" and b[0],
                           timeout=600, what="the default build on the server's worker")
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert (load_settings().default_model_dir / "config.json").is_file() and built.output_dir
    assert "median of the 1 build(s)" in builds.build_time(get_engine())
