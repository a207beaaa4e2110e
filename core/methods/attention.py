"""Methods that read the model's attention weights: the readout row of a layer/head ([CLS] for a classifier, the
position that predicts the next token for a causal LM), and rollout."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.methods.base import Attribution, ExplainError, Family, Method, Option

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel
    from core.engine.runner import ModelRunner, PreparedText, ProgressFn


def needs_attentions(loaded: LoadedModel) -> str | None:
    config = loaded.config
    if not getattr(config, "num_attention_heads", None):
        return "the model has no attention heads"
    implementation = getattr(config, "_attn_implementation", None)
    if implementation not in (None, "eager"):
        return f"the model runs '{implementation}' attention, which returns no weights (load it with eager attention)"
    return None


def attention_rollout(attentions: np.ndarray, residual_weight: float = 0.5) -> np.ndarray:
    """Abnar & Zuidema (2020) rollout over layers of head-averaged attention (layers, seq, seq).

    Each layer becomes `residual_weight * I + (1 - residual_weight) * A`, rows renormalised,
    and the layers are multiplied from the first up: R = Â_L ... Â_2 Â_1.
    """
    size = attentions.shape[-1]
    rollout = np.eye(size)
    for layer in attentions:
        mixed = residual_weight * np.eye(size) + (1 - residual_weight) * layer
        mixed = mixed / mixed.sum(axis=-1, keepdims=True)
        rollout = mixed @ rollout
    return rollout


def choose_layer_head(weights: np.ndarray, params: dict) -> tuple[int, int]:
    """The `layer` and `head` options checked against weights of shape (layers, heads, seq, seq)."""
    layers, heads = weights.shape[:2]
    layer, head = params["layer"], params["head"]
    if not -layers <= layer < layers:
        raise ExplainError(f"Layer {layer} does not exist: the model has {layers} layers (0..{layers - 1}, or -1 for the last).")
    if not -1 <= head < heads:
        raise ExplainError(f"Head {head} does not exist: the model has {heads} heads (0..{heads - 1}, or -1 for their mean).")
    return layer, head


def _attention(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    weights, _ = runner.attentions(prepared.input_ids)
    layers, heads = weights.shape[:2]
    layer, head = choose_layer_head(weights, params)
    chosen = weights[layer].mean(axis=0) if head == -1 else weights[layer, head]
    return Attribution(token_scores=chosen[prepared.readout].astype(float), diagnostics={
        "layers": int(layers), "heads": int(heads),
        "max_row_sum_error": float(np.abs(weights.sum(-1) - 1).max()),
    })


def _attention_rollout(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    weights, _ = runner.attentions(prepared.input_ids)
    rollout = attention_rollout(weights.mean(axis=1), params["residual_weight"])
    return Attribution(token_scores=rollout[prepared.readout].astype(float), diagnostics={"layers": int(weights.shape[0])})


# The prediction's own pass returns the weights, so the attention methods cost nothing beyond it.
ATTENTION = Method(
    name="attention", title="Attention weights ([CLS] row)", family=Family.ATTENTION, signed=False,
    citation="Jain & Wallace (2019), 'Attention is not explanation'; Wiegreffe & Pinter (2019), "
             "'Attention is not not explanation'.",
    options=(Option("layer", "int", -1, "Layer (-1: the last).", minimum=-64, maximum=63),
             Option("head", "int", -1, "Head (-1: mean of all heads).", minimum=-1, maximum=63)),
    attribute=_attention, cost=lambda p, n_words: 0, compatibility=needs_attentions,
    # Weights at layer l do not read the head or any layer above l: randomising those changes nothing.
    first_affecting_stage=lambda p, n_layers: n_layers - p["layer"] % n_layers,
)

ATTENTION_ROLLOUT = Method(
    name="attention_rollout", title="Attention rollout", family=Family.ATTENTION, signed=False,
    citation="Abnar & Zuidema (2020), 'Quantifying attention flow in transformers', ACL.",
    options=(Option("residual_weight", "float", 0.5, "Weight of the residual identity in each layer.",
                    minimum=0.0, maximum=1.0),),
    attribute=_attention_rollout, cost=lambda p, n_words: 0, compatibility=needs_attentions,
    first_affecting_stage=lambda p, n_layers: 1,  # every layer's attention, never the classifier head
)
