"""The main journeys, in a real browser against a real `streamlit run` (see conftest.py).

Every wait is on a visible element or text, never a fixed sleep.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_tab, screenshot

pytestmark = pytest.mark.browser
LONG = 240_000  # ms: all eight methods on a cold server (shap compiles on first use)


def choose(page, label: str, option: str) -> None:
    """Pick `option` in the Streamlit selectbox or multiselect labelled `label`."""
    box = page.get_by_role("combobox", name=label)
    box.click()
    box.fill(option)  # typing filters the list, as a person would
    page.get_by_role("option", name=option).first.click()
    page.keyboard.press("Escape")


def open_section(page, address: str, title: str) -> None:
    """Open `address` with its section `title` expanded: "New corpus run" and "New evaluation" start
    collapsed once a run or an evaluation exists, which depends on what other journeys did first."""
    page.goto(address)
    section = page.locator("details").filter(has_text=title).first
    expect(section).to_be_attached()
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")  # the page's run has ended
    if section.get_attribute("open") is None:
        section.locator("summary").click()
    expect(section).to_have_attribute("open", "")


def open_new_corpus_run(page, base: str) -> None:
    open_section(page, f"{base}/Corpus", "New corpus run")
    expect(page.get_by_role("combobox", name="Tags")).to_be_visible()


def evaluate_and_group(page, base: str, model: str, rows: int) -> None:
    """On the Evaluation page: evaluate the server's model named `model` on the first `rows` held-out rows,
    then group the errors (smallest group 3: the tiny model's errors are few and loosely packed); waits for
    group 1."""
    open_section(page, f"{base}/Evaluation", "New evaluation")
    choose(page, "Model", model)
    count = page.get_by_label("Rows (of 2,000)")
    count.fill(str(rows))
    count.press("Enter")
    expect(page.get_by_text(f"{rows} labelled texts; one model pass each.")).to_be_visible()
    page.get_by_role("button", name="Start evaluation").click()
    # This evaluation's own progress line: until the page has run again it may still show an earlier
    # evaluation, whose groups for the same smallest size can be stored already (the button then goes).
    expect(page.get_by_text(f"{rows} of {rows} texts · status: done")).to_be_visible(timeout=LONG)
    groups_tab = page.get_by_role("tab", name="Error groups", exact=True)
    expect(groups_tab).to_be_visible(timeout=LONG)  # the scores are shown: the evaluation has finished
    groups_tab.click()
    expect(page.get_by_role("button", name="Group the errors")).to_be_enabled(timeout=LONG)
    smallest = page.get_by_label("Smallest group (0: automatic, 5 or one in 40 errors)")
    smallest.fill("3")
    smallest.press("Enter")
    page.get_by_role("button", name="Group the errors").click()
    expect(page.get_by_text(re.compile(r"^Group 1: \d+ errors, mostly"))).to_be_visible(timeout=LONG)


def add_links(page, base: str, urls: str, tags: str = "") -> None:
    page.goto(f"{base}/Snapshots")
    expect(page.get_by_role("heading", name="Links (")).to_be_visible()  # the page has rendered
    page.get_by_label("Links, one per line").fill(urls)
    if tags:
        page.get_by_label("Tags for these links (comma-separated)").fill(tags)
    page.get_by_role("button", name="Snapshot", exact=True).click()


def keep_for_readme(path: Path, name: str) -> None:
    """With RASHOMON_README_SCREENSHOTS=1 the README's screenshots are refreshed from this run."""
    if os.environ.get("RASHOMON_README_SCREENSHOTS") == "1":
        target = Path(__file__).resolve().parents[2] / "docs" / "screenshots" / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)


@pytest.fixture(scope="module")
def journey(app_server, _web_server):
    return {"base": app_server["url"], "pages": _web_server, "home": app_server["home"]}  # one server for the whole journey


