"""KernelSHAP over words: Shapley values as a Shapley-kernel-weighted linear regression on word masks.

Two samplers, one regression target:
- `lime` (default): the very perturbations LIME draws with the same seed and sample count, read
  through the runner's cache, so when both methods run the model answers them once (the same model
  queries, two regressions; the saving shows as evaluations minus forward passes). Each distinct
  mask gets its Shapley kernel weight; the full and empty masks are constraints, so the scores add
  up exactly to f(x) - f(all words hidden), and when every mask is present the result is the exact
  Shapley values.
- `kernel`: Captum's `KernelShap`, which samples masks from the Shapley kernel itself.
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.explanation import token_word_matrix
from core.methods.base import SEED, Attribution, Family, Method, Option, Speed
from core.methods.convergence import ADAPTIVE, TOLERANCE, TOP_K
from core.methods.perturbation import (
    Neighbourhood,
    lime_distinct_samples,
    lime_rounds,
    needs_mask_token,
    sample_until_stable,
)

if TYPE_CHECKING:
    from core.engine.runner import ModelRunner, PreparedText, ProgressFn


def shapley_kernel(n_features: int, sizes: np.ndarray) -> np.ndarray:
    """Lundberg & Lee's kernel (M - 1) / (C(M, |z|) |z| (M - |z|)) for masks with |z| words kept."""
    return np.array([(n_features - 1) / (math.comb(n_features, int(k)) * k * (n_features - k)) for k in sizes])


def constrained_shapley_regression(masks: np.ndarray, values: np.ndarray, full: float, empty: float) -> np.ndarray:
    """Kernel-weighted least squares of `values` on distinct binary `masks` (1 = word kept), with the
    efficiency constraint sum(phi) = full - empty imposed exactly (the last feature is eliminated)."""
    masks = np.asarray(masks, dtype=float)
    n_features = masks.shape[1]
    if n_features == 1:
        return np.array([full - empty])
    masks, first = np.unique(masks, axis=0, return_index=True)
    values = np.asarray(values, dtype=float)[first]
    sizes = masks.sum(axis=1)
    inner = (sizes > 0) & (sizes < n_features)
    masks, values, sizes = masks[inner], values[inner], sizes[inner]
    total = full - empty
    if len(masks) == 0:
        return np.full(n_features, total / n_features)
    weights = np.sqrt(shapley_kernel(n_features, sizes))
    design = (masks[:, :-1] - masks[:, -1:]) * weights[:, None]
    target = (values - empty - masks[:, -1] * total) * weights
    head, *_ = np.linalg.lstsq(design, target, rcond=None)
    return np.append(head, total - head.sum())


def _kernel_from_lime_samples(runner: ModelRunner, prepared: PreparedText, target: int, params: dict,
                              progress: ProgressFn) -> Attribution:
    rounds = lime_rounds(runner, prepared, params, progress)  # kernel width only weighs LIME's fit, not its masks
    first = next(rounds)
    n_words = first.indexed.num_words()
    empty_text = first.indexed.inverse_removing(list(range(n_words)))
    empty = float(runner.probabilities_for_texts([empty_text])[0, target])
    full = float(first.probabilities[0, target])

    def fit(hood: Neighbourhood, rows: np.ndarray) -> np.ndarray:
        return constrained_shapley_regression(hood.data[rows], hood.probabilities[rows, target], full, empty)

    hood, convergence = sample_until_stable(itertools.chain([first], rounds), fit, params)
    scores = fit(hood, np.arange(len(hood.data)))
    distinct = len({tuple(row) for row in hood.data.astype(int)})
    return Attribution(word_scores=scores, diagnostics={
        "base_value": empty, "additivity_gap": float(empty + scores.sum() - full),
        "samples": int(len(hood.data)), "distinct_masks": distinct,
        "exact": distinct + (0 if (hood.data.sum(axis=1) == 0).any() else 1) >= 2 ** n_words,
        **(convergence.to_diagnostics() if convergence else {}),
    })


def _kernel_from_captum(runner: ModelRunner, prepared: PreparedText, target: int, params: dict,
                        progress: ProgressFn) -> Attribution:
    from captum.attr import KernelShap

    matrix = token_word_matrix(prepared.token_offsets, [(s, e) for _, s, e in prepared.words], len(prepared.text))
    n_words = len(prepared.words)
    groups = np.where(matrix.any(axis=1), matrix.argmax(axis=1), n_words)
    inputs = torch.tensor([prepared.input_ids], dtype=torch.long)
    baselines = torch.tensor([[i if special else runner.mask_id
                               for i, special in zip(prepared.input_ids, prepared.special_mask, strict=True)]])

    def forward(ids: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(runner.probabilities(ids.tolist(), progress)[:, target])

    torch.manual_seed(params["seed"])
    token_scores = KernelShap(forward).attribute(
        inputs, baselines=baselines, feature_mask=torch.tensor(groups).unsqueeze(0),
        n_samples=params["num_samples"], perturbations_per_eval=runner.batch_size)[0].numpy().astype(float)
    word_scores = np.zeros(n_words)
    for token, group in enumerate(groups):
        if group < n_words:
            word_scores[group] = token_scores[token]
    empty = float(runner.probabilities([baselines[0].tolist()])[0, target])
    full = float(runner.probabilities([prepared.input_ids])[0, target])
    return Attribution(word_scores=word_scores, diagnostics={
        "base_value": empty, "additivity_gap": float(empty + word_scores.sum() - full),
        "samples": params["num_samples"]})


def _kernel_shap(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    if params["sampling"] == "lime":
        return _kernel_from_lime_samples(runner, prepared, target, params, progress)
    return _kernel_from_captum(runner, prepared, target, params, progress)


def _cost(params: dict[str, Any], n_words: int) -> float:
    if params["sampling"] == "lime":
        return lime_distinct_samples(params["num_samples"], n_words) + 1
    return min(float(params["num_samples"]), 2.0 ** n_words)


def _shares_queries(params: dict[str, Any], others: dict[str, dict[str, Any]]) -> bool:
    """LIME with the same seed, sample count and rounds draws these very perturbations: they come from the
    cache (when both stop adaptively, the later stopper's extra rounds are new queries)."""
    lime = others.get("lime")
    return (params["sampling"] == "lime" and lime is not None
            and (lime["seed"], lime["num_samples"], lime["adaptive"])
            == (params["seed"], params["num_samples"], params["adaptive"]))


KERNEL_SHAP = Method(
    name="kernel_shap", title="KernelSHAP", family=Family.PERTURBATION, signed=True, speed=Speed.SLOW, random=True,
    citation="Lundberg & Lee (2017), 'A unified approach to interpreting model predictions', NeurIPS.",
    options=(Option("num_samples", "int", 1000, "Perturbed samples (the cap when adaptive).", minimum=10, maximum=20000),
             Option("sampling", "str", "lime", "Masks: LIME's own (shared queries when LIME runs with the same "
                    "seed and samples) or drawn from the Shapley kernel (Captum; always the full count).",
                    choices=("lime", "kernel")),
             ADAPTIVE, TOLERANCE, TOP_K, SEED),
    attribute=_kernel_shap, cost=_cost, shares_queries=_shares_queries, compatibility=needs_mask_token,
    stability_variants=tuple({"seed": s, "num_samples": n} for s, n in ((0, 500), (1, 500), (2, 500), (0, 250), (0, 1000))),
    quick_stability_variants=tuple({"seed": s, "num_samples": n} for s, n in ((0, 200), (1, 200), (2, 200), (0, 400))),
)
