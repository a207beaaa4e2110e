"""HTML for highlighted text. Every word and every gap between words is escaped: a page or a
token can never contribute live markup."""

from __future__ import annotations

import html
from collections.abc import Sequence


def _colour(value: float, signed: bool) -> str:
    """Background for a normalised score: red/blue diverging when signed, green sequential otherwise."""
    v = max(-1.0, min(1.0, value))
    alpha = abs(v) * 0.75
    if not signed:
        return f"rgba(27, 120, 55, {alpha:.3f})"
    return f"rgba(178, 24, 43, {alpha:.3f})" if v > 0 else f"rgba(33, 102, 172, {alpha:.3f})"


def highlighted_text(text: str, offsets: Sequence[tuple[int, int]], values: Sequence[float], signed: bool,
                     titles: Sequence[str] | None = None, outlined: Sequence[int] = ()) -> str:
    """`text` with each word's background set from `values` (already in [-1, 1]); gaps kept as they are."""
    outlined_set = set(outlined)
    parts, cursor = [], 0
    for i, ((start, end), value) in enumerate(zip(offsets, values, strict=True)):
        parts.append(html.escape(text[cursor:start]))
        title = html.escape(titles[i], quote=True) if titles else f"{value:+.3f}"
        border = "outline: 2px solid #e08214;" if i in outlined_set else ""
        parts.append(f'<span title="{title}" style="background:{_colour(value, signed)};{border}'
                     f'border-radius:3px;padding:0 1px">{html.escape(text[start:end])}</span>')
        cursor = end
    parts.append(html.escape(text[cursor:]))
    body = "".join(parts).replace("\n", "<br>")
    return f'<div style="line-height:1.9;font-size:1.02rem">{body}</div>'