def test_1_snapshot_tag_filter_and_refresh(page, journey):
    base, pages = journey["base"], journey["pages"]
    add_links(page, base, f"{pages}/versioned\n{pages}/doc.pdf")
    expect(page.get_by_text("1 link(s) snapshotted.")).to_be_visible()
    expect(page.get_by_text(f"{pages}/doc.pdf: The link points to a PDF document")).to_be_visible()

    choose(page, "Open link", "City council approves new riverside park")
    expect(page.get_by_role("heading", name="City council approves new riverside park")).to_be_visible()
    expect(page).to_have_url(re.compile(r"link=\d+"))
    link_id = re.search(r"link=(\d+)", page.url).group(1)
    # This link's own editor, by its widget key: while a rerun is under way the previous link's
    # editor (same label) can still be on the page.
    tags = page.locator(f".st-key-tags_{link_id} input")
    expect(tags).to_have_count(1)
    tags.fill("city")
    tags.press("Enter")
    page.locator(f".st-key-save_tags_{link_id} button").click()
    expect(page.get_by_text("Tags: city")).to_be_visible()

    choose(page, "With all of these tags", "city")
    expect(page.get_by_role("heading", name="Links (1)")).to_be_visible()

    page.get_by_role("button", name="Re-snapshot now").click()
    expect(page.get_by_text("2 snapshot(s)")).to_be_visible()
    # Said next to the button, with this link's version number (not only the global snapshot id).
    expect(page.get_by_text(re.compile(r"^New version 2 \(snapshot #\d+\) stored"))).to_be_visible()
    # The two versions' diff wraps its long lines (one paragraph per line) instead of scrolling sideways.
    versions = page.locator("details").filter(has_text="Compare two versions")
    versions.locator("summary").click()
    diff = versions.locator("pre").first
    expect(diff).to_be_visible()
    assert diff.evaluate("e => e.scrollWidth <= e.clientWidth + 1"), "the diff scrolls sideways"
    # A tag merge says what it did, beside the form (before: at the top of the page, "0 link(s) moved" when the
    # links already had the target).
    form = page.locator('[data-testid="stForm"]').filter(has_text="New name / target tag")
    form.get_by_text("Merge into", exact=True).click()
    expect(form.get_by_role("combobox", name="Tag", exact=True)).to_have_value("city")  # the only tag: chosen
    page.get_by_label("New name / target tag").fill("town")
    form.get_by_role("button", name="Apply").click()
    expect(page.get_by_text(re.compile(r"Merged tag .city. into .town.\W{0,3} ?1 link\(s\) moved"))).to_be_visible()
    link = page.get_by_role("link", name="Explain this snapshot on Compare")
    expect(link).to_be_visible()
    assert "snapshot=" in link.get_attribute("href")
    keep_for_readme(screenshot(page, "1-snapshots", height=1700), "snapshots")


@pytest.fixture(scope="module")
def compared(browser, journey, app_server):
    """A snapshot compared with every method in the browser, made once for the module by whichever
    journey asks first (2 or 3): no journey relies on another having run."""
    from core.library.fetch import AddressPolicy, fetch
    from core.library.snapshots import snapshot_url
    from core.storage.db import make_engine

    engine = make_engine(f"sqlite:///{app_server['home'] / 'rashomon.db'}")
    outcome = snapshot_url(engine, f"{journey['pages']}/compared-review",
                           fetcher=lambda url: fetch(url, policy=AddressPolicy(("127.0.0.1",))))
    assert outcome.snapshot is not None and not outcome.error, outcome.error
    context = browser.new_context(viewport={"width": 1500, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(f"{journey['base']}/Compare?snapshot={outcome.snapshot.id}")
    expect(page.get_by_text("Press Run to explain this input")).to_be_visible()  # the first run has finished
    page.locator('[data-testid="stRadio"]').filter(has_text="Passage").get_by_text("all", exact=True).click()
    # The page writes the address after every sidebar widget has rendered, so this waits for the rerun
    # the click started; pressing Run earlier would interrupt it (the old "Press Run" text is still shown).
    expect(page).to_have_url(re.compile(r"passage=all.*"))
    expect(page.get_by_text("Press Run to explain this input")).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("heading", name="Prediction:")).to_be_visible(timeout=LONG)
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    open_tab(page, "Summary and export")
    summary = page.locator("li").filter(has_text="Removing its top words")
    expect(summary).to_be_visible(timeout=LONG)
    yield {"page": page, "share_url": page.url,
           "prediction": page.get_by_role("heading", name="Prediction:").inner_text(),
           "summary": summary.inner_text()}
    context.close()


def test_2_compare_a_snapshot_with_every_method(compared):
    page = compared["page"]
    expect(page.get_by_text("The model predicts")).to_be_visible()
    for tab, heading in (("Words", "Side by side"), ("Agreement", "Agreement"),
                         ("Faithfulness", "Faithfulness: which account does the model support?"),
                         ("Attention", "Is attention explanation, here?"), ("Summary and export", "Summary")):
        open_tab(page, tab)
        expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=LONG)
        if tab in ("Words", "Agreement", "Faithfulness"):  # the cost chart, the matrix, the curves
            expect(page.locator('[role="tabpanel"]:visible .vega-embed').first).to_be_visible()
    open_tab(page, "Words")
    screenshot(page, "2-compare", height=2400)


