"""AppTest smoke tests: every page renders without an exception, headless."""

import os
import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.render import shown
from core.storage.db import get_engine
from tests.support.compare_page import summary_lines
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent


def run_page(path: str, **query) -> AppTest:
    """Open `path` through app.py's navigation, as a browser would."""
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    for key, value in query.items():
        app.query_params[key] = value
    app.run()
    return app if path == "app.py" else app.switch_page(path).run()


def test_home_page_shows_model_and_counts(home, tiny_model_dir):
    from core.engine.fingerprints import remember
    from core.engine.modelling import load_model
    from core.engine.pass_time import record_shortcut
    from core.engine.runner import ModelRunner
    from core.storage.db import get_engine

    app = run_page("app.py")
    assert not app.exception
    texts = " ".join(t.value for t in app.text)
    assert "negative, neutral, positive" in texts and str(home) in texts
    assert "First-token shortcut: checked by a worker on its first pass" in texts
    # The page never checks the shortcut itself (that takes model passes): it shows what a worker stored.
    worker = ModelRunner(load_model(str(tiny_model_dir)))
    worker.probabilities_for_texts(["a first pass"])
    remember(get_engine(), worker.loaded)
    record_shortcut(get_engine(), worker)
    texts = " ".join(t.value for t in run_page("app.py").text)
    assert "First-token shortcut: on" in texts  # the tiny model is a BERT classifier
    assert "Tasks (comparisons, checks, searches): 0 running, 0 queued" in texts
    assert "none (RASHOMON_TASK_WORKERS=0: tasks run in the page)" in texts
    assert [m.label for m in app.metric][:3] == ["Links", "Snapshots", "Tags"]


def test_home_page_offers_to_build_missing_default_model(home, monkeypatch):
    monkeypatch.setenv("RASHOMON_MODEL", "default")
    app = run_page("app.py")
    assert not app.exception
    assert any("not been built" in w.value for w in app.warning)
    assert any(b.label == "Build the default model" for b in app.button)
    assert any("no build has finished here yet" in w.value for w in app.warning)  # no constant estimate


def test_home_follows_the_build_the_server_queued_at_start(home, monkeypatch):
    """scripts/serve.py queues the missing default model's build before any page view; Home follows that task
    (the same key as its own button) instead of offering a second build."""
    from core.work import builds

    monkeypatch.setenv("RASHOMON_MODEL", "default")
    monkeypatch.setenv("RASHOMON_TASK_WORKERS", "1")  # a worker would take it: here it stays queued
    monkeypatch.setattr("pages.widgets.resources.ensure_task_workers", lambda: None)
    builds.submit_build(get_engine())
    app = run_page("app.py")
    assert not app.exception
    assert next(b for b in app.button if b.label == "Build the default model").disabled
    assert any(i.value == "Waiting for a free worker…" for i in app.info)


@pytest.mark.parametrize("path", ["pages/compare.py", "pages/corpus.py", "pages/checks.py"])
def test_pages_that_need_the_model_follow_its_build(home, monkeypatch, path):
    """While the default model builds on a worker, a page that needs it shows the build's progress, not an error;
    with no build queued it says the model is missing."""
    from core.work import builds

    monkeypatch.setenv("RASHOMON_MODEL", "default")
    monkeypatch.setenv("RASHOMON_TASK_WORKERS", "1")
    monkeypatch.setattr("pages.widgets.resources.ensure_task_workers", lambda: None)
    missing = run_page(path)
    assert not missing.exception and missing.error and not any("being built" in i.value for i in missing.info)
    builds.submit_build(get_engine())
    building = run_page(path)
    assert not building.exception and not building.error
    assert any("The default model is being built on a worker" in i.value for i in building.info)


def test_home_page_reports_unloadable_model(home, monkeypatch, tmp_path):
    (tmp_path / "config.json").write_text("{}")
    monkeypatch.setenv("RASHOMON_MODEL", str(tmp_path))
    app = run_page("app.py")
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
    from core.library.snapshots import list_links

    xss = next(v for v in list_links(get_engine()) if v.url.endswith("/xss"))
    app.selectbox(key="focus_link").set_value(xss.id).run()
    shown = " ".join(t.value for t in app.text)
    assert '<script>alert("pwned")</script>' in shown and "<img src=x onerror=alert(2)>" in shown
    assert all("<script" not in m.value for m in app.markdown)


def test_snapshots_page_filters_by_tag_and_search(home, web_server):
    from core.library.snapshots import snapshot_url

    snapshot_url(get_engine(), f"{web_server}/article", ["city"])
    snapshot_url(get_engine(), f"{web_server}/legacy", ["food"])
    app = run_page("pages/snapshots.py")
    app.multiselect(key="filter_all").set_value(["food"]).run()
    assert not app.exception
    assert any(s.label == "Open link" and len(s.options) == 1 and "Café" in s.options[0] for s in app.selectbox)
    app.multiselect(key="filter_all").set_value([]).run()
    app.text_input(key="filter_search").set_value("riverside").run()
    assert any(s.label == "Open link" and len(s.options) == 1 and "riverside" in s.options[0] for s in app.selectbox)


