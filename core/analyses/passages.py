"""Passages of a long text: paragraphs and sentence ranges the model can read whole."""

from __future__ import annotations

import re
from dataclasses import dataclass

_SENTENCE_END = re.compile(r"(?<=[.!?…])[\"'”’)\]]*\s+(?=[\"'“‘(\[]?[A-Z0-9À-Ý])")


def paragraph_spans(text: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of the non-empty paragraphs (separated by blank lines or single
    newlines), stripped of surrounding white space."""
    spans, start = [], 0
    for separator in [*re.finditer(r"\n\s*\n|\n", text), None]:
        end = separator.start() if separator else len(text)
        if (span := _stripped(text, start, end)) is not None:
            spans.append(span)
        if separator:
            start = separator.end()
    return spans


def _stripped(text: str, start: int, end: int) -> tuple[int, int] | None:
    """[start, end) without the white space around it, or None when nothing else is left."""
    part = text[start:end]
    if not part.strip():
        return None
    return start + len(part) - len(part.lstrip()), start + len(part.rstrip())


def paragraphs(text: str) -> list[str]:
    """Non-empty paragraphs (separated by blank lines or single newlines)."""
    return [text[start:end] for start, end in paragraph_spans(text)]


def sentences(text: str) -> list[str]:
    """Sentences, split after ., ! or ? when a capital or digit follows (good enough for news text)."""
    out = []
    for paragraph in paragraphs(text):
        out.extend(s.strip() for s in _SENTENCE_END.split(paragraph) if s.strip())
    return out


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Character spans [start, end) of the sentences (`sentences`' split), stripped of surrounding white space."""
    spans = []
    for start, end in paragraph_spans(text):
        cursor = start
        for boundary in [*_SENTENCE_END.finditer(text, start, end), None]:
            if (span := _stripped(text, cursor, boundary.start() if boundary else end)) is not None:
                spans.append(span)
            if boundary:
                cursor = boundary.end()
    return spans


@dataclass(frozen=True)
class PassageChoice:
    mode: str = "paragraph"  # "paragraph" | "sentences" | "all"
    start: int = 0
    end: int = 0  # inclusive, for sentence ranges

    def to_query(self) -> str:
        return f"{self.mode}:{self.start}-{self.end}"

    @classmethod
    def from_query(cls, value: str | None) -> PassageChoice:
        if not value:
            return cls()
        try:
            mode, span = value.split(":", 1)
            start, end = (int(x) for x in span.split("-", 1))
        except ValueError:
            return cls()
        return cls(mode if mode in ("paragraph", "sentences", "all") else "paragraph", max(0, start), max(0, end))


def select_passage(text: str, choice: PassageChoice) -> str:
    if choice.mode == "all":
        return text.strip()
    if choice.mode == "sentences":
        parts = sentences(text)
        if not parts:
            return ""
        start = min(choice.start, len(parts) - 1)
        end = min(max(choice.end, start), len(parts) - 1)
        return " ".join(parts[start : end + 1])
    parts = paragraphs(text)
    return parts[min(choice.start, len(parts) - 1)] if parts else ""
