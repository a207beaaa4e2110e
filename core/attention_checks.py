"""The "attention is not explanation" debate, tested on one input.

Jain & Wallace (2019) ask two things of attention as explanation: it should correlate with
gradient- and erasure-based importance, and changing it should change the prediction.
Wiegreffe & Pinter (2019) answer that the tests must be run per model and input. Both are run
here: rank correlations of attention (raw, rollout) with gradient and occlusion scores, and an
intervention that replaces one layer's attention weights with uniform or permuted weights
(through transformers' AttentionInterface) and reports how far the prediction moves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import spearmanr
from transformers import AttentionInterface

from core.explanation import Explanation
from core.runner import ModelRunner

ATTENTION_METHODS = ("attention", "attention_rollout")
REFERENCE_METHODS = ("integrated_gradients", "input_x_gradient", "saliency", "occlusion")
_INTERVENTION = "rashomon_intervention"
_state: dict = {"layer": None, "mode": "uniform", "seed": 0}


def _intervened_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention, except at the chosen layer where the weights are replaced."""
    scaling = scaling if scaling is not None else query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1)
    if getattr(module, "layer_idx", None) == _state["layer"]:
        if _state["mode"] == "uniform":
            allowed = torch.ones_like(weights) if attention_mask is None else (attention_mask >= -1).float().expand_as(weights)
            weights = allowed / allowed.sum(-1, keepdim=True)
        else:  # permute each row's weights over the key positions, the same permutation for every head
            generator = torch.Generator().manual_seed(_state["seed"])
            order = torch.randperm(weights.shape[-1], generator=generator).to(weights.device)
            weights = weights[..., order]
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


AttentionInterface.register(_INTERVENTION, _intervened_attention)


@contextmanager
def intervened(model, layer: int, mode: str, seed: int = 0) -> Iterator[None]:
    """Run `model` with layer `layer`'s attention replaced ('uniform' or 'permuted')."""
    previous = model.config._attn_implementation
    _state.update(layer=layer, mode=mode, seed=seed)
    model.set_attn_implementation(_INTERVENTION)
    try:
        yield
    finally:
        model.set_attn_implementation(previous)
        _state["layer"] = None


@dataclass(frozen=True)
class Intervention:
    layer: int
    mode: str
    probabilities: dict[str, float]
    target_change: float  # p_new(target) - p(target)
    total_variation: float  # half the L1 distance between the two distributions
    label_flipped: bool


def intervene(runner: ModelRunner, text: str, target: str, layers: Sequence[int] | None = None,
              modes: Sequence[str] = ("uniform", "permuted")) -> list[Intervention]:
    prepared = runner.prepare(text)
    labels = runner.loaded.labels
    t = labels.index(target)
    base = runner.probabilities([prepared.input_ids])[0]
    n_layers = runner.model.config.num_hidden_layers
    layers = list(range(n_layers)) if layers is None else [layer % n_layers for layer in layers]
    ids = torch.tensor([prepared.input_ids], device=runner.device)
    results = []
    for layer in layers:
        for mode in modes:
            with runner.loaded.lock, intervened(runner.model, layer, mode), torch.inference_mode():
                probs = torch.softmax(runner.model(input_ids=ids).logits[0].float(), -1).cpu().numpy()
            runner.forward_passes += 1
            results.append(Intervention(
                layer=layer, mode=mode, probabilities={lab: float(p) for lab, p in zip(labels, probs, strict=True)},
                target_change=float(probs[t] - base[t]), total_variation=float(0.5 * np.abs(probs - base).sum()),
                label_flipped=int(np.argmax(probs)) != int(np.argmax(base)),
            ))
    return results


@dataclass(frozen=True)
class AttentionCorrelation:
    attention_method: str
    reference_method: str
    spearman: float


def correlations(explanations: Sequence[Explanation]) -> list[AttentionCorrelation]:
    """Spearman correlation of |score| between each attention method and each reference method present."""
    by_name = {e.method: e for e in explanations}
    out = []
    for a in ATTENTION_METHODS:
        for r in REFERENCE_METHODS:
            if a in by_name and r in by_name:
                x, y = np.abs(by_name[a].scores), np.abs(by_name[r].scores)
                rho = math.nan if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0 else float(spearmanr(x, y)[0])
                out.append(AttentionCorrelation(a, r, rho))
    return out