def test_snapshots_page_bad_bulk_input_keeps_data(home, web_server):
    from core.library.snapshots import list_links, snapshot_url

    snapshot_url(get_engine(), f"{web_server}/article", [])
    app = run_page("pages/snapshots.py")
    app.text_area(key="add_urls").set_value("not a link at all\nftp://x.example/")
    app.button[0].click().run()
    assert not app.exception
    assert len(app.error) == 2 and "http" in app.error[0].value
    assert len(list_links(get_engine())) == 1


FAST = "occlusion,attention,attention_rollout,input_x_gradient,saliency"


def frame_of(app: AppTest, column: str):
    return next(d.value for d in app.dataframe if column in d.value.columns)


def test_compare_page_runs_changes_k_and_reopens_from_a_share_link(home):
    text = "The staff were lovely but the food was cold and bland."
    app = run_page("pages/compare.py", text=text, methods=FAST, k="3")
    assert not app.exception
    assert any("Press **Run**" in i.value for i in app.info)
    app.button[0].click().run()
    assert not app.exception
    headers = [s.value for s in app.subheader]
    assert any(h.startswith("Prediction:") for h in headers)
    assert {"Side by side", "Agreement", "Faithfulness: which account does the model support?", "Summary"} <= set(headers)
    summary = summary_lines(app)
    assert summary and "The model predicts" in summary[0]
    from core.methods import METHODS

    titles = [METHODS[m].title for m in FAST.split(",")]
    top_table = frame_of(app, "method")
    assert list(top_table["method"]) == titles  # one row per method: all visible at once
    assert list(top_table.columns) == ["method", "1", "2", "3"]  # k = 3
    app.slider(key="k").set_value(5).run()
    assert not app.exception
    assert app.query_params["k"] in (["5"], "5")
    assert list(frame_of(app, "method").columns) == ["method", "1", "2", "3", "4", "5"]

    # A teammate opens the same address on a fresh server process: everything comes from the store.
    import streamlit as st

    st.cache_resource.clear()
    shared = run_page("pages/compare.py", text=text, methods=FAST, k="5")
    assert not shared.exception
    # Where the results came from, honestly: its last run computed them (the old page said "Stored results reused
    # for" every method right after a fresh run, because the page reads what the worker stored).
    computed = f"Computed by this view's last run: all {len(FAST.split(','))} methods."
    assert any(c.value == computed for c in app.caption) and not any("reused" in c.value for c in app.caption)
    assert any(c.value == computed for c in shared.caption)
    assert [s.value for s in shared.subheader if s.value.startswith("Prediction")] == \
        [s.value for s in app.subheader if s.value.startswith("Prediction")]
    assert any(c.value.startswith("Model passes to show this view now: 0 ") for c in shared.caption)
    cost = next(d.value for d in shared.dataframe if "forward passes now" in d.value.columns)
    assert cost["forward passes now"].sum() == 0 and len(cost) == len(FAST.split(",")) + 1
    assert frame_of(shared, "comprehensiveness AOPC ↑").equals(frame_of(app, "comprehensiveness AOPC ↑"))
    assert frame_of(shared, "total variation").equals(frame_of(app, "total variation"))


def test_compare_page_bad_links_say_so(home):
    app = run_page("pages/compare.py", demo="999")
    assert not app.exception and any("does not exist" in e.value for e in app.error)
    # Before, it said "Showing a fresh comparison" and cleared the address; now the address keeps the demo asked for.
    assert app.query_params["demo"] in ("999", ["999"]) and not [s for s in app.subheader if s.value == "Input"]
    app = run_page("pages/compare.py", snapshot="4242", methods=FAST)
    assert not app.exception and any("Snapshot 4242 does not exist" in e.value for e in app.error)


def test_a_link_to_a_missing_snapshot_explains_no_other_and_keeps_its_address(home):
    """Before, `/Compare?snapshot=999` said so in the sidebar, then explained the first snapshot and rewrote the
    address to it."""
    from core.storage.db import get_engine, session_scope
    from core.storage.schema import Link, Snapshot

    with session_scope(get_engine()) as session:
        link = Link(url="https://example.com/a", normalized_url="https://example.com/a", title="A real page")
        session.add(link)
        session.flush()
        session.add(Snapshot(link_id=link.id, text="The staff were kind. The room was cold.", title="A real page"))
    app = run_page("pages/compare.py", snapshot="4242", methods=FAST)
    assert not app.exception
    assert any("Snapshot 4242 does not exist" in e.value and "Choose one" in e.value for e in app.error)
    assert not [s for s in app.subheader if s.value.startswith("Prediction")]
    assert not any("Press **Run**" in i.value for i in app.info)  # nothing else offered to explain
    assert app.query_params["snapshot"] == ["4242"] or app.query_params["snapshot"] == "4242"

