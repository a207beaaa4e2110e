"""HTML for highlighted text. Every word and every gap between words is escaped: a page or a
token can never contribute live markup."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from dataclasses import dataclass


def _colour(value: float, signed: bool) -> str:
    """Background for a normalised score: red/blue diverging when signed, green sequential otherwise."""
    v = max(-1.0, min(1.0, value))
    alpha = abs(v) * 0.75
    if not signed:
        return f"rgba(27, 120, 55, {alpha:.3f})"
    return f"rgba(178, 24, 43, {alpha:.3f})" if v > 0 else f"rgba(33, 102, 172, {alpha:.3f})"


def _words(text: str, offsets: Sequence[tuple[int, int]], values: Sequence[float], signed: bool,
           titles: Sequence[str] | None, outlined: Sequence[int], ranks: dict[int, int] | None = None) -> str:
    outlined_set = set(outlined)
    parts, cursor = [], 0
    for i, ((start, end), value) in enumerate(zip(offsets, values, strict=True)):
        parts.append(html.escape(text[cursor:start]))
        title = html.escape(titles[i], quote=True) if titles else f"{value:+.3f}"
        border = "outline: 2px solid #e08214;" if i in outlined_set else ""
        # Dark backgrounds get light text, so the strongest words stay the most readable.
        ink = "color:#fff;" if abs(value) > 0.6 else ""
        rank = ranks.get(i) if ranks else None
        weight = "font-weight:700;" if rank is not None else ""
        mark = f'<sup style="font-size:0.7em;color:#444;margin-left:1px">{rank}</sup>' if rank is not None else ""
        parts.append(f'<span title="{title}" style="background:{_colour(value, signed)};{border}{ink}{weight}'
                     f'border-radius:3px;padding:0 1px">{html.escape(text[start:end])}</span>{mark}')
        cursor = end
    parts.append(html.escape(text[cursor:]))
    return "".join(parts).replace("\n", "<br>")


def highlighted_text(text: str, offsets: Sequence[tuple[int, int]], values: Sequence[float], signed: bool,
                     titles: Sequence[str] | None = None, outlined: Sequence[int] = ()) -> str:
    """`text` with each word's background set from `values` (already in [-1, 1]); gaps kept as they are."""
    body = _words(text, offsets, values, signed, titles, outlined)
    return f'<div style="line-height:1.9;font-size:1.02rem">{body}</div>'


@dataclass(frozen=True)
class GridRow:
    """One method's account of the input, for the side-by-side grid."""

    title: str
    note: str  # e.g. "signed" / "unsigned"
    text: str
    offsets: Sequence[tuple[int, int]]
    values: Sequence[float]  # normalised to [-1, 1]
    signed: bool
    ranks: dict[int, int]  # word index -> rank among the method's top-k (1 = strongest)
    titles: Sequence[str]


def comparison_grid(rows: Sequence[GridRow], scroll: bool = False) -> str:
    """Every method's highlighted copy of the input, one row each, full method names, every word
    written out (its top-k words in bold with their rank). With `scroll`, each row is a scrolling box
    of fixed height (long inputs), with the same colours."""
    box = "max-height:9.5em;overflow-y:auto;" if scroll else ""
    body = []
    for row in rows:
        body.append(
            '<tr style="border-top:1px solid #ddd">'
            f'<th style="text-align:left;vertical-align:top;padding:6px 10px 6px 0;white-space:nowrap;'
            f'font-weight:600">{html.escape(row.title)}<br><span style="font-weight:400;font-size:0.8em;'
            f'color:#666">{html.escape(row.note)}</span></th>'
            f'<td style="padding:6px 0;line-height:1.9;font-size:1.0rem"><div style="{box}">'
            f'{_words(row.text, row.offsets, row.values, row.signed, row.titles, (), row.ranks)}</div></td></tr>')
    return ('<table data-testid="rashomon-grid" style="border-collapse:collapse;width:100%">' + "".join(body)
            + "</table>")


def prediction_bars(probabilities: dict[str, float]) -> str:
    """Every label, most probable first, each with its bar and its probability written out."""
    rows = []
    for label, p in sorted(probabilities.items(), key=lambda lp: -lp[1]):
        width = max(0.0, min(1.0, p)) * 100
        rows.append(
            '<div style="display:flex;align-items:center;gap:10px;margin:4px 0">'
            f'<div style="min-width:9em;text-align:right;font-weight:600">{html.escape(label)}</div>'
            '<div style="flex:1;background:#eef1f5;border-radius:3px;height:20px;max-width:520px">'
            f'<div style="width:{width:.1f}%;background:#4c78a8;height:100%;border-radius:3px"></div></div>'
            f'<div style="min-width:4em;font-variant-numeric:tabular-nums">{p:.3f}</div></div>')
    return '<div data-testid="rashomon-prediction">' + "".join(rows) + "</div>"


