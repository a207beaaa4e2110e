"""Reading Compare's verdict and summary out of an AppTest run."""

from __future__ import annotations


def verdict_lines(app) -> list[tuple[str, str]]:
    """Each verdict sentence as the page writes it (Markdown, without the bullet) with the tab its button opens."""
    columns = list(app.columns)
    return [(sentence.markdown[0].value[2:], link.button[0].label.removesuffix(" →"))
            for sentence, link in zip(columns, columns[1:], strict=False)
            if len(link.button) and link.button[0].key.startswith("see_") and len(sentence.markdown)]


def summary_lines(app) -> list[str]:
    """The Summary's bullet points (its tab is the last one), without the bullet."""
    return [m.value[2:] for m in app.tabs[-1].markdown if m.value.startswith("- ")]