def test_free_text_is_stored_and_the_address_names_it_by_a_short_key(home):
    """Before, the address carried the text itself: a 20,000-word text made a 91,835-character link that chat tools
    and proxies cut. Now the page stores the text and the address carries its key; old `text=` links still open
    (and are rewritten to the key), and a key this server does not have is said so, with the address kept."""
    from core.storage.db import get_engine
    from core.storage.texts import recall_text, text_key

    def query_value(app, name):
        value = app.query_params.get(name)
        return value[0] if isinstance(value, list) else value

    long_text = " ".join(["The staff were kind but the room was cold."] * 2000)  # 18,000 words
    for page, box in (("pages/compare.py", "free_text"), ("pages/training_data.py", "data_text")):
        app = run_page(page, text=long_text, methods=FAST if page.endswith("compare.py") else "knn")
        assert not app.exception
        key = query_value(app, "t")
        assert key == text_key(long_text) and "text" not in app.query_params  # rewritten to the stored key
        assert recall_text(get_engine(), key) == long_text
        assert sum(len(k) + len(str(v)) + 2 for k, v in app.query_params.items()) < 300  # a short address
        reopened = run_page(page, t=key)
        assert not reopened.exception and reopened.text_area(key=box).value == long_text
        unknown = run_page(page, t="0123456789abcdef")
        assert not unknown.exception
        assert any("t=0123456789abcdef" in e.value and "does not have" in e.value for e in unknown.error), page
        assert query_value(unknown, "t") == "0123456789abcdef"  # kept, not rewritten to another view
        assert not [s for s in unknown.subheader if s.value.startswith("Prediction")]


def test_a_link_never_makes_the_server_open_a_path_or_a_hub_id(home, tiny_model_dir, monkeypatch):
    """Models are chosen by name from the server's list; a path, a file or a hub id in a link opens nothing
    (before, `model=/etc` answered with what it found there)."""
    import core.engine.modelling as modelling

    opened, resolve = [], modelling._resolve
    monkeypatch.setattr(modelling, "_resolve", lambda spec: opened.append(spec) or resolve(spec))
    for page in ("pages/compare.py", "pages/training_data.py", "pages/document.py"):
        for value in ("/etc", "/nonexistent", str(tiny_model_dir / "config.json"), "bert-base-uncased"):
            app = run_page(page, text="fine words", methods=FAST, model=value)
            assert not app.exception
            assert any("'model' must be one of default" in w.value for w in app.warning), (page, value)
    for value in ("/etc", "bert-base-uncased"):
        app = run_page("pages/models.py", a=value, b=value)
        assert not app.exception and any("'a' must be one of default" in w.value for w in app.warning)
    assert set(opened) <= {str(tiny_model_dir)}  # only the configured model was ever described


def test_compare_page_on_a_snapshot_with_markup_and_a_saved_demo(home, web_server):
    from core.analyses.compare import list_demos
    from core.library.snapshots import snapshot_url

    snap = snapshot_url(get_engine(), f"{web_server}/xss", ["demo"]).snapshot
    app = run_page("pages/compare.py", snapshot=str(snap.id), passage="all:0-0", methods=FAST, k="3")
    assert not app.exception
    app.button[0].click().run()
    assert not app.exception
    assert any('<script>alert("pwned")</script>' in t.value for t in app.text)  # shown as text
    assert all("<script" not in m.value for m in app.markdown)
    app.text_input(key="demo_name").set_value("xss walkthrough")
    app.text_area(key="demo_note").set_value("escaping check")
    next(b for b in app.button if b.label == "Save as demo").click().run()
    assert not app.exception and any("Saved demo" in s.value for s in app.success)
    demo = list_demos(get_engine())[0]
    reopened = run_page("pages/compare.py", demo=str(demo.id))
    assert not reopened.exception
    assert reopened.query_params["snapshot"] in (str(snap.id), [str(snap.id)])


def test_corpus_page_runs_a_job_over_tagged_snapshots(home, web_server):

    from core.analyses import corpus
    from core.library.snapshots import snapshot_url
    from core.storage.db import get_engine

    snapshot_url(get_engine(), f"{web_server}/article", ["batch"])
    snapshot_url(get_engine(), f"{web_server}/legacy", ["batch"])
    app = run_page("pages/corpus.py")
    assert not app.exception and any("No corpus runs" in i.value for i in app.info)
    app.multiselect(key="corpus_tags").set_value(["batch"]).run()
    app.multiselect(key="corpus_methods").set_value(["attention", "occlusion"]).run()
    captions = [c.value for c in app.caption]
    assert any(c.endswith("passages selected.") and not c.startswith("0 ") for c in captions), captions
    assert any(c.startswith("Estimated time on this machine") for c in captions), captions
    app.number_input(key="corpus_faithfulness_inputs").set_value(1).run()
    next(b for b in app.button if b.label == "Start run").click().run()
    assert not app.exception
    job = corpus.list_jobs(get_engine())[0]
    wait_until(lambda: corpus.get_job(get_engine(), job.id).status == "done", what="the corpus run")
    app = run_page("pages/corpus.py", job=str(job.id))
    assert not app.exception
    headers = [s.value for s in app.subheader]
    assert {"Agreement between methods, over inputs", "Faithfulness leaderboard", "Cost", "By predicted label"} <= set(headers)
    total = corpus.get_job(get_engine(), job.id).total
    assert total > 1 and any(f"sample of 1 of the {total} inputs" in c.value for c in app.caption)
    missing = run_page("pages/corpus.py", job="999")
    assert any("does not exist" in e.value for e in missing.error)


