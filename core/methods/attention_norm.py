"""Attention norms (Kobayashi et al. 2020): how much each token's transformed value vector, scaled by its
attention weight, contributes to the [CLS] position's attention output, ||alpha * f(x)||, not alpha alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.engine.modelling import encoder_layer_path
from core.methods.attention import choose_layer_head, needs_attentions
from core.methods.base import Attribution, Family, Method, Option

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel
    from core.engine.runner import ModelRunner, PreparedText, ProgressFn

# Inside one transformer block: (value projection, attention output projection), per architecture family.
PROJECTIONS = (("attention.self.value", "attention.output.dense"),  # BERT, RoBERTa, ELECTRA, XLM-R, MiniLM
               ("attention.v_lin", "attention.out_lin"))  # DistilBERT


def projections(model: torch.nn.Module, layer: int) -> tuple[torch.nn.Linear, torch.nn.Linear] | None:
    path = encoder_layer_path(model)
    if path is None:
        return None
    block = model.get_submodule(path)[layer]
    for value_name, output_name in PROJECTIONS:
        try:
            return block.get_submodule(value_name), block.get_submodule(output_name)
        except AttributeError:
            continue
    return None


def needs_value_projections(loaded: LoadedModel) -> str | None:
    reason = needs_attentions(loaded)
    if reason:
        return reason
    if loaded.architecture is None or projections(loaded.architecture, 0) is None:
        return "its attention blocks are not of a known layout (BERT-like or DistilBERT-like)"
    return None


def weighted_values(runner: ModelRunner, input_ids: list[int], layer: int) -> dict[str, Any]:
    """alpha^h_ij f^h(x_j) for every head, query i and key j at `layer`, from one pass of the full model:
    f^h(x) = (x W_V^h + b_V^h) W_O^h, so that sum over h and j plus the output bias is the attention
    block's output (before the residual and layer norm), returned too for checking."""
    value_module, output_module = projections(runner.model, layer)
    captured: dict[str, torch.Tensor] = {}
    hooks = [value_module.register_forward_hook(lambda m, i, o: captured.__setitem__("values", o.detach())),
             output_module.register_forward_hook(lambda m, i, o: captured.__setitem__("output", o.detach()))]
    try:
        ids = torch.tensor([list(input_ids)], device=runner.device)
        with runner.loaded.lock, torch.inference_mode():
            out = runner.model(input_ids=ids, output_attentions=True)
    finally:
        for hook in hooks:
            hook.remove()
    runner.forward_passes += 1
    runner.evaluations += 1
    weights = out.attentions[layer][0].float()  # (heads, seq, seq)
    heads, seq = weights.shape[0], weights.shape[-1]
    values = captured["values"][0].float().view(seq, heads, -1)  # (seq, heads, head_dim)
    w_out = output_module.weight.detach().float().view(output_module.weight.shape[0], heads, -1)  # (out, heads, head_dim)
    transformed = torch.einsum("shd,ohd->hso", values, w_out)  # f^h(x_j): (heads, seq, out)
    weighted = weights[:, :, :, None] * transformed[:, None, :, :]  # (heads, query, key, out)
    return {"weighted": weighted.cpu().numpy(), "weights": weights.cpu().numpy(),
            "bias": output_module.bias.detach().float().cpu().numpy(),
            "output": captured["output"][0].float().cpu().numpy()}


def _attention_norm(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    n_layers = runner.loaded.config.num_hidden_layers
    heads = runner.loaded.config.num_attention_heads
    layer, head = choose_layer_head(np.zeros((n_layers, heads, 1, 1)), params)
    parts = weighted_values(runner, prepared.input_ids, layer % n_layers)["weighted"][:, prepared.readout]  # (heads, key, out)
    chosen = parts.sum(axis=0) if head == -1 else parts[head]
    return Attribution(token_scores=np.linalg.norm(chosen, axis=-1).astype(float),
                       diagnostics={"layer": int(layer % n_layers), "head": int(head)})


ATTENTION_NORM = Method(
    name="attention_norm", title="Attention norm ||alpha f(x)||", family=Family.ATTENTION, signed=False,
    citation="Kobayashi, Kuribayashi, Yokoi & Inui (2020), 'Attention is not only a weight: analyzing "
             "transformers with vector norms', EMNLP.",
    options=(Option("layer", "int", -1, "Layer (-1: the last).", minimum=-64, maximum=63),
             Option("head", "int", -1, "Head (-1: all heads together).", minimum=-1, maximum=63)),
    attribute=_attention_norm, cost=lambda p, n_words: 1, compatibility=needs_value_projections,
    # Reads layer l's attention, value and output projections only: stages above it change nothing.
    first_affecting_stage=lambda p, n_layers: n_layers - p["layer"] % n_layers,
)
