"""One way in: a validated `ExplainRequest`, run by `run_request`, for direct and stored explanations alike.

`explain(runner, text, method, target=None, params=None, progress=None)` validates its inputs
(the text, the method, its options, the target label and the method's compatibility with the
model) into one request and delegates to the method's `attribute`. Every method explains the same
quantity, the model's **probability of the target label** (the predicted label by default), so
that scores are comparable across methods. `core.analyses.store` builds the same request, so both paths
refuse the same inputs with the same messages.
"""

from __future__ import annotations

import json
import time
import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from core.engine.backends import FLOAT32
from core.engine.runner import ModelRunner, PreparedText, ProgressFn
from core.explanation import Explanation, text_sha256, token_word_matrix
from core.methods.base import ExplainError, Family, Method
from core.methods.registry import get_method
from core.params import ParamError, parse_int
from core.words import keyed_text, layer_for

PREDICTED = ""  # the requested target that stands for "the predicted label"


def _no_progress(fraction: float, message: str) -> None:
    pass


@dataclass(frozen=True)
class ExplainRequest:
    """Everything that defines one explanation, validated against one model."""

    prepared: PreparedText
    method: Method
    params: dict[str, Any]  # every option, resolved
    target: str  # a label of the model, or PREDICTED
    model_fingerprint: str

    @classmethod
    def build(cls, runner: ModelRunner, text: str, method: str, target: str | int | None = None,
              params: dict[str, Any] | None = None, prepared: PreparedText | None = None) -> ExplainRequest:
        """Validate everything; `prepared` (the text already prepared by this runner) saves a tokenization
        when one text is explained by several methods."""
        if not text or not text.strip():
            raise ExplainError("The text is empty: give some words to explain.")
        if all(unicodedata.category(c)[0] in "CZ" for c in text):
            raise ExplainError("The text has only control or invisible characters: give some words to explain.")
        spec = get_method(method)
        resolved = spec.resolve(params)
        reason = spec.incompatibility(runner.loaded)
        if reason:
            raise ExplainError(f"{spec.title} cannot explain {runner.loaded.name}: {reason}.")
        label = label_for(runner, target)
        prepared = prepared or runner.prepare(text)
        if not prepared.words:
            raise ExplainError("The text has no words the model can read.")
        return cls(prepared, spec, resolved, label, runner.loaded.fingerprint)

    @property
    def params_key(self) -> str:
        return params_key(self.params)

    @property
    def text_sha256(self) -> str:
        return text_sha256(keyed_text(self.prepared.text))  # the word layer is part of what was computed


def params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def label_for(runner: ModelRunner, target: str | int | None) -> str:
    """The model's label named by `target` (a label, or its index), or PREDICTED for None/""."""
    labels = runner.loaded.labels
    if target is None or target == "":
        return PREDICTED
    if isinstance(target, str) and target in labels:
        return target
    index = label_index(target)
    if index is not None and 0 <= index < len(labels):
        return labels[index]
    raise ExplainError(f"Unknown label '{target}'; the model's labels are {', '.join(labels)}.")


def label_index(target: str | int) -> int | None:
    """A label given by its position ("2" or 2), or None (a name, or digits int() refuses such as "²")."""
    if isinstance(target, int):
        return target
    try:
        return parse_int(str(target), 0, 10_000)
    except ParamError:
        return None


def target_index(runner: ModelRunner, request: ExplainRequest, probabilities: np.ndarray) -> int:
    if request.target == PREDICTED:
        default = runner.loaded.default_output  # a continuation's log-probability, not the largest output
        return int(np.argmax(probabilities)) if default is None else default
    return runner.loaded.labels.index(request.target)


def explain(runner: ModelRunner, text: str, method: str, target: str | int | None = None,
            params: dict[str, Any] | None = None, progress: ProgressFn | None = None) -> Explanation:
    """Explain the model's probability of `target` (default: the predicted label) on `text`."""
    return run_request(runner, ExplainRequest.build(runner, text, method, target, params), progress)


def run_request(runner: ModelRunner, request: ExplainRequest, progress: ProgressFn | None = None) -> Explanation:
    """Run one validated request through the runner; records wall time, passes and evaluations."""
    progress = progress or _no_progress
    spec, prepared, params = request.method, request.prepared, request.params
    started, passes_before, evaluations_before = time.perf_counter(), runner.forward_passes, runner.evaluations
    if spec.family == Family.ATTENTION:
        runner.attentions(prepared.input_ids)  # one pass gives both the prediction and the weights
    probabilities = runner.probabilities([prepared.input_ids])[0]
    target = target_index(runner, request, probabilities)
    torch.manual_seed(params.get("seed", 0))
    attribution = spec.attribute(runner, prepared, target, params, progress)
    matrix = token_word_matrix(prepared.token_offsets, [(s, e) for _, s, e in prepared.words], len(prepared.text))
    if attribution.word_scores is not None:
        word_scores = np.asarray(attribution.word_scores, dtype=float)
        token_scores = attribution.token_scores
        if token_scores is None:
            per_word_tokens = matrix.sum(axis=0)
            token_scores = matrix @ np.divide(word_scores, per_word_tokens, out=np.zeros_like(word_scores),
                                              where=per_word_tokens > 0)
    else:
        token_scores = np.asarray(attribution.token_scores, dtype=float)
        word_scores = token_scores @ matrix
    seconds = time.perf_counter() - started
    progress(1.0, f"{spec.name} done")
    return Explanation(
        text=prepared.text,
        words=tuple(w for w, _, _ in prepared.words),
        offsets=tuple((s, e) for _, s, e in prepared.words),
        scores=tuple(float(s) for s in word_scores),
        tokens=tuple(prepared.tokens),
        token_scores=tuple(float(s) for s in np.asarray(token_scores, dtype=float)),
        method=spec.name,
        target=runner.loaded.labels[target],
        signed=spec.signed,
        probabilities={label: float(p) for label, p in zip(runner.loaded.labels, probabilities, strict=True)},
        seconds=seconds,
        word_layer=layer_for(prepared.text),
        forward_passes=runner.forward_passes - passes_before,
        params=params,
        diagnostics={**attribution.diagnostics, "evaluations": runner.evaluations - evaluations_before},
        truncated_words=prepared.truncated_words,
        backend=runner.backend if spec.family == Family.PERTURBATION else FLOAT32,
    )