def test_3_share_link_reopens_without_recomputing(browser, compared):
    url = compared["share_url"]
    assert "snapshot=" in url and "methods=" in url
    teammate = browser.new_context(viewport={"width": 1500, "height": 1000})
    teammate.set_default_timeout(60_000)
    page = teammate.new_page()
    page.goto(url)
    expect(page.get_by_role("heading", name="Prediction:")).to_be_visible()
    # Nothing was pressed: every method comes from the store.
    from core.methods import METHODS

    expect(page.get_by_text(f"Computed by this view's last run: all {len(METHODS)} methods.")).to_be_visible()
    assert page.get_by_role("heading", name="Prediction:").inner_text() == compared["prediction"]
    # Faithfulness and the attention checks come from the stored report too: the model never ran.
    expect(page.get_by_text("Model passes to show this view now: 0 (everything came from the store).")).to_be_visible()
    open_tab(page, "Summary and export")
    expect(page.locator("li").filter(has_text="Removing its top words")).to_have_text(compared["summary"])
    screenshot(page, "3-shared-link")
    teammate.close()


BOOKMARKS = """<!DOCTYPE NETSCAPE-Bookmark-file-1>
<META HTTP-EQUIV="Content-Type" CONTENT="text/html; charset=UTF-8">
<TITLE>Bookmarks</TITLE>
<DL><p>
<DT><A HREF="https://example.com/reviews/one" ADD_DATE="1700000000" TAGS="imported,reviews">Review one</A>
<DT><A HREF="https://example.org/two" ADD_DATE="1700000100" TAGS="imported">Review two</A>
</DL><p>
"""


def test_4_import_bookmarks_and_export(page, journey, tmp_path):
    file = tmp_path / "bookmarks.html"
    file.write_text(BOOKMARKS)
    page.goto(f"{journey['base']}/Snapshots")
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(str(file))
    page.get_by_role("button", name="Import bookmarks").click()
    expect(page.get_by_text("2 links added, 0 already present.")).to_be_visible()
    choose(page, "With any of these tags", "imported")
    expect(page.get_by_role("heading", name="Links (2)")).to_be_visible()
    page.wait_for_selector('[data-testid="stStatusWidget"]', state="detached")  # no rerun under way
    export = page.get_by_role("button", name="Export JSON")
    expect(export).to_have_count(1)  # the rerun after filtering has finished
    with page.expect_download() as download:
        export.click()
    exported = json.loads(Path(download.value.path()).read_text())
    assert {"https://example.com/reviews/one", "https://example.org/two"} <= {row["url"] for row in exported}
    assert next(r for r in exported if r["url"].endswith("/one"))["tags"] == ["imported", "reviews"]
    screenshot(page, "4-bookmarks")


def test_5_corpus_run_survives_a_reload(page, journey):
    pages = journey["pages"]
    add_links(page, journey["base"], f"{pages}/article\n{pages}/legacy\n{pages}/plain", tags="corpus")
    expect(page.get_by_text("3 link(s) snapshotted.")).to_be_visible()
    open_new_corpus_run(page, journey["base"])
    choose(page, "Tags", "corpus")
    expect(page.get_by_text("Estimated time on this machine")).to_be_visible()  # shown once inputs are chosen
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_text("status:")).to_be_visible()
    page.reload()  # the run lives on the server, not in this browser tab
    expect(page.get_by_text("status: done")).to_be_visible(timeout=LONG)
    expect(page.get_by_role("heading", name="Faithfulness leaderboard")).to_be_visible(timeout=LONG)
    expect(page.get_by_text(re.compile(r"^The last run took \d"))).to_be_visible()  # the actual time, shown after
    screenshot(page, "5-corpus")
    open_tab(page, "Most disputed inputs")
    expect(page.get_by_role("heading", name="Inputs where the methods disagree most")).to_be_visible()


THIRTY_WORDS = ("The hotel staff were friendly and the room was spotless, but breakfast was cold, the wifi kept "
                "dropping, and nobody answered the phone at night; I would not stay again.")


