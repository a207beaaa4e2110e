"""Builds started from a page run in a process of their own and report through a status file."""

from __future__ import annotations

import time

import pytest

from core.builds import build, list_builds, start_rebuild

pytestmark = [pytest.mark.processes, pytest.mark.slow]  # a build process of its own


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("RASHOMON_HOME", str(tmp_path))
    return tmp_path


def wait(build_id: str, seconds: float = 240):
    deadline = time.monotonic() + seconds
    while (current := build(build_id)).running:
        assert time.monotonic() < deadline, f"build still running: {current.message}"
        time.sleep(0.5)
    return current


def test_a_bad_row_ends_the_build_with_one_line_and_no_model(home):
    started = start_rebuild("text,gold\nThe lift was broken,furious\n", "a hand-made file")
    assert started.extra_rows == 1 and started.running
    ended = wait(started.id, 60)
    assert "furious" in ended.error and "\n" not in ended.error and "Traceback" not in ended.error
    assert not ended.finished and not (home / "models").exists()
    assert [b.id for b in list_builds()] == [started.id]


# The success path (a real rebuild with extra rows, its status and its training rows) is browser journey 12.
