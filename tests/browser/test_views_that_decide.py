"""Journey 17, views that decide: at 1280x800, Compare, Whole document and Corpus reach their verdict within two
screens, and the faithfulness curves are drawn with every method's values (read from the Vega view's SVG).

The pages' heights are written to `page-heights.json` in the test's log directory and printed (BENCHMARKS.md
records them); the assertion is on layout only, never on time."""

from __future__ import annotations

import json
import re
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_tab, screenshot

pytestmark = pytest.mark.browser
LONG = 240_000
SCREEN = {"width": 1280, "height": 800}
TEXT = ("The hotel staff were friendly and the room was spotless, but breakfast was cold, the wifi kept dropping, "
        "and nobody answered the phone at night; I would not stay again.")

HEIGHT_OF_PAGE = """() => Math.max(...[document.documentElement, document.querySelector('[data-testid="stMain"]'),
    document.querySelector('[data-testid="stAppViewContainer"]')].filter(Boolean).map(e => e.scrollHeight))"""


def bottom_of(locator) -> float:
    """Where `locator` ends, in page coordinates, measured before any scrolling (the page opens at its top)."""
    box = locator.bounding_box()
    return box["y"] + box["height"]


def point_labels(chart) -> list[str]:
    """The ARIA labels Vega writes on every drawn point of an SVG chart (one per datum: its encoded fields); the
    lines' own labels are left out (a line describes only its first point)."""
    return chart.locator('.mark-symbol [role="graphics-symbol"]').evaluate_all(
        "nodes => nodes.map(n => n.getAttribute('aria-label') || '')")