def test_6_a_stored_comparison_is_readable_without_hovering(browser, journey, app_server):
    """Every word and every method name of a stored 30-word comparison is on screen, unclipped, and the
    prediction names every label with its probability."""
    from urllib.parse import urlencode

    from core.analyses.compare import ViewState
    from core.analyses.reports import run_report
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.methods import METHODS
    from core.storage.db import make_engine

    engine = make_engine(f"sqlite:///{app_server['home'] / 'rashomon.db'}")
    runner = ModelRunner(load_model(app_server["env"]["RASHOMON_MODEL"]))
    report = run_report(engine, runner, THIRTY_WORDS, list(METHODS))
    words = report.comparison.words
    assert 30 <= len([w for w in words if w.isalnum()]) <= 32
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.goto(f"{journey['base']}/Compare?" + urlencode(ViewState(text=THIRTY_WORDS).to_query()))
    expect(page.get_by_role("heading", name="Side by side")).to_be_visible()
    width = page.viewport_size["width"]
    grid = page.get_by_test_id("rashomon-grid")
    for spec in METHODS.values():
        title = grid.locator("th").filter(has_text=spec.title).first
        expect(title).to_be_visible()
        box = title.bounding_box()
        assert box["x"] >= 0 and box["x"] + box["width"] <= width, spec.title
    grid_rows = grid.locator("tr")
    expect(grid_rows).to_have_count(len(METHODS))
    for index, word in enumerate(words):
        for row in range(len(METHODS)):
            span = grid_rows.nth(row).locator("span[title]").nth(index)
            expect(span).to_have_text(word)
            if row == 0:
                expect(span).to_be_visible()
                box = span.bounding_box()
                assert box["width"] > 0 and box["x"] + box["width"] <= width, word
    prediction = page.get_by_test_id("rashomon-prediction")
    for label, probability in report.comparison.probabilities.items():
        expect(prediction).to_contain_text(label)
        expect(prediction).to_contain_text(f"{probability:.3f}")
    keep_for_readme(screenshot(page, "6-readable-compare", height=3000), "compare")
    context.close()


def test_7_a_title_written_in_markdown_loads_nothing(page, journey, app_server):
    """A page titled `![p](http://host/t.png) [click](...)`: viewers' browsers must not request the image."""
    from core.library.snapshots import list_links
    from core.storage.db import make_engine

    requested = []
    page.on("request", lambda request: requested.append(request.url))
    add_links(page, journey["base"], f"{journey['pages']}/markdown-title")
    expect(page.get_by_text("1 link(s) snapshotted.")).to_be_visible()
    engine = make_engine(f"sqlite:///{app_server['home'] / 'rashomon.db'}")
    link = next(v for v in list_links(engine) if v.url.endswith("/markdown-title"))
    page.goto(f"{journey['base']}/Snapshots?link={link.id}")
    expect(page.get_by_role("heading", name="![p](")).to_be_visible()
    page.wait_for_load_state("networkidle")  # whatever the rendered title would have loaded has been asked for
    assert not [url for url in requested if url.endswith("/t.png") or url.endswith("/clicked")], requested
    live = page.locator("a[href$='/clicked']")
    assert live.count() == 0, live.first.evaluate("a => a.closest('[data-testid]').outerHTML.slice(0, 600)")
    assert page.locator("img[src$='/t.png']").count() == 0


def test_8_every_page_is_reachable_from_the_sidebar(page, journey):
    page.goto(f"{journey['base']}/")
    nav = page.get_by_test_id("stSidebarNav")
    for title in ("Home", "Snapshots", "Compare", "Whole document", "Corpus", "Evaluation", "Training data",
                  "Model vs model", "Checks"):
        expect(nav.get_by_role("link", name=title)).to_be_visible()
    nav.get_by_role("link", name="Checks").click()
    expect(page.get_by_role("heading", name="Checks", exact=True)).to_be_visible()
    expect(page).to_have_url(re.compile(r"/Checks"))