def test_checks_page_gives_verdicts_that_survive_a_reload(home):
    app = run_page("pages/checks.py")
    assert not app.exception
    app.text_area(key="checks_text").set_value("The plot was thin but the acting was superb.").run()
    app.multiselect(key="checks_stability_methods").set_value(["integrated_gradients"]).run()
    next(b for b in app.button if b.label == "Run stability check").click().run()
    assert not app.exception
    assert any(m.value.startswith("integrated_gradients:") for m in [*app.success, *app.error])
    # The baseline is a choice, reported as sensitivity, not as instability.
    assert any("changing its baseline" in i.value for i in app.info)
    app.multiselect(key="checks_random_methods").set_value(["attention", "saliency"]).run()
    next(b for b in app.button if b.label == "Run randomisation check").click().run()
    assert not app.exception
    verdicts = [m.value for m in [*app.success, *app.error]]
    attention = next(v for v in verdicts if v.startswith("attention:"))
    assert "Not judged: classifier head (cannot change it)" in attention
    assert any(v.startswith("saliency:") and "classifier head onwards" in v for v in verdicts)
    stability_id, randomisation_id = app.query_params["stability"], app.query_params["randomisation"]

    reloaded = run_page("pages/checks.py", stability=stability_id, randomisation=randomisation_id)
    assert not reloaded.exception
    assert sorted(m.value for m in [*reloaded.success, *reloaded.error]) == sorted(
        m.value for m in [*app.success, *app.error])
    missing = run_page("pages/checks.py", randomisation="999")
    assert any("no stored randomisation check '999'" in e.value for e in missing.error)


def test_compare_shows_a_partly_stored_view_and_names_what_is_missing(home):
    """A stopped run leaves some methods stored: the page shows them, names the rest and claims no faithfulness."""
    from core.analyses.store import explain_stored
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.storage.db import get_engine
    from core.storage.settings import load_settings

    text = "The staff were lovely but the food was cold and bland."
    runner = ModelRunner(load_model(load_settings().resolved_model))
    explain_stored(get_engine(), runner, text, "occlusion")  # what a stopped run had finished
    app = run_page("pages/compare.py", text=text, methods=FAST, k="3")
    assert not app.exception
    warning = next(w.value for w in app.warning if w.value.startswith("Partly computed:"))
    assert "occlusion finished and are kept" in warning and "attention, attention_rollout" in warning
    headers = [s.value for s in app.subheader]
    assert "Side by side" in headers and summary_lines(app) == []  # no faithfulness claims on half a view
    assert any(i.value.startswith("Not measured for this view yet") for i in app.tabs[-1].info)
    assert any(c.value.startswith("Read from the store: every method's result") for c in app.caption)


@pytest.mark.processes
def test_compare_run_goes_to_a_worker_process_and_the_page_follows_it(home, monkeypatch, gate):
    """With local workers, Run only submits: the page shows the task's progress and a Stop button, a reload
    finds the same task (held at the gate, so it is certainly still running), and once the worker is done
    the stored view appears."""
    from core.work import tasks
    from pages.widgets.resources import _local_workers
    from tests.support.gate import entered, open_gate

    monkeypatch.setenv("RASHOMON_TASK_WORKERS", "1")
    text = "The staff were lovely but the food was cold and bland."
    methods = f"{FAST},gate"
    app = run_page("pages/compare.py", text=text, methods=methods, k="3")
    try:
        next(b for b in app.button if b.label == "Run").click().run()
        assert not app.exception
        assert "Prediction:" not in " ".join(s.value for s in app.subheader)  # nothing computed in the page
        submitted = tasks.list_tasks(get_engine())
        assert len(submitted) == 1 and submitted[0].kind == "comparison"
        [holder] = wait_until(lambda: entered(gate), what="the worker at the gate")
        assert holder != os.getpid()  # another process runs it
        reloaded = run_page("pages/compare.py", text=text, methods=methods, k="3")
        assert [b for b in reloaded.button if b.label == "Stop"]  # the same task, followed again
        assert any(b.label == "Run" and b.disabled for b in reloaded.button)
        open_gate(gate)
        wait_until(lambda: not tasks.get_task(get_engine(), submitted[0].id).active, what="the worker's task")
        done = tasks.get_task(get_engine(), submitted[0].id)
        assert done.status == "done" and done.owner.split(":")[1] == str(holder)
        finished = run_page("pages/compare.py", text=text, methods=methods, k="3")
        assert any(s.value.startswith("Prediction:") for s in finished.subheader)
        assert any(f"Its last run (task {done.id}, attempt 1)" in c.value for c in finished.caption)
        assert len(tasks.list_tasks(get_engine())) == 1  # reloads submitted nothing new
    finally:
        from core.storage.settings import load_settings

        _local_workers(1, str(load_settings().home)).stop()


def test_compare_target_label_control_is_honoured_in_links_and_stored_results(home):
    text = "The staff were lovely but the food was cold and bland."
    app = run_page("pages/compare.py", text=text, methods="occlusion,saliency", k="3", target="negative")
    assert not app.exception
    assert app.selectbox(key="target").value == "negative"
    next(b for b in app.button if b.label == "Run").click().run()
    assert not app.exception
    assert app.query_params["target"] in ("negative", ["negative"])
    summary = summary_lines(app)
    assert "**negative**" in summary[0]  # predicted, or named as the label the methods explain
    assert any("explaining **negative**" in c.value for c in app.caption)
    app.selectbox(key="target").set_value("positive").run()
    assert app.query_params["target"] in ("positive", ["positive"])
    assert any("Press **Run**" in i.value for i in app.info)  # another label: not stored yet
    bad = run_page("pages/compare.py", text=text, methods="occlusion", target="furious")
    assert not bad.exception
    assert any("'furious', which is not a label of this model" in w.value for w in bad.warning)
    assert bad.selectbox(key="target").value == ""


