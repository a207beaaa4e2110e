"""GradientSHAP on the word embeddings (Captum's `GradientShap`): expected gradients over baselines."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from core.methods.base import SEED, Attribution, Family, Method, Option
from core.methods.gradient import baseline_ids, needs_input_embeddings

if TYPE_CHECKING:
    from core.engine.runner import ModelRunner, PreparedText, ProgressFn

BASELINE_SETS = {"pad+mask": ("pad", "mask"), "pad+mask+zero": ("pad", "mask", "zero"), "pad": ("pad",)}


def _gradient_shap(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    from captum.attr import GradientShap

    embeds = runner.embed(prepared.input_ids)
    mask = torch.ones((1, len(prepared.input_ids)), dtype=torch.long, device=runner.device)
    kinds = BASELINE_SETS[params["baselines"]]
    baselines = torch.cat([torch.zeros_like(embeds) if kind == "zero" else runner.embed(baseline_ids(runner, prepared, kind))
                           for kind in kinds])

    def forward(inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return runner.forward_embeddings(inputs_embeds, attention_mask)[:, target]

    # Captum draws the baselines and the points between them with numpy's global generator.
    np.random.seed(params["seed"])
    torch.manual_seed(params["seed"])
    attributions, deltas = GradientShap(forward).attribute(
        embeds, baselines=baselines, additional_forward_args=(mask,), n_samples=params["n_samples"],
        stdevs=params["stdevs"], return_convergence_delta=True)
    token_scores = attributions[0].sum(-1).detach().cpu().numpy().astype(float)
    # GradientSHAP's completeness holds in expectation over baselines (Lundberg & Lee 2017):
    # the mean per-sample gap shrinks with more samples; report it with its spread.
    return Attribution(token_scores=token_scores, diagnostics={
        "mean_convergence_delta": float(deltas.mean()),
        "std_convergence_delta": float(deltas.std()) if deltas.numel() > 1 else 0.0,
        "baselines": list(kinds),
    })


GRADIENT_SHAP = Method(
    name="gradient_shap", title="GradientSHAP", family=Family.GRADIENT, signed=True, random=True,
    citation="Lundberg & Lee (2017), 'A unified approach to interpreting model predictions', NeurIPS; "
             "Erion et al. (2021), 'Improving performance of deep learning models with axiomatic "
             "attribution priors and expected gradients'.",
    options=(Option("n_samples", "int", 20, "Random points between a baseline and the input.", minimum=1, maximum=2000),
             Option("baselines", "str", "pad+mask", "Baselines sampled uniformly.", choices=tuple(BASELINE_SETS)),
             Option("stdevs", "float", 0.0, "Gaussian noise added to the input embeddings.", minimum=0.0, maximum=10.0),
             SEED),
    attribute=_gradient_shap, cost=lambda p, n_words: 3 * p["n_samples"],  # forward + backward per sample, f at the sampled points for the gap
    compatibility=needs_input_embeddings,
    stability_variants=tuple({"seed": s, "n_samples": n} for s, n in ((0, 20), (1, 20), (2, 20), (0, 50))),
    quick_stability_variants=tuple({"seed": s} for s in (0, 1, 2)),
)