def test_9_attention_seen_whole_and_a_whole_document(page, journey, app_server):
    from urllib.parse import urlencode

    from core.analyses.compare import ViewState

    base = journey["base"]
    text = "The rooms were quiet, the breakfast generous, and the staff remembered our names every day."  # not stored yet
    page.goto(f"{base}/Compare?" + urlencode(ViewState(text=text, methods=["attention", "occlusion"]).to_query()))
    expect(page.get_by_text("Press Run to explain this input")).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    expect(page.get_by_text(re.compile(r"The last run took \d"))).to_be_visible()  # beside its cost, after the run
    open_tab(page, "Attention")
    expect(page.get_by_role("heading", name="Attention seen whole")).to_be_visible(timeout=LONG)
    charts = page.locator('[role="tabpanel"]:visible .vega-embed')  # the Attention tab's own charts
    expect(charts).to_have_count(0)
    page.get_by_text("Show every layer and head").click()
    page.get_by_role("button", name="Compute every layer and head (one model pass)").click()  # on a worker
    expect(page.get_by_text("Each panel is a layer, each strip a head")).to_be_visible(timeout=LONG)
    expect(charts).to_have_count(2)  # the grid and the head view
    page.get_by_role("button", name="Head importance (4 model passes)").click()
    expect(page.get_by_text("when each head is silenced")).to_be_visible()
    expect(charts).to_have_count(3)
    page.get_by_role("heading", name="Attention seen whole").scroll_into_view_if_needed()
    keep_for_readme(screenshot(page, "9-attention", height=3200), "attention")

    add_links(page, base, f"{journey['pages']}/long-review")
    expect(page.get_by_text("1 link(s) snapshotted.")).to_be_visible()
    from core.library.snapshots import list_links
    from core.storage.db import make_engine

    engine = make_engine(f"sqlite:///{app_server['home'] / 'rashomon.db'}")
    view = next(v for v in list_links(engine) if v.url.endswith("/long-review"))
    snapshot = view.latest_good_snapshot_id
    # Open it by its address: a selectbox choice made while the page is still rerunning after the snapshot
    # can be overwritten by that rerun's `link` query parameter (seen once in CI).
    page.goto(f"{base}/Snapshots?link={view.id}")
    expect(page.get_by_role("heading", name="A long stay by the harbour")).to_be_visible()
    # The rerun replaces the previous link's view: wait for this snapshot's link before following it.
    link = page.get_by_role("link", name="Explain the whole document, window by window")
    expect(link).to_have_attribute("href", re.compile(rf"snapshot={snapshot}$"))
    link.click()
    expect(page.get_by_role("heading", name="Whole document")).to_be_visible()
    expect(page.locator("strong").filter(has_text="A long stay by the harbour")).to_be_visible()
    page.get_by_role("button", name="Explain the whole document").click()
    expect(page.get_by_role("heading", name="Explaining")).to_be_visible(timeout=LONG)
    expect(page.get_by_text("Paragraphs, most disputed first")).to_be_visible()
    page.get_by_role("tab", name="The document, coloured").click()
    expect(page.get_by_text("¶ 3")).to_be_visible()
    keep_for_readme(screenshot(page, "9-document", height=2000), "document")


def test_10_edits_that_flip_the_prediction(page, journey):
    """Search for counterfactuals on Compare: diffs drawn with the input's markup as text, the cost, the
    methods' counterfactual agreement chart, and the stored search reopened from the address."""
    from urllib.parse import urlencode

    from core.analyses.compare import ViewState

    text = "The rooms were <b>quiet</b> & the staff friendly, but the breakfast was cold."
    address = f"{journey['base']}/Compare?" + urlencode(ViewState(text=text, methods=["occlusion", "saliency"]).to_query())
    page.goto(address)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    open_tab(page, "What would flip it?")
    expect(page.get_by_role("heading", name="What would flip it?")).to_be_visible(timeout=LONG)
    page.get_by_role("button", name="Search for edits").click()
    diffs = page.get_by_test_id("rashomon-diff")
    expect(diffs.first).to_be_visible(timeout=LONG)
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=LONG)  # the page's rerun has finished
    assert diffs.count() >= 1
    expect(diffs.first.locator("[data-edit]").first).to_be_visible()
    expect(diffs.first).to_contain_text("<b>quiet</b>")  # the input's markup is shown as text
    assert diffs.first.locator("b").count() == 0
    expect(page.get_by_text("Counterfactual agreement", exact=False).first).to_be_visible()
    expect(page.get_by_text(re.compile(r"\d+ counterfactual\(s\); \d+ model passes"))).to_be_visible()
    open_tab(page, "Summary and export")
    expect(page.get_by_text(re.compile(r"minimal edits that flip the prediction|touch no method"))).to_be_visible()
    open_tab(page, "What would flip it?")
    keep_for_readme(screenshot(page, "10-edits", height=2600), "edits")

    page.goto(address)  # a fresh session: the stored comparison and the stored search, no button to press
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    open_tab(page, "What would flip it?")
    expect(page.get_by_text(re.compile(r"stored result, no model work now"))).to_be_visible(timeout=LONG)
    expect(page.get_by_role("button", name="Search for edits")).to_have_count(0)