def test_compare_says_what_a_run_will_cost_and_what_is_dropped_before_run(home):
    long_text = " ".join(f"word{i}" for i in range(400))
    app = run_page("pages/compare.py", text=long_text, methods="occlusion,attention", k="3")
    assert not app.exception
    warning = next(w.value for w in app.warning if "will be dropped" in w.value)
    assert "of the input's 400 words" in warning
    assert any(c.value.startswith("Run will cost about ") for c in app.caption)
    next(b for b in app.button if b.label == "Keep only the first window").click().run()
    assert not app.exception
    kept = app.text_area(key="free_text").value
    assert long_text.startswith(kept) and len(kept) < len(long_text)
    assert not any("will be dropped" in w.value for w in app.warning)


def test_compare_names_a_k_above_the_slider_and_uses_the_default(home):
    from core.analyses.compare import DEFAULT_K, MAX_K

    app = run_page("pages/compare.py", text="Fine words.", methods="occlusion", k=str(MAX_K + 1))
    assert not app.exception
    assert any(f"'k' must be between 1 and {MAX_K}" in w.value for w in app.warning)
    assert app.slider(key="k").value == DEFAULT_K


def test_compare_names_what_a_link_got_wrong(home):
    app = run_page("pages/compare.py", text="Fine words.", methods="nonsense,occlusion", k="-2",
                   options='{"integrated_gradients": {"n_steps": -5}, "tarot": {"x": 1}}')
    assert not app.exception
    warnings = " ".join(shown(w.value) for w in app.warning)
    assert "'methods' names unknown values (nonsense)" in warnings and "'k' must be between 1 and 20, not -2" in warnings
    assert "n_steps" in warnings and "at least 2" in warnings and "'tarot'" in warnings
    assert app.multiselect(key="methods").value == ["occlusion"]


def test_snapshots_page_says_what_every_tag_action_and_refresh_did(home, web_server):
    from core.library.snapshots import snapshot_url

    snapshot_url(get_engine(), f"{web_server}/article", ["city"])
    snapshot_url(get_engine(), f"{web_server}/versioned", ["news"])
    app = run_page("pages/snapshots.py")

    def apply(action: str, source: str, target: str) -> AppTest:
        app.radio[[r.label for r in app.radio].index("Action")].set_value(action)
        next(s for s in app.selectbox if s.label == "Tag").set_value(source)
        next(t for t in app.text_input if t.label == "New name / target tag").set_value(target)
        return next(b for b in app.button if b.label == "Apply").click().run()

    apply("Rename", "city", "news")
    assert not app.exception and any("A tag 'news' already exists" in shown(e.value) for e in app.error)
    apply("Rename", "city", "  ")
    assert any("is not a usable tag" in shown(e.value) for e in app.error)
    apply("Rename", "city", "town")
    assert any("Renamed tag 'city' to 'town'" in shown(s.value) for s in app.success)
    apply("Merge into", "town", "news")
    assert any("Merged tag 'town' into 'news': 1 link(s) moved; 'town' is gone." in shown(s.value) for s in app.success)

    link = app.query_params["link"]
    link_id = int(link if isinstance(link, str) else link[0])
    before = app.selectbox(key=f"version_{link_id}").value
    next(b for b in app.button if b.label == "Re-snapshot now").click().run()
    assert not app.exception
    after = app.selectbox(key=f"version_{link_id}").value
    assert after > before  # the page shows the snapshot just taken, not the one shown before
    # The newest link is /versioned, whose text changes on every fetch: a new version, said so.
    assert any(f"New version 2 (snapshot #{after}) stored" in s.value for s in app.success)
    # Versions are numbered per link (the label used to be the global snapshot id alone).
    assert app.selectbox(key=f"version_{link_id}").options[0].startswith(f"version 2 of 2 · #{after} · ")
    # A failed fetch is listed by its address and its reason, never as "(untitled)".
    snapshot_url(get_engine(), f"{web_server}/doc.pdf", [])
    app = run_page("pages/snapshots.py")
    table = next(d.value for d in app.dataframe if "title" in d.value.columns)
    failed = table[table["url"].str.endswith("/doc.pdf")].iloc[0]
    assert failed["title"] == f"(fetch failed) {web_server}/doc.pdf" and failed["status"].startswith("failed: ")
    assert "(untitled)" not in set(table["title"])


UNESCAPED = __import__("re").compile(r"(?<!\\)!\[|(?<!\\)\]\(|(?<!\\)<(img|b|script)")


def _shown(app: AppTest) -> list[str]:
    elements = [*app.markdown, *app.subheader, *app.caption, *app.error, *app.warning, *app.info, *app.success,
                *app.title, *app.header]
    return [e.value for e in elements]


def test_markdown_and_html_from_pages_never_render_on_any_page(home, web_server):
    """A page titled with Markdown (an image, a link) and HTML: every page that shows the title, its tags or
    names made from it shows the characters, escaped, never live markup."""
    from core.analyses import corpus
    from core.library.snapshots import snapshot_url

    outcome = snapshot_url(get_engine(), f"{web_server}/markdown-title", ["evil-![x](y)"])
    assert outcome.snapshot.title.startswith("![p](")
    corpus.create_job(get_engine(), "![job](http://x/j.png)", [corpus.Input("![origin](o)", "A calm text.")],
                      ["attention"], source="[source](http://x/s)")
    pages = {
        "snapshots": run_page("pages/snapshots.py"),
        "compare": run_page("pages/compare.py", snapshot=str(outcome.snapshot.id), methods="attention"),
        "corpus": run_page("pages/corpus.py"),
        "checks": run_page("pages/checks.py"),
        "home": run_page("app.py"),
        "training data": run_page("pages/training_data.py", snapshot=str(outcome.snapshot.id)),
        "evaluation": run_page("pages/evaluation.py"),
    }
    for name, app in pages.items():
        assert not app.exception, name
        live = [v for v in _shown(app) if UNESCAPED.search(v)]
        assert not live, (name, live)
    assert any("\\!\\[p\\]" in v for v in _shown(pages["snapshots"]))  # the title is shown, escaped


