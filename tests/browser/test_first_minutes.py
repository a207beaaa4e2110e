"""Journey 15, the first ten minutes: a newcomer's server on an empty data directory answers at once, builds the
default model on a worker (the real build task, with the tiny network as its encoder), computes the sample
workspace, and every page then has something real to show. Every wait is on visible text, never a sleep."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import open_tab, screenshot

pytestmark = pytest.mark.browser
LONG = 300_000  # ms: the build, its preparation and the samples on a cold server's workers


def no_exception(page) -> None:
    expect(page.get_by_test_id("stException")).to_have_count(0)


def test_15_the_first_ten_minutes_on_an_empty_data_directory(page, fresh_server):
    base = fresh_server["url"]
    page.goto(f"{base}/")
    expect(page.get_by_role("heading", name="Rashomon")).to_be_visible()
    # Pages that need no model work while the build runs (or after it, on a fast machine).
    page.goto(f"{base}/Snapshots")
    expect(page.get_by_text("These sample pages ship with Rashomon")).to_be_visible()
    no_exception(page)

    # The build, its preparation and the samples run on the workers; Home then offers three things to try.
    page.goto(f"{base}/")
    expect(page.get_by_role("link", name="The training data behind an answer")).to_be_visible(timeout=LONG)
    expect(page.get_by_text("rashomon-minilm-tweet-sentiment", exact=True)).to_be_visible()
    screenshot(page, "15-home-three-things-to-try")

    page.get_by_role("link", name="Fourteen accounts of one tweet").click()
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    expect(page.get_by_text("this comparison was computed by a worker")).to_be_visible()
    open_tab(page, "What would flip it?")
    expect(page.get_by_text("(stored result, no model work now)")).to_be_visible()  # the sample edit search
    no_exception(page)

    page.goto(f"{base}/")
    page.get_by_role("link", name="Where the model goes wrong").click()
    expect(page.get_by_text("this evaluation and its error groups was computed")).to_be_visible()
    page.get_by_role("tab", name="Error groups", exact=True).click()
    expect(page.get_by_text(re.compile(r"\d+ errors:\W{0,3}\d+ groups?"))).to_be_visible()  # md() puts a zero-width space after a colon
    no_exception(page)

    page.goto(f"{base}/")
    page.get_by_role("link", name="The training data behind an answer").click()
    expect(page.get_by_text("The model's probabilities")).to_be_visible()
    expect(page.get_by_text("this training-data result was computed")).to_be_visible()
    no_exception(page)

    page.goto(f"{base}/Corpus")
    expect(page.get_by_text("this corpus run was computed")).to_be_visible()
    expect(page.get_by_role("heading", name="Faithfulness leaderboard")).to_be_visible()
    no_exception(page)

    for address, heading in (("Document", "Whole document"), ("Models", "Model vs model"), ("Checks", "Checks")):
        page.goto(f"{base}/{address}")
        expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
        no_exception(page)

    # A newcomer's own first comparison, on the model that was just built.
    page.goto(f"{base}/Compare?methods=occlusion,saliency&text=The+staff+were+kind+but+the+room+was+cold")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_role("heading", name="Verdict")).to_be_visible(timeout=LONG)
    expect(page.get_by_text("this comparison was computed by a worker")).to_have_count(0)

    page.goto(f"{base}/")
    page.get_by_role("button", name="Remove the samples").click()
    expect(page.get_by_text(re.compile(r"Removed the samples \(\d+ stored rows\)"))).to_be_visible()
    expect(page.get_by_role("link", name="Fourteen accounts of one tweet")).to_have_count(0)
    expect(page.get_by_role("button", name="Compute the sample workspace")).to_be_visible()
