"""TracIn (Pruthi et al. 2020): how much training on an example lowered the loss on the input,
summed over the training checkpoints, restricted to the final linear layer.

    TracInCP(z, x) = sum_c lr_c * grad L(w_c, z) . grad L(w_c, x)

For the final layer the per-example gradient is (p - onehot(y)) outer [a, 1], so the dot product
factorises into (g_z . g_x) * (a_z . a_x + 1): exact and fast (Captum's TracInCPFast uses the same
identity). With `projection` > 0 the gradients are randomly projected to that many dimensions
(Johnson-Lindenstrauss, as TracInCPFastRandProj), trading exactness for a smaller gradient store.
A model without recorded checkpoints uses its final weights only (learning rate 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.analyses.training_data.base import DataMethod
from core.analyses.training_data.features import CheckpointState, Prepared, Query
from core.methods.base import SEED, Option

OPTIONS = (
    Option("projection", "int", 0, "Random projection size for the gradients (0: exact gradients).", minimum=0,
           maximum=8192),
    SEED,
)


def with_bias(activations: np.ndarray) -> np.ndarray:
    return np.concatenate([activations, np.ones((*activations.shape[:-1], 1), dtype=activations.dtype)], axis=-1)


def flat_gradients(loss_gradients: np.ndarray, activations: np.ndarray) -> np.ndarray:
    """Per-example final-layer gradients, flattened as (weight rows, then bias): shape (n, labels * (d + 1))."""
    return (loss_gradients[:, :, None] * with_bias(activations)[:, None, :]).reshape(len(loss_gradients), -1)


def _projection(dimensions: int, size: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((dimensions, size)) / np.sqrt(size)).astype(np.float32)


def _projected(prepared: Prepared, size: int, seed: int) -> list[np.ndarray]:
    def build() -> dict[str, np.ndarray]:
        arrays = {}
        for c, state in enumerate(prepared.states):
            gradients = state.loss_gradients(prepared.targets)
            matrix = _projection(gradients.shape[1] * (state.activations.shape[1] + 1), size, seed)
            chunks = [flat_gradients(gradients[s : s + 8192], state.activations[s : s + 8192]).astype(np.float32) @ matrix
                      for s in range(0, len(gradients), 8192)]
            arrays[f"c{c}"] = np.concatenate(chunks)
        return arrays

    stored = prepared.extra(f"tracin-projection-{size}-{seed}", build)
    return [stored[f"c{c}"] for c in range(len(prepared.states))]


def _query_gradient(state_probabilities: np.ndarray, target: int) -> np.ndarray:
    gradient = state_probabilities.astype(np.float64).copy()
    gradient[target] -= 1.0
    return gradient


def checkpoint_scores(state: CheckpointState, targets: np.ndarray, activation: np.ndarray, probabilities: np.ndarray,
                      target: int) -> np.ndarray:
    """grad L(z) . grad L(x) at one checkpoint for every training example z (exact)."""
    g = _query_gradient(probabilities, target)
    # float32 products: converting the stored representations to float64 per query costs more than it buys.
    similarity = (state.activations @ activation.astype(np.float32)).astype(np.float64)
    return (state.loss_gradients(targets) @ g) * (similarity + 1.0)


def score(prepared: Prepared, query: Query, target: int, params: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
    total = np.zeros(len(prepared.targets))
    projected = _projected(prepared, params["projection"], params["seed"]) if params["projection"] else None
    for c, state in enumerate(prepared.states):
        if projected is None:
            part = checkpoint_scores(state, prepared.targets, query.activations[c], query.probabilities[c], target)
        else:
            g = _query_gradient(query.probabilities[c], target)
            vector = flat_gradients(g[None, :], query.activations[c][None, :].astype(np.float64))[0]
            matrix = _projection(len(vector), params["projection"], params["seed"])
            part = projected[c].astype(np.float64) @ (vector @ matrix)
        total += state.learning_rate * part
    diagnostics = {"checkpoints": len(prepared.states),
                   "learning_rates": [s.learning_rate for s in prepared.states],
                   "gradients": "exact final-layer" if not params["projection"] else f"projected to {params['projection']}"}
    if prepared.training.checkpoint_note:
        diagnostics["note"] = prepared.training.checkpoint_note
    return total, diagnostics


def self_influence(prepared: Prepared, params: dict[str, Any]) -> np.ndarray:
    """TracIn(z, z): sum_c lr_c |g_z|^2 (|a_z|^2 + 1); large for examples the model fights (often mislabelled)."""
    total = np.zeros(len(prepared.targets))
    for state in prepared.states:
        gradients = state.loss_gradients(prepared.targets)
        activations = state.activations.astype(np.float64)
        total += state.learning_rate * (gradients**2).sum(1) * ((activations**2).sum(1) + 1.0)
    return total


METHOD = DataMethod(
    name="tracin",
    title="TracIn",
    citation="Pruthi et al. 2020, Estimating Training Data Influence by Tracing Gradient Descent (NeurIPS)",
    summary="Sum over training checkpoints of learning rate x (training example's loss gradient . input's loss "
            "gradient), final layer.",
    options=OPTIONS,
    score=score,
    self_influence=self_influence,
    uses_checkpoints=True,
)
