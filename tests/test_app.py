"""AppTest smoke tests: every page renders without an exception, headless."""

from pathlib import Path

from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def run_page(path: str, **query) -> AppTest:
    """Open `path` through app.py's navigation, as a browser would."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for key, value in query.items():
        app.query_params[key] = value
    app.run()
    return app.switch_page(path).run()


def test_home_page_shows_model_and_counts(home):
    app = run_page("pages/home.py")
    assert not app.exception
    texts = " ".join(t.value for t in app.text)
    assert "negative, neutral, positive" in texts and str(home) in texts
    assert [m.label for m in app.metric][:3] == ["Links", "Snapshots", "Tags"]


def test_home_page_offers_to_build_missing_default_model(home, monkeypatch):
    monkeypatch.setenv("RASHOMON_MODEL", "default")
    app = run_page("pages/home.py")
    assert not app.exception
    assert any("not been built" in w.value for w in app.warning)
    assert any(b.label == "Build the default model" for b in app.button)


def test_home_page_reports_unloadable_model(home, monkeypatch, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("RASHOMON_MODEL", str(tmp_path))
    app = run_page("pages/home.py")
    assert not app.exception
    assert app.error and "model" in app.error[0].value.lower()


def test_snapshots_page_adds_links_and_reports_failures(home, web_server):
    app = run_page("pages/snapshots.py")
    assert not app.exception
    app.text_area(key="add_urls").set_value(f"{web_server}/xss\n{web_server}/doc.pdf")
    app.text_input(key="add_tags").set_value("reviews")
    app.button[0].click().run()  # the form's submit button
    assert not app.exception
    assert any("1 link(s) snapshotted" in s.value for s in app.success)
    assert any("PDF" in e.value for e in app.error)
    # Page text containing markup is shown as text, never as live HTML.
    from core.snapshots import list_links

    xss = next(v for v in list_links() if v.url.endswith("/xss"))
    app.selectbox(key="focus_link").set_value(xss.id).run()
    shown = " ".join(t.value for t in app.text)
    assert '<script>alert("pwned")</script>' in shown and "<img src=x onerror=alert(2)>" in shown
    assert all("<script" not in m.value for m in app.markdown)


def test_snapshots_page_filters_by_tag_and_search(home, web_server):
    from core.snapshots import snapshot_url

    snapshot_url(f"{web_server}/article", ["city"])
    snapshot_url(f"{web_server}/legacy", ["food"])
    app = run_page("pages/snapshots.py")
    app.multiselect(key="filter_all").set_value(["food"]).run()
    assert not app.exception
    assert any(s.label == "Open link" and len(s.options) == 1 and "Café" in s.options[0] for s in app.selectbox)
    app.multiselect(key="filter_all").set_value([]).run()
    app.text_input(key="filter_search").set_value("riverside").run()
    assert any(s.label == "Open link" and len(s.options) == 1 and "riverside" in s.options[0] for s in app.selectbox)


def test_snapshots_page_bad_bulk_input_keeps_data(home, web_server):
    from core.snapshots import list_links, snapshot_url

    snapshot_url(f"{web_server}/article", [])
    app = run_page("pages/snapshots.py")
    app.text_area(key="add_urls").set_value("not a link at all\nftp://x.example/")
    app.button[0].click().run()
    assert not app.exception
    assert len(app.error) == 2 and "http" in app.error[0].value
    assert len(list_links()) == 1
