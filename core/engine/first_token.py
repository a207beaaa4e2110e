"""A shorter forward pass for classifiers that read only the first token.

BERT-style sequence classifiers (BERT, RoBERTa, ELECTRA, XLM-R, MiniLM...) pool the last layer's
output at position 0 ([CLS] / <s>) and ignore every other position. The last layer still needs
keys and values at every position, but its query, attention output, residual and feed-forward
block are needed at position 0 only. Skipping them removes about 5/6 of the last layer's
matrix work: for the 6-layer default model, 14% of a forward pass. The arithmetic is the same
(same weights, same order of operations per position), so probabilities and gradients agree with
the full model to float rounding (measured: 4e-7 on the default model's logits).

`first_token_model` builds a view of the model that shares its weights and differs only in the
last layer, and checks it against the full model on two padded probe inputs; any architecture it
does not recognise, or whose head reads other positions, gets None and the full forward pass.
The model itself is never modified: attention methods and interventions need the full last layer.
"""

from __future__ import annotations

import copy
import threading
import weakref
from typing import Any

import torch
import torch.nn.functional as F

from core.engine.modelling import encoder_layer_path

TOLERANCE = 1e-4  # logits; float rounding differences are ~1e-6
# One view (or None) per model object, so new runners over a loaded model do not repeat the check.
# The view shares the model's modules, so it stays right when the weights change in place.
_views: weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module | None] = weakref.WeakKeyDictionary()
_views_lock = threading.Lock()


class FirstTokenLayer(torch.nn.Module):
    """A BERT-style transformer layer that returns its output at position 0 only, shape (batch, 1, hidden)."""

    def __init__(self, layer: torch.nn.Module) -> None:
        super().__init__()
        self.layer = layer

    @staticmethod
    def supports(layer: torch.nn.Module) -> bool:
        attention = getattr(layer, "attention", None)
        projections = getattr(attention, "self", None)
        return (projections is not None and hasattr(attention, "output") and hasattr(layer, "feed_forward_chunk")
                and all(isinstance(getattr(projections, name, None), torch.nn.Linear) for name in ("query", "key", "value"))
                and all(hasattr(projections, name) for name in ("num_attention_heads", "attention_head_size", "scaling"))
                and not getattr(layer, "add_cross_attention", False) and not getattr(layer, "is_decoder", False))

    def forward(self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None,
                *args: Any, **kwargs: Any) -> torch.Tensor:
        projections = self.layer.attention.self
        batch, length, _ = hidden_states.shape
        heads, size = projections.num_attention_heads, projections.attention_head_size
        first = hidden_states[:, :1]
        query = projections.query(first).view(batch, 1, heads, size).transpose(1, 2)
        key = projections.key(hidden_states).view(batch, length, heads, size).transpose(1, 2)
        value = projections.value(hidden_states).view(batch, length, heads, size).transpose(1, 2)
        # The layer receives the model's own mask, (batch, 1, queries, keys) or (batch, 1, 1, keys),
        # additive or boolean; the query row of position 0 is all this layer needs.
        mask = None if attention_mask is None else attention_mask[..., :1, :]
        attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, scale=projections.scaling)
        attended = attended.transpose(1, 2).reshape(batch, 1, heads * size)
        return self.layer.feed_forward_chunk(self.layer.attention.output(attended, first))


def _with_module(root: torch.nn.Module, path: str, replacement: torch.nn.Module) -> torch.nn.Module:
    """A shallow copy of `root` in which the module at `path` is `replacement`; every other module is shared."""
    head, _, rest = path.partition(".")
    clone = copy.copy(root)
    clone._modules = dict(root._modules)
    clone._modules[head] = replacement if not rest else _with_module(root._modules[head], rest, replacement)
    return clone


def shortcut_known(model: torch.nn.Module) -> bool | None:
    """Whether the shortcut serves this model, if that has been checked in this process; None if not yet
    (checking costs model passes: a page asks this instead)."""
    with _views_lock:
        return _views[model] is not None if model in _views else None


def first_token_model(model: torch.nn.Module) -> torch.nn.Module | None:
    """The model with a first-token-only last layer, or None when that would not give the same logits."""
    with _views_lock:
        if model not in _views:
            _views[model] = _build(model)
        return _views[model]


def _build(model: torch.nn.Module) -> torch.nn.Module | None:
    path = encoder_layer_path(model)
    if path is None:
        return None
    layers = model.get_submodule(path)
    if not isinstance(layers, torch.nn.ModuleList) or not layers or not FirstTokenLayer.supports(layers[-1]):
        return None
    shortened = torch.nn.ModuleList([*list(layers)[:-1], FirstTokenLayer(layers[-1])])
    candidate = _with_module(model, path, shortened)
    return candidate if _agrees(model, candidate) else None


def _agrees(model: torch.nn.Module, candidate: torch.nn.Module) -> bool:
    """Same logits on two probe inputs of different lengths (so one is padded)?"""
    device = next(model.parameters()).device
    vocabulary = int(getattr(model.config, "vocab_size", 100) or 100)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(min(5, vocabulary - 1), vocabulary, (2, 9), generator=generator).to(device)
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    try:
        with torch.inference_mode():
            full = model(input_ids=ids, attention_mask=mask).logits
            short = candidate(input_ids=ids, attention_mask=mask).logits
    except Exception:  # an architecture this layer does not fit: fall back to the full model
        return False
    return full.shape == short.shape and bool(torch.allclose(full, short, atol=TOLERANCE, rtol=TOLERANCE))