def test_corpus_page_shows_a_stop_at_once(home):
    from core.analyses import corpus
    from core.storage.db import session_scope
    from core.storage.schema import CorpusJob, utcnow

    job_id = corpus.create_job(get_engine(), "long run", [corpus.Input("row", "Fine.")], ["attention"])
    with session_scope(get_engine()) as session:
        row = session.get(CorpusJob, job_id)
        row.status, row.owner, row.heartbeat_at = "running", "elsewhere:1:x", utcnow()
        session.add(row)
    corpus.request_stop(get_engine(), job_id)
    app = run_page("pages/corpus.py", job=str(job_id))
    assert not app.exception
    assert any(i.value.startswith("Stopping:") for i in app.info)
    assert any("(stopping, 0/1)" in option for option in app.selectbox(key="job_pick").options)


def test_the_run_picker_follows_the_address_within_one_session(home):
    """A run started in this session sets `job`: the picker shows it, not the session's earlier choice (journey
    14 grouped the errors of the previous evaluation because of this); a choice in the box becomes the address."""
    from core.analyses import corpus

    first = corpus.create_job(get_engine(), "first", [corpus.Input("row", "Fine.")], ["attention"])
    app = run_page("pages/corpus.py", job=str(first))
    assert app.selectbox(key="job_pick").value == first
    second = corpus.create_job(get_engine(), "second", [corpus.Input("row", "Bad.")], ["attention"])
    app.query_params["job"] = str(second)
    app.run()
    assert not app.exception and app.selectbox(key="job_pick").value == second
    app.selectbox(key="job_pick").set_value(first).run()
    assert app.selectbox(key="job_pick").value == first and app.query_params["job"] == str(first)


def test_compare_shows_attention_whole_and_head_importance(home):
    text = "The staff were lovely but the food was cold and bland."
    app = run_page("pages/compare.py", text=text, methods="attention,occlusion", k="3")
    app.button[0].click().run()
    assert not app.exception
    assert "Attention seen whole" in [s.value for s in app.subheader]
    charts_before = len(app.get("vega_lite_chart"))
    app.toggle(key="attention_whole").set_value(True).run()
    assert not app.exception and len(app.get("vega_lite_chart")) == charts_before  # nothing stored yet
    app.button(key="attention_view_run").click().run()  # one pass, as a task (here: in the page, no workers)
    assert not app.exception
    assert len(app.get("vega_lite_chart")) == charts_before + 2  # the layer x head grid and the head view
    app.number_input(key="attention_head").set_value(1).run()
    app.button(key="attention_heads_run").click().run()  # runs as a task (here: in the page, no workers)
    assert not app.exception
    caption = next(c.value for c in app.caption if "when each head is silenced" in c.value)
    assert "4 model passes" in caption  # the tiny model: 2 layers x 2 heads, the prediction already cached
    assert len(app.get("vega_lite_chart")) == charts_before + 3


def test_whole_document_page_explains_every_window_and_links_paragraphs_to_compare(home, web_server):
    from core.analyses.passages import paragraphs
    from core.library.snapshots import snapshot_url

    snap = snapshot_url(get_engine(), f"{web_server}/long-review").snapshot
    assert snap and not snap.error and len(paragraphs(snap.text)) == 3
    app = run_page("pages/document.py", snapshot=str(snap.id), methods="occlusion,attention")
    assert not app.exception
    assert any("Press the button" in i.value for i in app.info)
    app.button[0].click().run()
    assert not app.exception
    heading = next(s.value for s in app.subheader if s.value.startswith("Explaining"))
    assert "windows" in heading and not heading.endswith(" 1 windows")
    paragraphs = frame_of(app, "disagreement")
    assert sorted(paragraphs["paragraph"]) == [1, 2, 3]
    assert all(link.startswith("/Compare?") and f"snapshot={snap.id}" in link for link in paragraphs["open"])
    assert any("passage=paragraph%3A1-1" in link for link in paragraphs["open"])
    # Reopening the address: every window comes from the store.
    again = run_page("pages/document.py", snapshot=str(snap.id), methods="occlusion,attention")
    assert not again.exception
    assert any(c.value.startswith("0 model passes now") for c in again.caption)
    missing = run_page("pages/document.py", snapshot="999")
    assert any("does not exist" in e.value for e in missing.error)