_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]<>#+!|~$:])")
# Streamlit's Markdown turns anything that looks like an address (127.0.0.1, example.com, http://...,
# a@b.org) into a live link, escaped or not. A zero-width space after each dot, colon and @ (and after
# "www") breaks that recognition and changes nothing a reader sees.
_LINKABLE = re.compile(r"(www|[.:@])", re.IGNORECASE)
ZERO_WIDTH_SPACE = "\u200b"


def md(text: str) -> str:
    """`text` (from a page, a bookmark file, a training example or a user) made inert for Markdown:
    Markdown/HTML characters backslash-escaped, so `![p](http://host/t.png)` shows as those characters
    and never loads an image, and nothing in it becomes a live link. Use it for every such string passed
    to st.markdown, st.subheader, st.error, st.caption and their kin."""
    escaped = _MARKDOWN_SPECIALS.sub(r"\\\1", str(text)).replace("\n", " ")
    return _LINKABLE.sub(lambda m: m.group(1) + ZERO_WIDTH_SPACE, escaped)


_UNSAFE_LINK = re.compile(r"\]\(\s*(?:javascript|data|vbscript):", re.IGNORECASE)


def note_markdown(text: str) -> str:
    """A person's note as Markdown that renders inert: formatting and links stay, raw HTML shows as text (angle
    brackets become entities), an image becomes a plain link (`![x](http://...)` never loads anything), and a
    link to a script URL goes nowhere."""
    safe = str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    safe = safe.replace("![", "\\![")
    return _UNSAFE_LINK.sub("](#", safe)


def shown(markdown_text: str) -> str:
    """What a reader sees of a string made by `md` (escapes and zero-width spaces removed): for tests and logs."""
    return re.sub(r"\\(.)", r"\1", markdown_text).replace(ZERO_WIDTH_SPACE, "")


def edit_diff(diff: Sequence[tuple[str, str]]) -> str:
    """A counterfactual as a diff: deleted text struck through on red, inserted text on green, the rest as
    it was; every part escaped."""
    styles = {"deleted": "background:#fbd5d5;text-decoration:line-through;border-radius:3px;padding:0 2px",
              "inserted": "background:#c9ecd4;font-weight:600;border-radius:3px;padding:0 2px"}
    parts = []
    for kind, part in diff:
        escaped = html.escape(part)
        if kind in styles:
            parts.append(f'<span data-edit="{kind}" style="{styles[kind]}">{escaped}</span>')
        else:
            parts.append(escaped)
    return '<div data-testid="rashomon-diff" style="line-height:1.9">' + "".join(parts).replace("\n", "<br>") + "</div>"


def training_examples(examples: Sequence, links: Sequence[str], scale: float) -> str:
    """Training examples as cards: gold and predicted label written out, a score bar scaled to `scale`,
    the text with the words it shares with the input in bold, and an "Open in Compare" link. Every
    string a training example contributes is escaped."""
    if not examples:
        return '<div style="color:#666">none</div>'
    cards = []
    for example, link in zip(examples, links, strict=True):
        shared = {w.lower() for w in example.shared_words}
        words = re.split(r"(\w+(?:['’]\w+)*)", example.text)
        body = "".join(f"<b>{html.escape(part)}</b>" if part.lower() in shared else html.escape(part) for part in words)
        width = min(100.0, abs(example.score) / scale * 100) if scale > 0 else 0.0
        colour = "#b2182b" if example.score > 0 else "#2166ac"
        mismatch = "" if example.gold == example.predicted else \
            f' · model says <b>{html.escape(example.predicted)}</b>'
        cards.append(
            '<div style="border:1px solid #dde2e8;border-radius:6px;padding:6px 8px;margin:6px 0">'
            f'<div style="font-size:0.85rem;color:#333">gold <b>{html.escape(example.gold)}</b>{mismatch}'
            f' · score {example.score:+.3g}</div>'
            f'<div style="background:#eef1f5;height:6px;border-radius:3px;margin:3px 0">'
            f'<div style="width:{width:.1f}%;background:{colour};height:100%;border-radius:3px"></div></div>'
            f'<div style="font-size:0.95rem">{body}</div>'
            f'<div style="font-size:0.8rem"><a href="{html.escape(link, quote=True)}" target="_self">Open in Compare</a>'
            f' · {html.escape(example.id)}</div></div>')
    return "".join(cards)
