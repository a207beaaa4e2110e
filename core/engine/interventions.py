"""Attention interventions: run the model with one layer's (or one head's) attention weights replaced,
or with heads silenced per example (head masks).

The replacement is an attention function registered with transformers' `AttentionInterface`. What
to replace travels with each call as a keyword argument (transformers passes forward kwargs down to
the attention function), so concurrent sessions and models never share intervention state. Only the
runner calls this, under the model's lock (`ModelRunner.intervened`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from transformers import AttentionInterface

IMPLEMENTATION = "rashomon_intervention"
KWARG = "rashomon_intervention"
HEAD_KWARG = "rashomon_head_mask"
MODES = ("uniform", "permuted")


@dataclass(frozen=True)
class AttentionIntervention:
    """Replace the attention weights at `layer` (one `head`, or all heads when None)."""

    layer: int
    mode: str = "uniform"  # "uniform" over the allowed keys, or "permuted" over key positions
    seed: int = 0
    head: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Unknown intervention mode '{self.mode}'; choose from {', '.join(MODES)}.")


@dataclass(frozen=True)
class HeadMask:
    """Per-example head multipliers, shape (batch, layers, heads): each row of a batch can silence other heads."""

    multipliers: torch.Tensor


def _replace(weights: torch.Tensor, attention_mask: torch.Tensor | None, how: AttentionIntervention) -> torch.Tensor:
    if how.mode == "uniform":
        allowed = torch.ones_like(weights) if attention_mask is None else (attention_mask >= -1).to(weights.dtype).expand_as(weights)
        replaced = allowed / allowed.sum(-1, keepdim=True)
    else:  # permute each row's weights over the key positions, the same permutation for every head
        generator = torch.Generator().manual_seed(how.seed)
        order = torch.randperm(weights.shape[-1], generator=generator).to(weights.device)
        replaced = weights[..., order]
    if how.head is None:
        return replaced
    out = weights.clone()
    out[:, how.head] = replaced[:, how.head]
    return out


def _intervened_attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                          attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0,
                          **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Eager attention, except at the layer named by this call's intervention."""
    scaling = scaling if scaling is not None else query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = torch.softmax(scores, dim=-1)
    how: AttentionIntervention | None = kwargs.get(KWARG)
    if how is not None and getattr(module, "layer_idx", None) == how.layer:
        weights = _replace(weights, attention_mask, how)
    head_mask: HeadMask | None = kwargs.get(HEAD_KWARG)
    if head_mask is not None:
        weights = weights * head_mask.multipliers[:, module.layer_idx, :, None, None].to(weights.dtype)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


AttentionInterface.register(IMPLEMENTATION, _intervened_attention)


@contextmanager
def intervention_attention(model: Any) -> Iterator[None]:
    """Route `model`'s attention through the intervention function for the calls inside (hold the model's lock)."""
    previous = model.config._attn_implementation
    model.set_attn_implementation(IMPLEMENTATION)
    try:
        yield
    finally:
        model.set_attn_implementation(previous)