def test_17_views_reach_their_verdict_within_two_screens(browser, app_server, web_server, tmp_path_factory):
    from core.analyses import corpus
    from core.analyses.compare import ViewState
    from core.analyses.documents import explain_document
    from core.analyses.reports import run_report
    from core.engine.modelling import load_model
    from core.engine.runner import ModelRunner
    from core.library.fetch import AddressPolicy, fetch
    from core.library.snapshots import snapshot_url
    from core.methods import METHODS
    from core.methods.registry import fast_methods
    from core.storage.db import make_engine

    base = app_server["url"]
    engine = make_engine(f"sqlite:///{app_server['home'] / 'rashomon.db'}")
    runner = ModelRunner(load_model(app_server["env"]["RASHOMON_MODEL"]))
    report = run_report(engine, runner, TEXT, list(METHODS))  # stored: the pages read it, no model pass
    snapshot = snapshot_url(engine, f"{web_server}/long-review",
                            fetcher=lambda url: fetch(url, policy=AddressPolicy(("127.0.0.1",)))).snapshot
    explain_document(engine, runner, snapshot.text, fast_methods())
    job = corpus.create_job(engine, "heights", [corpus.Input(f"row {i}", t) for i, t in enumerate(
        [TEXT, "Lovely staff and a quiet room.", "Cold food, rude waiter, never again.", "Fine, nothing special."])],
        ["occlusion", "saliency", "attention"], model=runner.loaded.path, faithfulness_inputs=4)
    corpus.run_job(engine, runner, job)

    context = browser.new_context(viewport=SCREEN)
    context.set_default_timeout(60_000)
    page = context.new_page()
    heights: dict[str, dict[str, float]] = {}

    # Compare: the input in the main column, then the prediction and the verdict; the evidence in tabs.
    page.goto(f"{base}/Compare?" + urlencode(ViewState(text=TEXT, methods=list(METHODS)).to_query()))
    verdict = page.get_by_role("heading", name="Verdict")
    expect(verdict).to_be_visible(timeout=LONG)
    expect(page.get_by_role("tab", name="Words", exact=True)).to_be_visible()
    last_sentence = page.locator('[data-testid="stColumn"] li').last  # the verdict's sentences, one per row
    expect(last_sentence).to_be_visible()
    heights["compare"] = {"verdict_starts": verdict.bounding_box()["y"], "verdict_ends": bottom_of(last_sentence)}
    for tab in ("Words", "Agreement", "Faithfulness", "Attention", "What would flip it?", "Summary and export"):
        open_tab(page, tab)
        heights["compare"][f"page_with_{tab}"] = page.evaluate(HEIGHT_OF_PAGE)
    screenshot(page, "17-compare-1280x800", height=800)

    # The faithfulness curves: one panel per method, every method's points drawn with its own values.
    open_tab(page, "Faithfulness")
    chart = page.locator('[role="tabpanel"]:visible .vega-embed').first
    expect(chart.locator("svg")).to_be_visible()
    expect(chart.locator('[role="graphics-symbol"]').first).to_be_attached()
    by_method: dict[str, list[float]] = {}
    for label in point_labels(chart):
        method = re.search(r"method: ([a-z_]+)", label)
        value = re.search(r"p\(target\): ([0-9.]+)", label)
        if method and value:
            by_method.setdefault(method.group(1), []).append(float(value.group(1)))
    assert set(by_method) == set(METHODS), sorted(by_method)  # every method drawn, the random band is not a panel
    stored = {f.method: [p for _, p in f.deletion] for f in report.faithfulness}
    for method, values in by_method.items():  # the drawn values are the stored curve's
        assert values == pytest.approx(stored[method], abs=1e-3), method
    assert len({tuple(v) for v in by_method.values()}) > 1  # the methods' curves differ

    # Whole document: the most disputed paragraphs open first.
    page.goto(f"{base}/Document?snapshot={snapshot.id}&methods={','.join(fast_methods())}")
    first_result = page.get_by_text("Paragraphs, most disputed first")
    expect(first_result).to_be_visible(timeout=LONG)
    table = page.locator('[role="tabpanel"]:visible [data-testid="stDataFrame"]').first
    expect(table).to_be_visible()
    heights["document"] = {"verdict_starts": first_result.bounding_box()["y"], "verdict_ends": bottom_of(table),
                           "page": page.evaluate(HEIGHT_OF_PAGE)}

    # Corpus: the faithfulness leaderboard opens first.
    page.goto(f"{base}/Corpus?job={job}")
    leaderboard = page.get_by_role("heading", name="Faithfulness leaderboard")
    expect(leaderboard).to_be_visible(timeout=LONG)
    board_table = page.locator('[role="tabpanel"]:visible [data-testid="stDataFrame"]').first
    expect(board_table).to_be_visible()
    heights["corpus"] = {"verdict_starts": leaderboard.bounding_box()["y"], "verdict_ends": bottom_of(board_table),
                         "page": page.evaluate(HEIGHT_OF_PAGE)}

    # An old `text=` link to a long text opens, and the address is rewritten to the stored text's short key.
    long_text = " ".join(["The staff were kind but the room was cold."] * 250)  # 2,250 words
    page.goto(f"{base}/Compare?" + urlencode({"text": long_text, "methods": "occlusion"}))
    expect(page).to_have_url(re.compile(r"[?&]t=[0-9a-f]{16}"))
    assert "text=" not in page.url and len(page.url) < 300, page.url
    page.reload()
    expect(page.get_by_label("Text to explain")).to_have_value(long_text)

    # Model vs model opens on two different models (before: the configured model against itself, without a word).
    page.goto(f"{base}/Models")
    expect(page.get_by_role("button", name="Compare on the held-out rows")).to_be_visible()
    expect(page.get_by_text("are the same model")).to_have_count(0)
    context.close()

    record = tmp_path_factory.mktemp("logs") / "page-heights.json"
    record.write_text(json.dumps(heights, indent=2))
    print(f"\npage heights at {SCREEN['width']}x{SCREEN['height']}: {json.dumps(heights)}")
    for view, measured in heights.items():
        assert measured["verdict_ends"] <= 2 * SCREEN["height"], (view, measured)


def test_18_a_chinese_review_is_explained_word_by_word(page, app_server):
    """Compare with a Chinese review and the Chinese model: every jieba word highlighted and written out (before, the
    splitter gave 6 clause-long "words"), the layer named, the verdict and the agreement computed on words."""
    from core.words import split_words

    review = "这家酒店的服务很好，但是房间太脏了，我不会再来。"
    words = [w for w, _, _ in split_words(review)]
    query = urlencode({"text": review, "model": "zh", "methods": "occlusion,saliency,attention", "k": "3"})
    page.goto(f"{app_server['url']}/Compare?{query}")
    expect(page.get_by_text("Press Run to explain this input")).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    rows = page.get_by_test_id("rashomon-grid").locator("tr")
    expect(rows).to_have_count(3)
    for row in range(3):
        spans = rows.nth(row).locator("span[title]")
        expect(spans).to_have_count(len(words))
        for index, word in enumerate(words):
            expect(spans.nth(index)).to_have_text(word)
    expect(page.get_by_text(re.compile(r"Words split by jieba3k 0\.35\.1 \(Han\)"))).to_be_visible()
    open_tab(page, "Agreement")
    expect(page.locator('[role="tabpanel"]:visible .vega-embed').first).to_be_visible()
    screenshot(page, "18-chinese-compare", height=1600)
