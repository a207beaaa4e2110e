"""Scores at another level than the word: each model token, each sentence or each paragraph.

Every method scores the word layer's words (core/words.py). A long prompt is read better by sentence or paragraph,
and a tokenizer's pieces show what the model actually saw; agreement measured at the chosen level compares the
methods on those units. The aggregation is stated with the level:
- token: the method's own token scores (a word-level method's score spread evenly over its word's tokens), the
  template's and special tokens left out;
- sentence, paragraph: the sum of the scores of the words inside (a signed method's support and opposition
  cancel inside a unit, as they would if the unit were removed whole).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from core.analyses.passages import paragraph_spans, sentence_spans
from core.analyses.reports import Comparison
from core.explanation import Explanation

LEVELS = {
    "token": "each token the model reads, with the method's own token scores (template and special tokens left out)",
    "word": "each word of the word layer, as every method scores it",
    "sentence": "each sentence, the sum of its words' scores",
    "paragraph": "each paragraph, the sum of its words' scores",
}
DEFAULT_LEVEL = "word"


class LevelError(ValueError):
    """An unknown level, or a token level asked for without the tokens' positions."""


def at_level(explanation: Explanation, level: str, token_offsets: Sequence[tuple[int, int]] | None = None,
             special_mask: Sequence[bool] | None = None) -> Explanation:
    """`explanation` with its units (words, offsets, scores) at `level`; token level needs the prepared input's
    token offsets and special-token mask (`ModelRunner.prepare`, no model pass)."""
    if level not in LEVELS:
        raise LevelError(f"Unknown level '{level[:40]}'; choose from {', '.join(LEVELS)}.")
    if level == "word":
        return explanation
    text = explanation.text
    if level == "token":
        if token_offsets is None or special_mask is None or len(token_offsets) != len(explanation.token_scores):
            raise LevelError("The token level needs the input's tokens as the model read them.")
        kept, spans = [], []
        for i, special in enumerate(special_mask):
            start, end = token_offsets[i]
            while start < end and text[start].isspace():  # a byte-level BPE token carries the space before it
                start += 1
            if not special and end > start:
                kept.append(i)
                spans.append((start, end))
        return replace(explanation, words=tuple(text[s:e] for s, e in spans), offsets=tuple(spans),
                       scores=tuple(float(explanation.token_scores[i]) for i in kept))
    spans = sentence_spans(text) if level == "sentence" else paragraph_spans(text)
    scores = [0.0] * len(spans)
    for (start, _end), score in zip(explanation.offsets, explanation.scores, strict=True):
        unit = next((u for u, (s, e) in enumerate(spans) if s <= start < e), None)
        if unit is not None:
            scores[unit] += float(score)
    return replace(explanation, words=tuple(text[s:e] for s, e in spans), offsets=tuple(spans), scores=tuple(scores))


def comparison_at_level(comparison: Comparison, level: str, token_offsets: Sequence[tuple[int, int]] | None = None,
                        special_mask: Sequence[bool] | None = None) -> Comparison:
    """Every explanation of `comparison` at `level` (agreement and top units are then computed on those units)."""
    return replace(comparison, explanations=tuple(at_level(e, level, token_offsets, special_mask)
                                                  for e in comparison.explanations))
