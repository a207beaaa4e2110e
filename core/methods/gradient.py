"""Methods that read the gradient of the target probability with respect to the word embeddings (Captum)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from core.methods.base import Attribution, Family, Method, Option

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel
    from core.engine.runner import ModelRunner, PreparedText, ProgressFn


def needs_input_embeddings(loaded: LoadedModel) -> str | None:
    getter = getattr(loaded.architecture, "get_input_embeddings", None)
    if getter is None or getter() is None:
        return "the model exposes no input embeddings to differentiate"
    return None


def _embedding_setup(runner: ModelRunner, prepared: PreparedText, target: int):
    embeds = runner.embed(prepared.input_ids)
    mask = torch.ones((1, len(prepared.input_ids)), dtype=torch.long, device=runner.device)

    def forward(inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return runner.forward_embeddings(inputs_embeds, attention_mask)[:, target]

    return embeds, mask, forward


def baseline_ids(runner: ModelRunner, prepared: PreparedText, kind: str) -> list[int]:
    """The input with every word token replaced by pad or mask tokens; special tokens stay, so the
    baseline differs from the input only in the words."""
    fill = runner.pad_id if kind == "pad" else runner.mask_id
    return [i if special else fill for i, special in zip(prepared.input_ids, prepared.special_mask, strict=True)]


def _integrated_gradients(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    from captum.attr import IntegratedGradients

    embeds, mask, forward = _embedding_setup(runner, prepared, target)
    ids = None if params["baseline"] == "zero" else baseline_ids(runner, prepared, params["baseline"])
    baseline = torch.zeros_like(embeds) if ids is None else runner.embed(ids)
    # Completeness check (Sundararajan et al., 2017): sum of attributions vs f(x) - f(baseline).
    # Captum's convergence delta would run both end points again; f(x) is the runner's cached
    # prediction and an id baseline is a cacheable input, so this costs at most one pass.
    f_input = float(runner.probabilities([prepared.input_ids])[0, target])
    if ids is None:
        with torch.no_grad():
            f_baseline = float(forward(baseline, mask)[0])
    else:
        f_baseline = float(runner.probabilities([ids])[0, target])
    gap = max(abs(f_input - f_baseline), 1e-12)

    def integrate(steps: int) -> np.ndarray:
        progress(0.0, f"{steps} interpolation steps")
        attributions = IntegratedGradients(forward).attribute(
            embeds, baselines=baseline, additional_forward_args=(mask,), n_steps=steps, method=params["method"],
            internal_batch_size=params["internal_batch_size"] or runner.batch_size_for(len(prepared.input_ids)))
        return attributions[0].sum(-1).detach().cpu().numpy().astype(float)

    if params["adaptive"]:
        # Double the steps until the completeness gap is under `max_gap` of |f(x) - f(baseline)|, or
        # the cap; each try is a fresh quadrature (Gauss-Legendre nodes do not nest).
        steps, tries = IG_FIRST_STEPS, 0
        while True:
            token_scores = integrate(steps)
            tries += 1
            relative = abs(float(token_scores.sum()) - (f_input - f_baseline)) / gap
            if relative < params["max_gap"] or steps >= params["n_steps"]:
                break
            steps = min(params["n_steps"], 2 * steps)
    else:
        steps, tries = params["n_steps"], 1
        token_scores = integrate(steps)
    delta = float(token_scores.sum()) - (f_input - f_baseline)
    return Attribution(token_scores=token_scores, diagnostics={
        "convergence_delta": delta,
        "f_input": f_input,
        "f_baseline": f_baseline,
        "relative_delta": float(abs(delta) / gap),
        "steps": steps,
        "tries": tries,
        "converged": bool(abs(delta) / gap < params["max_gap"]),
    })


def _saliency(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    from captum.attr import Saliency

    embeds, mask, forward = _embedding_setup(runner, prepared, target)
    gradients = Saliency(forward).attribute(embeds, additional_forward_args=(mask,), abs=False)[0]
    # Simonyan et al. take |gradient|; per token we report the L2 norm over embedding dimensions.
    return Attribution(token_scores=gradients.norm(dim=-1).detach().cpu().numpy().astype(float))


def _input_x_gradient(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    from captum.attr import InputXGradient

    embeds, mask, forward = _embedding_setup(runner, prepared, target)
    attributions = InputXGradient(forward).attribute(embeds, additional_forward_args=(mask,))[0]
    return Attribution(token_scores=attributions.sum(-1).detach().cpu().numpy().astype(float))


IG_FIRST_STEPS = 16


def _ig_cost(params: dict, n_words: int) -> float:
    """Passes (a backward counts as one): the fixed steps, or for adaptive runs the first try of 16 steps
    (an input that needs more costs more: on the default model about half need a second try of 32)."""
    steps = params["n_steps"] if not params["adaptive"] else min(params["n_steps"], IG_FIRST_STEPS)
    return 2 * steps + 1


INTEGRATED_GRADIENTS = Method(
    name="integrated_gradients", title="Integrated Gradients", family=Family.GRADIENT, signed=True,
    citation="Sundararajan, Taly & Yan (2017), 'Axiomatic attribution for deep networks', ICML.",
    options=(Option("baseline", "str", "pad", "Reference input: pad or mask tokens, or the zero embedding.",
                    choices=("pad", "mask", "zero")),
             Option("n_steps", "int", 256, "Steps of the path integral (the cap when adaptive).", minimum=2, maximum=2000),
             Option("adaptive", "bool", True, "Start at 16 steps and double until the completeness gap is under "
                    "max_gap (off: exactly n_steps)."),
             Option("max_gap", "float", 0.01, "Adaptive: the completeness gap to reach, as a share of "
                    "|f(x) - f(baseline)|.", minimum=0.0, maximum=1.0),
             Option("method", "str", "gausslegendre", "Quadrature rule.",
                    choices=("gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right")),
             Option("internal_batch_size", "int", 0, "Interpolation steps per forward batch (0: automatic, "
                    "fewer for long inputs).", minimum=0, maximum=1024)),
    attribute=_integrated_gradients, cost=_ig_cost,
    compatibility=needs_input_embeddings,
    # Step counts are numerical noise; the baseline is a choice that changes the question asked.
    stability_variants=tuple({"n_steps": n, "adaptive": False} for n in (20, 50, 100)),
    quick_stability_variants=tuple({"n_steps": n, "adaptive": False} for n in (32, 64)),
    sensitivity_variants=tuple({"baseline": b} for b in ("pad", "mask", "zero")),
)

SALIENCY = Method(
    name="saliency", title="Saliency (|gradient|)", family=Family.GRADIENT, signed=False,
    citation="Simonyan, Vedaldi & Zisserman (2014), 'Deep inside convolutional networks', ICLR workshop.",
    options=(), attribute=_saliency, cost=lambda p, n_words: 3, compatibility=needs_input_embeddings,
)

INPUT_X_GRADIENT = Method(
    name="input_x_gradient", title="Input x Gradient", family=Family.GRADIENT, signed=True,
    citation="Shrikumar et al. (2016), 'Not just a black box'; Kindermans et al. (2016).",
    options=(), attribute=_input_x_gradient, cost=lambda p, n_words: 3, compatibility=needs_input_embeddings,
)