def test_11_training_examples_behind_a_prediction(page, journey, trained_tiny_model_dir):
    """The Training data page on a model trained with recorded rows: every method's proponents and opponents
    written out with the gold label and a Compare link, the agreement matrices, and the stored result
    reopened from the address with no button to press."""
    from core.analyses.training_data.view import DataView

    view = DataView(text="the crew was great and the flight left on time", model="trained", k=3)
    address = f"{journey['base']}{view.link()}"
    page.goto(address)
    page.get_by_role("button", name="Find the training examples").click()
    expect(page.get_by_text("Proponents (pushed towards", exact=False).first).to_be_visible(timeout=LONG)
    expect(page.get_by_test_id("stStatusWidget")).to_be_hidden(timeout=LONG)
    for title in ("Nearest training examples", "TracIn", "Representer points", "Influence functions"):
        expect(page.get_by_text(title, exact=True).first).to_be_visible()
    compare_links = page.get_by_role("link", name="Open in Compare", exact=True)  # the cards, not the page link
    expect(compare_links.first).to_be_visible(timeout=LONG)  # the page reruns once after computing
    assert compare_links.count() >= 4
    expect(page.get_by_text("gold ", exact=False).first).to_be_visible()  # labels written, not only coloured
    expect(page.get_by_role("heading", name="Do the methods agree?")).to_be_visible()
    keep_for_readme(screenshot(page, "11-training-data", height=2200), "training-data")
    href = compare_links.first.get_attribute("href")
    assert href.startswith("/Compare?") and "text=" in href

    page.goto(address)  # a fresh session: the stored result, no button to press
    expect(page.get_by_text("Proponents (pushed towards", exact=False).first).to_be_visible(timeout=LONG)
    expect(page.get_by_role("button", name="Find the training examples")).to_have_count(0)


def test_12_bad_cases_from_evaluation_to_a_rebuilt_model(page, journey, trained_tiny_model_dir):
    """The README's bad-cases walk-through: evaluate on the held-out split, group the errors, read the largest
    group's words and training neighbours, export it, rebuild with it as extra rows, compare the two models."""
    base = journey["base"]
    evaluate_and_group(page, base, "trained", 200)
    largest = page.get_by_text(re.compile(r"^Group 1: \d+ errors, mostly"))
    expect(largest).to_be_visible(timeout=LONG)
    expect(page.get_by_text("Nearest training examples", exact=False).first).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("button", name="Export this group as CSV").first.click()
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.startswith("text,gold,predicted,confidence,top_words")
    keep_for_readme(screenshot(page, "12-error-groups", height=3000), "error-groups")

    page.get_by_role("button", name=re.compile("Rebuild the default model with this group")).first.click()
    page.get_by_role("link", name="Follow the build on Model vs model").click()
    expect(page.get_by_text(re.compile(r"built .*default-sentiment-v2"))).to_be_visible(timeout=LONG)
    built = str(journey["home"] / "models" / "default-sentiment-v2")
    trained = [line for line in (Path(built) / "training.jsonl").read_text(encoding="utf-8").split("\n") if line]
    exported_rows = len(list(csv.DictReader(io.StringIO(exported))))
    assert sum('"id": "extra-' in line for line in trained) == exported_rows  # the group's rows, recorded
    page.goto(f"{base}/Models?a=trained&b=default-sentiment-v2&limit=200")
    page.get_by_role("button", name="Compare on the held-out rows").click()
    expect(page.get_by_text(re.compile(r"fixed\s+\(A wrong, B right\)"))).to_be_visible(timeout=LONG)
    expect(page.get_by_text(re.compile(r"left out: a model trained on them"))).to_be_visible()
    keep_for_readme(screenshot(page, "12-model-vs-model", height=1800), "model-vs-model")


