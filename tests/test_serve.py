"""scripts/serve.py switches off Streamlit's old pages-folder mode through a private class attribute
(streamlit#9624). These tests fail when Streamlit changes underneath it: then look for a supported way,
or drop the switch if the relic is gone."""

from __future__ import annotations

import inspect
from pathlib import Path

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
