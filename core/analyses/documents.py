"""Whole documents: explain a text longer than the model's window, window by window, and stitch the words back.

How (stated on the page and in every result): the document's words are cut into windows of as many
whole words as the model reads, consecutive windows overlapping by `overlap` of a window's words;
each method explains each window (through the store, so a reopened document costs no passes), all
for one label; a word's document score is the **mean** of its scores in the windows that contain it.
Scores from different windows are put side by side as they are (not rescaled per window), so a word
keeps the size its window gave it. Per paragraph, disagreement is 1 - the mean pairwise top-k
overlap of the methods' stitched scores over that paragraph's words.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from sqlalchemy.engine import Engine

from core.analyses.agreement import feature_agreement
from core.analyses.passages import paragraph_spans
from core.analyses.store import explain_stored
from core.engine.runner import ModelRunner
from core.explanation import split_words
from core.methods.base import ExplainError
from core.methods.explain import PREDICTED, label_for
from core.methods.registry import get_method

STITCHING = ("Windows of whole words, consecutive windows overlapping; a word's score is the mean of its "
             "scores over the windows that contain it (no per-window rescaling); one label for every window.")
DocumentProgress = Callable[[int, int, str, float, str], None]  # window, windows, method, fraction, message


@dataclass(frozen=True)
class Window:
    index: int
    start_word: int  # document word indices [start_word, end_word)
    end_word: int
    text: str


@dataclass(frozen=True)
class WindowCost:
    window: int
    method: str
    seconds: float
    forward_passes: int
    stored: bool


@dataclass(frozen=True)
class Paragraph:
    index: int
    start_word: int
    end_word: int
    disagreement: float | None  # None: fewer than two methods, or fewer than two words
    top_words: dict[str, list[str]]  # method -> its top-k words in this paragraph


@dataclass
class DocumentExplanation:
    text: str
    words: list[tuple[str, int, int]]
    target: str
    methods: list[str]
    scores: dict[str, list[float]]  # method -> one stitched score per document word
    windows: list[Window]
    costs: list[WindowCost]
    paragraphs: list[Paragraph]
    window_probabilities: list[dict[str, float]]
    k: int
    prediction_passes: int = 0  # choosing the document's label when none was given
    stitching: str = STITCHING
    seconds: float = 0.0
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def forward_passes(self) -> int:
        return self.prediction_passes + sum(c.forward_passes for c in self.costs)

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.target, "methods": self.methods, "stitching": self.stitching, "k": self.k,
                "words": [w for w, _, _ in self.words], "offsets": [(s, e) for _, s, e in self.words],
                "scores": self.scores, "seconds": self.seconds, "forward_passes": self.forward_passes,
                "windows": [w.__dict__ for w in self.windows], "costs": [c.__dict__ for c in self.costs],
                "window_probabilities": self.window_probabilities,
                "paragraphs": [p.__dict__ for p in self.paragraphs]}


def _words_that_fit(runner: ModelRunner, chunk: str, tokens: int) -> int:
    """How many of `chunk`'s leading words fit whole in `tokens` tokens (special tokens included)."""
    budget = tokens - runner.tokenizer.num_special_tokens_to_add(pair=False)
    offsets = runner.tokenizer(chunk, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    words = split_words(chunk)
    if len(offsets) <= budget:
        return len(words)
    cut = offsets[budget - 1][1]
    return sum(1 for _, _, end in words if end <= cut)


def cut_windows(runner: ModelRunner, text: str, overlap: float = 0.25, window_tokens: int | None = None) -> list[Window]:
    """Windows of whole words, each at most `window_tokens` tokens (default: as many as the model reads),
    consecutive ones sharing `overlap` of their words."""
    if not 0 <= overlap < 1:
        raise ExplainError(f"The overlap must be at least 0 and below 1; got {overlap}.")
    most = runner.loaded.max_length
    window_tokens = window_tokens or most
    if not 8 <= window_tokens <= most:
        raise ExplainError(f"Windows must be 8 to {most} tokens (what the model reads); got {window_tokens}.")
    words = split_words(text)
    windows: list[Window] = []
    start = 0
    while start < len(words):
        stop = min(len(words), start + window_tokens)  # every word is at least one token
        kept = _words_that_fit(runner, text[words[start][1] : words[stop - 1][2]], window_tokens)
        if kept == 0:
            raise ExplainError("A word of the document is longer than the model's window.")
        end = start + kept
        windows.append(Window(len(windows), start, end, text[words[start][1] : words[end - 1][2]]))
        if end >= len(words):
            break
        start = max(start + 1, end - int(kept * overlap))
    return windows


def explain_document(engine: Engine, runner: ModelRunner, text: str, methods: Sequence[str],
                     target: str | None = None, options: dict[str, dict] | None = None, *, overlap: float = 0.25,
                     window_tokens: int | None = None, k: int = 5, fresh: bool = False, only_stored: bool = False,
                     progress: DocumentProgress | None = None) -> DocumentExplanation | None:
    """Every method on every window of `text`, stitched into one score per document word. With
    `only_stored`, nothing is computed: the stored document, or None if any window is missing."""
    started = time.perf_counter()
    options = options or {}
    methods = list(methods)
    if not methods:
        raise ExplainError("Choose at least one method.")
    for name in methods:
        get_method(name).resolve(options.get(name))
    if not text.strip():
        raise ExplainError("The document is empty.")
    label = label_for(runner, target)
    if label == PREDICTED and only_stored:
        # Reading the store costs no pass: the document's label is the one whose stored windows'
        # probabilities (each explanation keeps its input's) average highest for that same label.
        for candidate in runner.loaded.labels:
            stored = explain_document(engine, runner, text, methods, candidate, options, overlap=overlap,
                                      window_tokens=window_tokens, k=k, only_stored=True)
            if stored is not None and _mean_label(stored.window_probabilities, runner.loaded.labels) == candidate:
                return stored
        return None
    windows = cut_windows(runner, text, overlap, window_tokens)
    passes_before = runner.forward_passes
    probabilities: list[dict[str, float]] = []
    if label == PREDICTED:  # the document's label: the highest mean probability over its windows
        rows = runner.probabilities([runner.prepare(w.text).input_ids for w in windows])
        label = runner.loaded.labels[int(np.argmax(rows.mean(axis=0)))]
    prediction_passes = runner.forward_passes - passes_before
    words = split_words(text)
    sums = {m: np.zeros(len(words)) for m in methods}
    counts = np.zeros(len(words))
    costs: list[WindowCost] = []
    for window in windows:
        counts[window.start_word : window.end_word] += 1
        for name in methods:
            def report(fraction: float, message: str, window: Window = window, name: str = name) -> None:
                if progress:
                    progress(window.index, len(windows), name, fraction, message)

            result = explain_stored(engine, runner, window.text, name, label, options.get(name), fresh=fresh,
                                    only_stored=only_stored, progress=report)
            if result is None:
                return None
            e = result.explanation
            if len(e.scores) != window.end_word - window.start_word:
                raise RuntimeError(f"window {window.index} has {len(e.scores)} words, expected "
                                   f"{window.end_word - window.start_word}")
            sums[name][window.start_word : window.end_word] += np.asarray(e.scores)
            costs.append(WindowCost(window.index, name, e.seconds if not result.cached else 0.0,
                                    0 if result.cached else e.forward_passes, result.cached))
            report(1.0, "done")
        probabilities.append(dict(e.probabilities))  # every stored explanation carries its input's prediction
    scores = {m: (sums[m] / np.maximum(counts, 1)).tolist() for m in methods}
    return DocumentExplanation(
        text=text, words=words, target=label, methods=methods, scores=scores, windows=windows, costs=costs,
        paragraphs=_paragraphs(text, words, scores, k), k=k, seconds=time.perf_counter() - started,
        window_probabilities=probabilities, prediction_passes=prediction_passes)


def _mean_label(probabilities: Sequence[dict[str, float]], labels: Sequence[str]) -> str:
    """The label with the highest mean probability over the windows (ties: the first label, as argmax)."""
    means = [float(np.mean([p[label] for p in probabilities])) for label in labels]
    return labels[int(np.argmax(means))]


def normalised(scores: Sequence[float]) -> list[float]:
    """Scores divided by the document's largest |score| (for colour), zeros left as zeros."""
    values = np.asarray(scores, dtype=float)
    top = float(np.abs(values).max()) if len(values) else 0.0
    return (values / top).tolist() if top > 0 else values.tolist()


def paragraph_text(doc: DocumentExplanation, paragraph: Paragraph) -> str:
    return doc.text[doc.words[paragraph.start_word][1] : doc.words[paragraph.end_word - 1][2]]


def _paragraphs(text: str, words: list[tuple[str, int, int]], scores: dict[str, list[float]], k: int) -> list[Paragraph]:
    starts = np.array([s for _, s, _ in words])
    out = []
    for index, (start, end) in enumerate(paragraph_spans(text)):
        first, last = int(np.searchsorted(starts, start)), int(np.searchsorted(starts, end))
        if first == last:
            continue
        local = {m: np.asarray(v[first:last]) for m, v in scores.items()}
        size = min(k, last - first)
        top = {m: [words[first + i][0] for i in np.argsort(-np.abs(v), kind="stable")[:size]] for m, v in local.items()}
        pairs = [feature_agreement(local[a], local[b], size) for a, b in combinations(local, 2)]
        disagreement = float(1 - np.mean(pairs)) if pairs and last - first > 1 else None
        out.append(Paragraph(index, first, last, disagreement, top))
    return out