def test_13_two_comparisons_at_once_and_a_third_page_meanwhile(browser, journey):
    """Two people press Run at the same time: both comparisons run on the server's worker processes (one each)
    and finish, while a third person opens a page. Its load time is printed here, not asserted; the figures
    in BENCHMARKS.md come from scripts/bench_concurrent_pages.py."""
    import time
    from urllib.parse import urlencode

    from core.analyses.compare import ViewState
    from core.storage.db import get_engine
    from core.work import tasks

    base = journey["base"]
    slow = {"lime": {"num_samples": 20000, "adaptive": False}, "shap": {"max_evals": 8000, "adaptive": False}}
    people = []
    for visit in range(2):
        context = browser.new_context(viewport={"width": 1500, "height": 1000})
        context.set_default_timeout(60_000)
        page = context.new_page()
        view = ViewState(text=f"{THIRTY_WORDS} Visit {visit}.", methods=["occlusion", "lime", "shap"], options=slow)
        page.goto(f"{base}/Compare?" + urlencode(view.to_query()))
        expect(page.get_by_text("Press Run to explain this input")).to_be_visible()
        people.append((context, page))
    for _, page in people:
        page.get_by_role("button", name="Run", exact=True).click()
    for _, page in people:
        # The page follows its task (its Stop button), or it has already finished: no guess about how long
        # LIME takes; that the two ran side by side is checked below from the tasks' own times.
        expect(page.get_by_role("button", name="Stop").or_(page.get_by_role("heading", name="Prediction:"))).to_be_visible()
    third = browser.new_context(viewport={"width": 1500, "height": 1000})
    reader = third.new_page()
    started = time.monotonic()
    reader.goto(f"{base}/Snapshots")
    expect(reader.get_by_role("heading", name="Links (")).to_be_visible()
    seconds = time.monotonic() - started
    db = get_engine(f"sqlite:///{journey['home'] / 'rashomon.db'}")
    running = [t for t in tasks.list_tasks(db) if t.kind == "comparison" and t.status == "running"]
    print(f"\nthird page loaded in {seconds:.2f} s with {len(running)} comparison(s) running")
    third.close()
    for context, page in people:
        expect(page.get_by_role("heading", name="Prediction:")).to_be_visible(timeout=LONG)
        expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
        context.close()
    ran = [t for t in tasks.list_tasks(db) if t.kind == "comparison" and "Visit" in t.params["text"]]
    assert [t.status for t in ran] == ["done", "done"]
    assert len({t.owner.split(":")[1] for t in ran}) == 2  # one worker process each
    first, second = sorted(ran, key=lambda t: t.started_at)
    assert second.started_at < first.finished_at  # side by side: the second started before the first ended


