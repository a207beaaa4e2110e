"""Attention seen whole: every layer and head of one input, ready for the layer x head grid and the head view.

One forward pass of the full model (the runner's attention cache answers repeats). Tokens are the
model's own word pieces, in order; the query row defaults to the first token ([CLS]), which is the
position BERT-style classifiers read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.engine.runner import ModelRunner
from core.methods.attention import needs_attentions
from core.methods.base import ExplainError


@dataclass(frozen=True)
class AttentionView:
    tokens: tuple[str, ...]
    weights: np.ndarray  # (layers, heads, seq, seq), each row sums to one
    probabilities: dict[str, float]

    @property
    def layers(self) -> int:
        return int(self.weights.shape[0])

    @property
    def heads(self) -> int:
        return int(self.weights.shape[1])

    def check(self, layer: int, head: int, query: int) -> None:
        if not 0 <= layer < self.layers:
            raise ExplainError(f"Layer {layer} does not exist: the model has layers 0..{self.layers - 1}.")
        if not 0 <= head < self.heads:
            raise ExplainError(f"Head {head} does not exist: the model has heads 0..{self.heads - 1}.")
        if not 0 <= query < len(self.tokens):
            raise ExplainError(f"Token {query} does not exist: the input has tokens 0..{len(self.tokens) - 1}.")


def attention_view(runner: ModelRunner, text: str) -> AttentionView:
    reason = needs_attentions(runner.loaded)
    if reason:
        raise ExplainError(f"No attention to show for {runner.loaded.name}: {reason}.")
    prepared = runner.prepare(text)
    if not prepared.words:
        raise ExplainError("The text has no words the model can read.")
    weights, probabilities = runner.attentions(prepared.input_ids)
    return AttentionView(tuple(prepared.tokens), weights,
                         {label: float(p) for label, p in zip(runner.loaded.labels, probabilities, strict=True)})


VIEW_KIND = "attention-view"


def _view_to_dict(view: AttentionView) -> dict[str, Any]:
    """Weights as zlib-compressed float16 (plenty for drawing; a tenth of the JSON) with their shape."""
    import base64
    import zlib

    packed = zlib.compress(np.ascontiguousarray(view.weights, dtype=np.float16).tobytes())
    return {"tokens": list(view.tokens), "shape": list(view.weights.shape), "probabilities": view.probabilities,
            "weights": base64.b64encode(packed).decode("ascii")}


def _view_from_dict(data: dict[str, Any]) -> AttentionView:
    import base64
    import zlib

    raw = zlib.decompress(base64.b64decode(data["weights"]))
    weights = np.frombuffer(raw, dtype=np.float16).astype(np.float32).reshape(data["shape"])
    return AttentionView(tuple(data["tokens"]), weights, dict(data["probabilities"]))


def stored_attention_view(engine, runner: ModelRunner, text: str, *, only_stored: bool = False) -> AttentionView | None:
    """`attention_view` through the store (keyed by weights and text): a page draws every layer and head with
    no model pass once a worker has computed it; None when `only_stored` and nothing is stored."""
    from core.storage.records import stored_or_computed

    key = json.dumps({"text": text}, ensure_ascii=False)
    # Computed, it is rounded as stored, so a reader and the writer see the same view.
    return stored_or_computed(engine, VIEW_KIND, runner.loaded, key,
                              lambda: _view_from_dict(_view_to_dict(attention_view(runner, text))),
                              encode=_view_to_dict, decode=_view_from_dict, only_stored=only_stored)
