"""The one call shape for training-data attribution, the agreement between methods, and the
suspicious-examples list.

`attribute` validates (method names, options, target label), prepares what the model's training set
needs (stored, reused), runs the input through every checkpoint once, and delegates scoring to each
method; every result records its seconds and forward passes.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from core.analyses.training_data.features import Prepared, Query, prepare, query
from core.analyses.training_data.registry import data_method, data_methods
from core.analyses.training_data.training_sets import TrainingSet
from core.engine.modelling import LoadedModel
from core.engine.runner import ProgressFn
from core.explanation import TrainingAttribution, TrainingExampleScore, split_words
from core.methods.base import ExplainError
from core.methods.explain import label_index

DEFAULT_METHODS = ("nearest", "tracin", "representer", "influence")


def content_words(text: str) -> set[str]:
    return {w.lower() for w, _, _ in split_words(text)
            if any(ch.isalnum() for ch in w) and len(w) > 1 and w.lower() not in ENGLISH_STOP_WORDS}


def resolve_target(labels: Sequence[str], target: str | int | None, probabilities: np.ndarray) -> int:
    if target is None or target == "":
        return int(np.argmax(probabilities))
    index = label_index(target)
    if index is not None:
        if 0 <= index < len(labels):
            return index
    elif str(target) in labels:
        return list(labels).index(str(target))
    raise ExplainError(f"Unknown target label {target!r}; the model's labels are {', '.join(labels)}.")


def _listed(prepared: Prepared, rows: Sequence[int], scores: np.ndarray, words: set[str]) -> tuple[TrainingExampleScore, ...]:
    examples = prepared.training.examples
    predicted = prepared.predicted
    return tuple(TrainingExampleScore(
        id=examples[r].id, position=int(r), text=examples[r].text, gold=examples[r].label,
        predicted=prepared.labels[int(predicted[r])], score=float(scores[r]),
        shared_words=tuple(sorted(words & content_words(examples[r].text)))) for r in rows)


def _one(prepared: Prepared, seen: Query, method: str, target: int, params: dict[str, Any] | None, k: int) -> TrainingAttribution:
    entry = data_method(method)
    resolved = entry.resolve(params)
    started = time.perf_counter()
    scores, diagnostics = entry.score(prepared, seen, target, resolved)
    order = np.argsort(-scores, kind="stable")
    positive = [int(r) for r in order[:k] if scores[r] > 0]
    negative = [int(r) for r in order[::-1][:k] if scores[r] < 0]
    words = content_words(seen.text)
    return TrainingAttribution(
        text=seen.text, method=method, target=prepared.labels[target],
        probabilities={label: float(p) for label, p in zip(prepared.labels, seen.final_probabilities, strict=True)},
        training_set=prepared.training.name, training_sha256=prepared.training.sha256,
        scores=tuple(float(s) for s in scores),
        proponents=_listed(prepared, positive, scores, words), opponents=_listed(prepared, negative, scores, words),
        seconds=time.perf_counter() - started, forward_passes=0, params=resolved, diagnostics=diagnostics)


def attribute(loaded: LoadedModel, training: TrainingSet, text: str, methods: Sequence[str] = DEFAULT_METHODS, *,
              target: str | int | None = None, k: int = 10, params: dict[str, dict[str, Any]] | None = None,
              progress: ProgressFn | None = None) -> list[TrainingAttribution]:
    """Each method's account of which training examples pushed `text` towards `target` (default: the
    predicted label). The input's passes (one per checkpoint) are charged to the first method."""
    if not text or not text.strip():
        raise ExplainError("Nothing to explain: the text is empty.")
    if k < 1:
        raise ExplainError("k must be at least 1.")
    for name in methods:
        data_method(name).resolve((params or {}).get(name))
    report = progress or (lambda fraction, message: None)
    prepared = prepare(loaded, training, lambda f, m: report(0.5 * f, m))
    started = time.perf_counter()
    seen = query(loaded, prepared, text, every_checkpoint=any(data_method(m).uses_checkpoints for m in methods))
    query_seconds = time.perf_counter() - started
    chosen = resolve_target(prepared.labels, target, seen.final_probabilities)
    results = []
    for n, name in enumerate(methods):
        report(0.5 + 0.5 * n / len(methods), f"{data_method(name).title}")
        result = _one(prepared, seen, name, chosen, (params or {}).get(name), k)
        if n == 0:
            result = _charged(result, query_seconds, seen.passes)
        results.append(result)
    report(1.0, "Done")
    return results


def _charged(result: TrainingAttribution, seconds: float, passes: int) -> TrainingAttribution:
    from dataclasses import replace

    return replace(result, seconds=result.seconds + seconds, forward_passes=result.forward_passes + passes)


@dataclass(frozen=True)
class DataAgreement:
    methods: list[str]
    overlap: list[list[float]]  # share of top-k proponents in common
    rank: list[list[float]]  # Spearman over the union of both top-k proponent lists (nan when undefined)
    k: int


def agreement(results: Sequence[TrainingAttribution], k: int = 10) -> DataAgreement:
    """Pairwise agreement of the methods' top-k proponents: overlap, and rank correlation over their union."""
    tops = [np.argsort(-np.asarray(r.scores), kind="stable")[:k] for r in results]
    size = len(results)
    overlap = [[1.0] * size for _ in range(size)]
    rank = [[1.0] * size for _ in range(size)]
    for i in range(size):
        for j in range(i + 1, size):
            shared = len(set(tops[i].tolist()) & set(tops[j].tolist()))
            overlap[i][j] = overlap[j][i] = shared / k
            union = sorted(set(tops[i].tolist()) | set(tops[j].tolist()))
            a = np.asarray(results[i].scores)[union]
            b = np.asarray(results[j].scores)[union]
            value = float(spearmanr(a, b).statistic) if np.ptp(a) > 0 and np.ptp(b) > 0 else float("nan")
            rank[i][j] = rank[j][i] = value
    return DataAgreement([r.method for r in results], overlap, rank, k)


@dataclass(frozen=True)
class Suspicious:
    method: str
    examples: list[TrainingExampleScore]  # highest self-influence first
    flipped_known: bool  # the training set marks deliberately mislabelled rows
    precision: dict[int, float]  # precision at k of finding flipped rows (when known)
    random_precision: float  # the share of flipped rows: what a random ranking gets
    seconds: float


def suspicious(loaded: LoadedModel, training: TrainingSet, method: str = "tracin", k: int = 50,
               params: dict[str, Any] | None = None, progress: ProgressFn | None = None) -> Suspicious:
    """Training examples ranked by self-influence (examples the rest of the data argues against are often mislabelled)."""
    entry = data_method(method)
    if entry.self_influence is None:
        capable = [m.name for m in data_methods().values() if m.self_influence is not None]
        raise ExplainError(f"'{method}' has no self-influence; use one of {', '.join(capable)}.")
    prepared = prepare(loaded, training, progress)
    started = time.perf_counter()
    values = entry.self_influence(prepared, entry.resolve(params))
    order = np.argsort(-values, kind="stable")
    flipped = training.flipped
    precision = {}
    if flipped:
        hits = np.array([training.examples[r].id in flipped for r in order])
        precision = {cut: float(hits[:cut].mean()) for cut in (10, 50, 100, 200, len(flipped)) if cut <= len(hits)}
    listed = _listed(prepared, [int(r) for r in order[:k]], values, set())
    return Suspicious(method, list(listed), bool(flipped), precision,
                      len(flipped) / len(training.examples) if flipped else float("nan"),
                      time.perf_counter() - started)