def test_compare_page_searches_for_flipping_edits_and_keeps_them(home):
    text = "The staff were lovely but the food was cold and bland."
    app = run_page("pages/compare.py", text=text, methods=FAST, k="3")
    app.button[0].click().run()
    assert "What would flip it?" in [s.value for s in app.subheader]
    app.number_input(key="edits_max").set_value(2).run()
    app.slider(key="edits_similarity").set_value(0.5).run()
    app.button(key="edits_run").click().run()
    assert not app.exception
    assert any("counterfactual(s);" in c.value and "model passes" in c.value for c in app.caption)
    summary = " ".join(m.value for m in app.markdown if m.value.startswith("- "))
    assert re.search(r"flips? the prediction", summary)  # the summary now reports the edits too
    # A fresh page with the same settings shows the stored search: no button, no model work.
    import streamlit as st

    st.cache_resource.clear()
    again = run_page("pages/compare.py", text=text, methods=FAST, k="3")
    again.number_input(key="edits_max").set_value(2).run()
    again.slider(key="edits_similarity").set_value(0.5).run()
    assert not again.exception
    assert any("stored result, no model work now" in c.value for c in again.caption)
    assert not [b for b in again.button if b.key == "edits_run"]

    # Notes on one counterfactual and on one method within the comparison, found again under each.
    from core.storage.notes import list_notes

    again.toggle(key="edits_notes").set_value(True).run()
    about = again.selectbox(key="note_about_edits_notes")
    assert about.options[0].startswith("counterfactual 1: →")
    about.set_value(about.options[-1])
    again.text_area(key="note_text_edits_notes").set_value("a plausible flip: the food words carry it")
    next(b for b in again.button if b.label == "Leave the note" and "edits_notes" in b.id).click().run()
    assert not again.exception
    [on_flip] = list_notes(get_engine(), page="compare")
    assert re.fullmatch(rf"counterfactual:\d+:{len(about.options)}", on_flip.ref) and on_flip.author == "local"
    method = again.selectbox(key="note_about_compare_notes")
    assert method.options == ["the whole comparison", *(f"the method {m}" for m in FAST.split(","))]
    method.set_value("the method saliency")
    again.text_area(key="note_text_compare_notes").set_value("saliency is noise here")
    again.radio(key="note_verdict_compare_notes").set_value("needs_review")
    next(b for b in again.button if b.label == "Leave the note" and "compare_notes" in b.id).click().run()
    assert not again.exception
    on_method = list_notes(get_engine(), page="compare")[0]
    assert re.fullmatch(r"method:\d+:saliency", on_method.ref) and on_method.verdict == "needs_review"
    assert any(e.label.startswith("Notes on this comparison (1)") for e in again.expander)


def test_corpus_page_shows_attacks_agreement_and_fragility(home, tiny_model):
    from core.analyses import corpus
    from core.analyses.corpus.inputs import Input
    from core.engine.runner import ModelRunner

    texts = ["Lovely staff and a quiet room.", "Cold food, rude waiter.", "The view was fine."]
    job_id = corpus.create_job(get_engine(), "edits", [Input(f"row {i}", t, "") for i, t in enumerate(texts)],
                               ["occlusion", "saliency"], k=2, edits={"max_edits": 1, "similarity": 0.3})
    corpus.run_job(get_engine(), ModelRunner(tiny_model), job_id)
    app = run_page("pages/corpus.py", job=str(job_id))
    assert not app.exception
    assert "Edits that flip the prediction" in [s.value for s in app.subheader]
    attack = frame_of(app, "success_rate")
    assert list(attack["label"])[-1] == "all" and list(attack["inputs"])[-1] == 3
    assert any("words changed: at most 1 " in c.value for c in app.caption)
    app.checkbox(key="corpus_edits").check().run()
    assert not app.exception and app.number_input(key="corpus_edit_max").value == 3


def test_evaluation_page_runs_an_evaluation_and_filters_errors_by_cell(home, tmp_path):

    from core.analyses import corpus

    app = run_page("pages/evaluation.py")
    assert not app.exception and any("No evaluations yet" in i.value for i in app.info)
    app.radio(key="evaluation_source").set_value("Upload CSV or JSONL").run()
    assert not app.exception
    app.radio(key="evaluation_source").set_value("The default model's held-out split").run()
    app.number_input(key="evaluation_limit").set_value(12).run()
    assert any(c.value.startswith("12 labelled texts") for c in app.caption)
    next(b for b in app.button if b.label == "Start evaluation").click().run()
    assert not app.exception
    job = next(j for j in corpus.list_jobs(get_engine()) if not j.methods)
    wait_until(lambda: corpus.get_job(get_engine(), job.id).status == "done", what="the evaluation")
    app = run_page("pages/evaluation.py", job=str(job.id))
    assert not app.exception
    assert [m.label for m in app.metric] == ["Texts", "Accuracy", "Macro-F1", "Expected calibration error"]
    from core.analyses.evaluation import evaluation

    result = evaluation(get_engine(), job.id, ["negative", "neutral", "positive"])
    assert app.metric[0].value == "12"
    errors = frame_of(app, "confidence")
    assert len(errors) == len(result.errors)
    assert result.errors  # the untrained tiny model gets some of 12 tweets wrong
    cell = f"{result.errors[0].gold} -> {result.errors[0].predicted}"
    app.selectbox(key="evaluation_cell").set_value(cell).run()
    assert len(frame_of(app, "confidence")) == len(result.errors_in(*cell.split(" -> ")))
    next(b for b in app.button if b.label == "Group the errors").click().run()
    assert not app.exception
    assert any(c.value.startswith(f"{len(result.errors)} errors") and "groups" in c.value for c in app.caption)
    assert not any(b.label == "Group the errors" for b in run_page("pages/evaluation.py", job=str(job.id)).button)
    app.text_input(key="evaluation_slice").set_value("the").run()
    assert not app.exception and any("count" in d.value.columns for d in app.dataframe)
    app.checkbox(key="evaluation_slice_regex").check().run()
    app.text_input(key="evaluation_slice").set_value("(").run()
    assert any("not a valid regular expression" in e.value for e in app.error)


