"""The one result shape every explanation method returns, and the word space they share.

Words are the common feature space: methods that work on subword tokens (gradients, SHAP,
attention) and methods that work on words (LIME, occlusion) become comparable there.

How token scores become word scores: each token is assigned to the words its character span
overlaps (normally exactly one); a word's score is the **sum** of its tokens' scores (a token
spanning k words gives each 1/k of its score). Summing keeps additive properties intact:
Integrated Gradients completeness and SHAP additivity hold over words as they do over tokens.
Special tokens ([CLS], [SEP]) belong to no word; their scores stay in `token_scores` only.
Word-level methods store their word score spread evenly over the word's tokens.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

# A word is a run of word characters (with inner apostrophes: "don't"), or a single other
# non-space character (punctuation, symbols, emoji), so punctuation can carry its own score.
from core.words import SPACED, WORD_PATTERN, layer_for, split_words  # noqa: F401 - the word layer, re-exported


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def token_word_matrix(
    token_offsets: list[tuple[int, int]], word_offsets: list[tuple[int, int]], text_length: int
) -> np.ndarray:
    """(tokens x words) weights: row t spreads token t evenly over the words it overlaps."""
    char_to_word = np.full(text_length, -1, dtype=np.int64)
    for index, (start, end) in enumerate(word_offsets):
        char_to_word[start:end] = index
    matrix = np.zeros((len(token_offsets), len(word_offsets)))
    for t, (start, end) in enumerate(token_offsets):
        if end <= start:
            continue  # special tokens have empty spans
        words = {int(w) for w in char_to_word[start:end] if w >= 0}
        for w in words:
            matrix[t, w] = 1.0 / len(words)
    return matrix


@dataclass(frozen=True, kw_only=True)
class Explanation:
    """What one method says about one input (after ferret's `Explanation`)."""

    text: str
    words: tuple[str, ...]
    offsets: tuple[tuple[int, int], ...]
    scores: tuple[float, ...]
    tokens: tuple[str, ...]
    token_scores: tuple[float, ...]
    method: str
    target: str
    signed: bool
    probabilities: dict[str, float]
    seconds: float
    forward_passes: int
    params: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    truncated_words: int = 0
    word_layer: str = SPACED  # what the text was split into words with (core/words.py `layer_for`)
    # What ran the passes its scores come from (core/engine/backends.py): perturbation methods use the runner's
    # backend; gradient and attention methods always use the float32 model.
    backend: str = "float32"

    @property
    def predicted_label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["offsets"] = [list(o) for o in self.offsets]
        data["words"] = list(self.words)
        data["scores"] = list(self.scores)
        data["tokens"] = list(self.tokens)
        data["token_scores"] = list(self.token_scores)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Explanation:
        data = dict(data)
        data["words"] = tuple(data["words"])
        data["offsets"] = tuple(tuple(o) for o in data["offsets"])
        data["scores"] = tuple(float(s) for s in data["scores"])
        data["tokens"] = tuple(data["tokens"])
        data["token_scores"] = tuple(float(s) for s in data["token_scores"])
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class TrainingExampleScore:
    """One training example as a data-attribution method ranks it for one input."""

    id: str
    position: int  # row in the training set
    text: str
    gold: str  # the label it was trained with
    predicted: str  # what the model predicts for it
    score: float
    shared_words: tuple[str, ...] = ()  # content words it shares with the input

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "shared_words": list(self.shared_words)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingExampleScore:
        return cls(**{**data, "shared_words": tuple(data.get("shared_words", ()))})


@dataclass(frozen=True, kw_only=True)
class TrainingAttribution:
    """What one training-data attribution method says about one input: a score per training example
    (positive = pushed the model towards `target`), the top proponents and opponents, and the cost."""

    text: str
    method: str
    target: str
    probabilities: dict[str, float]
    training_set: str
    training_sha256: str
    scores: tuple[float, ...]  # one per training example, in training-set order
    proponents: tuple[TrainingExampleScore, ...]
    opponents: tuple[TrainingExampleScore, ...]
    seconds: float
    forward_passes: int
    params: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)
    sample: bool = False  # computed for the sample workspace (core/work/samples.py)

    @property
    def predicted_label(self) -> str:
        return max(self.probabilities, key=self.probabilities.get)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["scores"] = [round(float(s), 7) for s in self.scores]
        data["proponents"] = [p.to_dict() for p in self.proponents]
        data["opponents"] = [o.to_dict() for o in self.opponents]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingAttribution:
        data = dict(data)
        data["scores"] = tuple(float(s) for s in data["scores"])
        data["proponents"] = tuple(TrainingExampleScore.from_dict(p) for p in data["proponents"])
        data["opponents"] = tuple(TrainingExampleScore.from_dict(o) for o in data["opponents"])
        return cls(**data)
