"""Attention weighted by its gradient: attention x gradient at one layer, and Chefer et al.'s
gradient-weighted rollout over every layer."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from core.methods.attention import choose_layer_head, needs_attentions
from core.methods.base import Attribution, Family, Method, Option

if TYPE_CHECKING:
    from core.engine.runner import ModelRunner, PreparedText, ProgressFn


def gradient_weighted_rollout(weights: np.ndarray, gradients: np.ndarray) -> np.ndarray:
    """Chefer, Gur & Wolf (2021), self-attention rule: R = I, then for each layer from the first,
    A_bar = mean over heads of (grad A * A) clipped at zero, and R = R + A_bar R. Shapes (layers, heads, seq, seq)."""
    size = weights.shape[-1]
    relevance = np.eye(size)
    for layer_weights, layer_gradients in zip(weights, gradients, strict=True):
        mixed = np.clip(layer_gradients * layer_weights, 0, None).mean(axis=0)
        relevance = relevance + mixed @ relevance
    return relevance


def _attention_x_gradient(runner: ModelRunner, prepared: PreparedText, target: int, params: dict,
                          progress: ProgressFn) -> Attribution:
    weights, gradients = runner.attention_gradients(prepared.input_ids, target)
    layer, head = choose_layer_head(weights, params)
    product = weights[layer] * gradients[layer]
    chosen = product.mean(axis=0) if head == -1 else product[head]
    return Attribution(token_scores=chosen[prepared.readout].astype(float), diagnostics={"layers": int(weights.shape[0])})


def _gradient_rollout(runner: ModelRunner, prepared: PreparedText, target: int, params: dict,
                      progress: ProgressFn) -> Attribution:
    weights, gradients = runner.attention_gradients(prepared.input_ids, target)
    relevance = gradient_weighted_rollout(weights, gradients)
    return Attribution(token_scores=relevance[prepared.readout].astype(float), diagnostics={"layers": int(weights.shape[0])})


LAYER = Option("layer", "int", -1, "Layer (-1: the last).", minimum=-64, maximum=63)
HEAD = Option("head", "int", -1, "Head (-1: mean of all heads).", minimum=-1, maximum=63)

ATTENTION_X_GRADIENT = Method(
    name="attention_x_gradient", title="Attention x gradient", family=Family.ATTENTION, signed=True,
    citation="Chefer, Gur & Wolf (2021), 'Generic attention-model explainability for interpreting bi-modal "
             "and encoder-decoder transformers', ICCV (the per-layer term A * dp/dA).",
    options=(LAYER, HEAD), attribute=_attention_x_gradient, cost=lambda p, n_words: 2,
    compatibility=needs_attentions,
)

GRADIENT_ROLLOUT = Method(
    name="gradient_rollout", title="Gradient-weighted rollout (Chefer)", family=Family.ATTENTION, signed=False,
    citation="Chefer, Gur & Wolf (2021), 'Generic attention-model explainability for interpreting bi-modal "
             "and encoder-decoder transformers', ICCV.",
    options=(), attribute=_gradient_rollout, cost=lambda p, n_words: 2, compatibility=needs_attentions,
)