def test_training_data_page_finds_stored_examples_and_offers_attach(home, monkeypatch, trained_tiny_model_dir):
    text = "the crew was great and the flight on time"
    app = run_page("pages/training_data.py", text=text)
    assert not app.exception  # the untrained tiny model has no training rows: say so, offer to attach
    assert any("rashomon data attach" in w.value for w in app.warning)
    assert any(e.label == "Attach a training set to this model" for e in app.expander)

    monkeypatch.setenv("RASHOMON_MODEL", str(trained_tiny_model_dir))
    app = run_page("pages/training_data.py", text=text, k="3", methods="nearest,tracin")
    assert not app.exception
    next(b for b in app.button if b.label == "Find the training examples").click().run()
    assert not app.exception
    markdown = " ".join(m.value for m in app.markdown)
    assert "**Nearest training examples**" in markdown and "**TracIn**" in markdown
    assert "Labels of the 10 nearest training examples" in markdown
    assert app.query_params["methods"] == "nearest,tracin" and app.query_params["k"] == "3"
    # Reopening the address shows the stored result at once: no button to press.
    again = run_page("pages/training_data.py", text=text, k="3", methods="nearest,tracin")
    assert not again.exception and not any(b.label == "Find the training examples" for b in again.button)
    assert "**TracIn**" in " ".join(m.value for m in again.markdown)
    next(b for b in again.button if b.label.startswith("Run the datamodeling check")).click().run()
    assert not again.exception
    assert any("Linear datamodeling score" in c.value and "this input" in c.value for c in again.caption)
    # A note on one training example: its model and id.
    from core.storage.notes import list_notes

    again.toggle(key="data_notes").set_value(True).run()
    example = again.selectbox(key="note_about_data_notes")
    example.set_value(example.options[1])
    again.text_area(key="note_text_data_notes").set_value("this row looks mislabelled")
    again.radio(key="note_verdict_data_notes").set_value("label_wrong")
    next(b for b in again.button if b.label == "Leave the note").click().run()
    assert not again.exception
    [note] = list_notes(get_engine(), verdict="label_wrong")
    assert note.ref == f"training_example:tiny-bert-trained-seed0:{example.options[1].split(' · ')[0]}"  # its name
    assert any(t.label == "Notes on these training examples (1)" for t in again.toggle)
    bad = run_page("pages/training_data.py", text=text, k="500", methods="tracin,knn")
    assert not bad.exception
    warnings = " ".join(w.value for w in bad.warning)
    assert "'k' must be between 1 and 50" in warnings and "'methods' names unknown values (knn)" in warnings


def test_model_vs_model_page_compares_and_reopens_stored(home, trained_tiny_model_dir, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("RASHOMON_MODELS", f"tiny={tiny_model_dir},trained={trained_tiny_model_dir}")
    query = {"a": "tiny", "b": "trained", "limit": "15", "text": "the crew was great"}
    app = run_page("pages/models.py", **query)
    assert not app.exception
    next(b for b in app.button if b.label == "Compare on the held-out rows").click().run()
    assert not app.exception
    next(b for b in app.button if b.label == "Explain this input with both models").click().run()
    assert not app.exception
    table = next(d.value for d in app.dataframe if "measure" in d.value.columns)
    assert list(table["measure"])[:2] == ["accuracy", "macro-F1"]
    markdown = " ".join(m.value for m in app.markdown)
    assert "fixed** (A wrong, B right)" in markdown and "15 inputs" in markdown
    assert "Spearman between the models" in markdown
    again = run_page("pages/models.py", **query)  # stored: no button, same table
    assert not again.exception and not any(b.label in ("Compare on the held-out rows", "Explain this input with both models")
                                           for b in again.button)
    bad = run_page("pages/models.py", a="tiny", b=str(trained_tiny_model_dir))  # a path in a link opens nothing
    assert not bad.exception
    assert any("'b' must be one of default, tiny, trained" in w.value for w in bad.warning)


def test_model_vs_model_never_opens_on_one_model_against_itself_without_a_word(home, trained_tiny_model_dir,
                                                                            tiny_model_dir, monkeypatch):
    """Before, the page opened with the configured model on both sides and a note at the bottom. Now B defaults to
    another of the server's models; the same model twice, or a server with one model, is said under the pickers."""
    app = run_page("pages/models.py")  # one model: nothing to compare it with, and where to get a second
    assert not app.exception and any("This server has one model" in i.value for i in app.info)
    monkeypatch.setenv("RASHOMON_MODELS", f"trained={trained_tiny_model_dir}")
    app = run_page("pages/models.py")
    assert not app.exception and app.selectbox(key="models_b").value == "trained"  # not the default again
    assert any(b.label == "Compare on the held-out rows" for b in app.button)
    same = run_page("pages/models.py", a="trained", b="trained")
    assert not same.exception
    assert any("Model A and model B are the same model (trained)" in w.value for w in same.warning)
    assert not any(b.label == "Compare on the held-out rows" for b in same.button)