def test_14_every_page_is_used_and_the_server_makes_no_model_pass(page, journey, app_server, trained_tiny_model_dir):
    """Heavy work runs on the workers: a tour that uses every page (a comparison, a whole document, a corpus
    run, an evaluation with its error groups, training examples, model vs model, a check) leaves the server
    process's own pass and load counts at 0 (it only describes models), while the workers' counts grow."""
    import json
    from urllib.parse import urlencode

    from core.analyses.compare import ViewState
    from core.engine import counters

    def server_counts() -> dict:
        path = Path(app_server["home"]) / "counters" / f"{app_server['pid']}.json"
        return json.loads(path.read_text()) if path.is_file() else {"loads": 0, "passes": 0}

    def worker_passes() -> int:
        return sum(json.loads(p.read_text())["passes"] for p in (Path(app_server["home"]) / "counters").glob("*.json")
                   if p.stem != str(app_server["pid"]))

    assert app_server["env"][counters.ENV] == "1"
    base, before, workers_before = journey["base"], server_counts(), worker_passes()
    seen = []  # the server's passes after each page: the print names the page that ran the model

    def after_page(name: str) -> None:
        seen.append(f"{name} {server_counts()['passes'] - before['passes']}")

    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Rashomon")).to_be_visible()

    add_links(page, base, f"{journey['pages']}/tour-review", tags="tour")
    expect(page.get_by_text("1 link(s) snapshotted.")).to_be_visible()
    from core.library.snapshots import list_links
    from core.storage.db import make_engine

    engine = make_engine(f"sqlite:///{app_server['home'] / 'rashomon.db'}")
    snapshot = next(v for v in list_links(engine) if v.url.endswith("/tour-review")).latest_good_snapshot_id
    page.goto(f"{base}/Document?snapshot={snapshot}")
    expect(page.locator("strong").filter(has_text="A tour of every page")).to_be_visible()
    page.get_by_role("button", name="Explain the whole document").click()
    expect(page.get_by_text("Paragraphs, most disputed first")).to_be_visible(timeout=LONG)
    after_page("snapshots+document")

    text = "The lift was slow and the pool was closed, but the staff upgraded our room without being asked."
    page.goto(f"{base}/Compare?" + urlencode(ViewState(text=text, methods=["attention", "occlusion"]).to_query()))
    expect(page.get_by_text("Press Run to explain this input")).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("heading", name="Prediction:")).to_be_visible(timeout=LONG)
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    open_tab(page, "Attention")
    page.get_by_text("Show every layer and head").click()
    page.get_by_role("button", name="Compute every layer and head (one model pass)").click()
    expect(page.get_by_text("Each panel is a layer, each strip a head")).to_be_visible(timeout=LONG)
    page.get_by_role("button", name=re.compile(r"Head importance \(\d+ model passes\)")).click()
    expect(page.get_by_text("when each head is silenced")).to_be_visible(timeout=LONG)
    after_page("compare")

    open_new_corpus_run(page, base)
    choose(page, "Tags", "tour")
    expect(page.get_by_text("Estimated time on this machine")).to_be_visible()
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_text("status: done")).to_be_visible(timeout=LONG)
    after_page("corpus")

    evaluate_and_group(page, base, "trained", 60)
    after_page("evaluation")

    training = urlencode({"text": "the crew was great and the flight on time", "model": "trained",
                          "methods": "nearest"})
    page.goto(f"{base}/Training_data?{training}")
    page.get_by_role("button", name="Find the training examples").click()
    expect(page.get_by_text("The model's probabilities")).to_be_visible(timeout=LONG)
    after_page("training data")

    page.goto(f"{base}/Models?" + urlencode({"a": "tiny", "b": "trained",
                                             "limit": "30", "text": text}))
    page.get_by_role("button", name="Compare on the held-out rows").click()
    expect(page.get_by_text(re.compile(r"fixed\s+\(A wrong, B right\)"))).to_be_visible(timeout=LONG)
    page.get_by_role("button", name="Explain this input with both models").click()
    expect(page.get_by_text("Spearman between the models").first).to_be_visible(timeout=LONG)
    after_page("models")

    page.goto(f"{base}/Checks")
    expect(page.get_by_role("heading", name="Checks", exact=True)).to_be_visible()
    page.get_by_label("Text", exact=True).fill(text)
    page.get_by_label("Text", exact=True).press("Control+Enter")
    page.get_by_role("button", name="Run randomisation check").click()
    expect(page).to_have_url(re.compile(r"randomisation=\d+"), timeout=LONG)  # the stored check's address
    after_page("checks")

    after = server_counts()
    print(f"\nserver: {after['passes'] - before['passes']} passes, {after['loads'] - before['loads']} model loads "
          f"during the tour; workers: {worker_passes() - workers_before} passes; by page: {', '.join(seen)}")
    assert after["passes"] == before["passes"], "the server process ran the model"
    # Since the server started (every journey before this one included): no weights loaded, no pass made.
    assert after == {"loads": 0, "passes": 0}, "the server process loaded a model"
    assert worker_passes() > workers_before  # the work happened, on the workers


def test_16_a_known_answer_check_on_the_checks_page(page, journey, app_server):
    """Plant a shortcut in the trained tiny model's training rows, retrain on a worker, and read which methods
    find it; reopening the page reads the stored result with no model pass on any process."""
    import json

    def all_passes() -> int:
        return sum(json.loads(p.read_text())["passes"] for p in (Path(app_server["home"]) / "counters").glob("*.json"))

    base = journey["base"]

    def fill_in() -> None:
        page.goto(f"{base}/Checks")
        expect(page.get_by_role("heading", name="Known answer: plant a shortcut, retrain, see which methods find it")
               ).to_be_visible()
        choose(page, "Model", "trained")
        choose(page, "Label it decides", "positive")
        for label, value in (("Share of training texts planted", "0.3"), ("Flipped inputs explained", "4")):
            field = page.get_by_label(label)
            field.fill(value)
            field.press("Enter")

    fill_in()
    page.get_by_role("button", name="Plant, retrain and score").click()
    expect(page.get_by_text("Shortcut rate")).to_be_visible(timeout=LONG)
    expect(page.get_by_text(re.compile(r"The planted model learned the shortcut .* ranks? the token first on \d+% "
                                       r"of 4 inputs \(random:\W{0,3}\d+%\)"))).to_be_visible()  # md(): a zero-width space after a colon
    before = all_passes()
    fill_in()  # a fresh page: the same check is read back from the store
    expect(page.get_by_text("Shortcut rate")).to_be_visible()
    expect(page.get_by_role("button", name="Plant, retrain and score")).to_have_count(0)
    assert all_passes() == before
