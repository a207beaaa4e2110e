"""Journey 21, a causal LM through the browser: the tiny GPT-2 (built per session, as `rashomon model build-tiny-lm`
builds it) read as a classifier and as a continuation against a contrast on Compare, each reopened from its link
with no model pass; the per-token view; an edit search and a corpus run on the LM classifier."""

from __future__ import annotations

import re
import shutil
from urllib.parse import urlencode

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_tab, screenshot
from tests.browser.test_journeys import choose, open_new_corpus_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]
LONG = 240_000
TEXT = "worst day ever , so angry"


def passes_now(page) -> None:
    expect(page.get_by_text(re.compile(r"^Model passes to show this view now: 0 "))).to_be_visible(timeout=LONG)


def test_21_a_causal_lm_is_explained_as_a_classifier_and_as_a_continuation(browser, app_server, tiny_lm_dir):
    home = app_server["home"]
    if not (home / "language_models" / "tiny-lm").exists():
        shutil.copytree(tiny_lm_dir, home / "language_models" / "tiny-lm")  # the model list reads it on each page
    base = app_server["url"]
    page = browser.new_page(viewport={"width": 1500, "height": 1000})

    # As a classifier: its template and label words, every compatible method, the incompatible one named.
    methods = "occlusion,integrated_gradients,attention,attention_norm"
    address = f"{base}/Compare?" + urlencode({"text": TEXT, "model": "tiny-lm-classifier", "methods": methods})
    page.goto(address)
    expect(page.get_by_text(re.compile(r"^Left out: Attention norm .* cannot explain this model"))).to_be_visible()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    expect(page.get_by_role("heading", name=re.compile(r"^Prediction: (negative|neutral|positive)"))).to_be_visible()
    expect(page.get_by_text(re.compile(r"^Template .*Sentiment.*, label words negative → Ġnegative"))).to_be_visible()
    screenshot(page, "21-lm-classifier", height=1600)

    # ...what would flip it: an edit search on the LM, each counterfactual re-verified through it.
    open_tab(page, "What would flip it?")
    choose(page, "Reach the label", "any other label (attack)")
    page.get_by_role("button", name="Search for edits").click()
    expect(page.get_by_test_id("rashomon-diff").first).to_be_visible(timeout=LONG)
    expect(page.get_by_text(re.compile(r"\d+ counterfactual\(s\); \d+ model passes"))).to_be_visible()

    shared = browser.new_page()  # the share link, in a fresh session: everything from the store
    shared.goto(address)
    expect(shared.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    passes_now(shared)
    shared.close()

    # As a continuation against a contrast: log-probabilities explained, and each generated token's view.
    address = f"{base}/Compare?" + urlencode({"text": TEXT, "model": "tiny-lm-continuation", "methods": "occlusion,lime",
                                              "continuation": " negative", "contrast": " positive"})
    page.goto(address)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    expect(page.get_by_role("heading", name=re.compile(r"^Explaining: contrast = -?\d"))).to_be_visible()
    page.get_by_role("button", name="Explain each token").click()
    expect(page.get_by_text(re.compile(r"^Each row explains one generated token"))).to_be_visible(timeout=LONG)
    screenshot(page, "21-lm-continuation", height=1600)
    shared = browser.new_page()
    shared.goto(address)
    expect(shared.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    passes_now(shared)
    expect(shared.get_by_text(re.compile(r"^Each row explains one generated token"))).to_be_visible()
    shared.close()

    # A corpus run over a CSV of tweets with the LM classifier.
    open_new_corpus_run(page, base)
    choose(page, "Model", "tiny-lm-classifier")
    page.get_by_role("radiogroup", name="Inputs").get_by_text("CSV upload", exact=True).click()
    expect(page.get_by_role("radio", name="CSV upload")).to_be_checked()
    page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(files=[{
        "name": "tweets.csv", "mimeType": "text/csv",
        "buffer": b"text\nworst day ever , so angry\ni love this day\nthe meeting is at noon\n"}])
    expect(page.get_by_text("3 passages selected.")).to_be_visible(timeout=LONG)
    expect(page.get_by_text(re.compile(r"^Left out: Attention norm"))).to_be_visible()
    page.get_by_role("button", name="Start run").click()
    expect(page.get_by_text("status: done")).to_be_visible(timeout=LONG)
    expect(page.get_by_role("heading", name="Faithfulness leaderboard")).to_be_visible(timeout=LONG)
    page.close()
