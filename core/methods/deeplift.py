"""DeepLIFT on the word embeddings (Captum's `DeepLift`, rescale rule)."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

from core.methods.base import Attribution, Family, Method, Option
from core.methods.gradient import baseline_ids, needs_input_embeddings

if TYPE_CHECKING:
    from core.engine.runner import ModelRunner, PreparedText, ProgressFn


class TargetProbability(torch.nn.Module):
    """The target probability as a module of the classifier: Captum's DeepLift hooks the nonlinear
    modules it finds inside (Tanh, ReLU, Softmax...) and passes plain gradients through the rest."""

    def __init__(self, runner: ModelRunner, target: int) -> None:
        super().__init__()
        self.classifier = runner.classifier
        self.runner = runner
        self.target = target

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.runner.forward_embeddings(inputs_embeds, attention_mask)[:, self.target]


def deeplift_scores(module: torch.nn.Module, inputs: torch.Tensor, baselines: torch.Tensor,
                    additional_forward_args: tuple = ()) -> tuple[torch.Tensor, float]:
    """(attributions, summation-to-delta gap) of `module` at `inputs` against `baselines`."""
    from captum.attr import DeepLift

    with warnings.catch_warnings():  # Captum announces its temporary hooks on every call
        warnings.filterwarnings("ignore", message="Setting forward, backward hooks")
        attributions, delta = DeepLift(module).attribute(
            inputs, baselines=baselines, additional_forward_args=additional_forward_args,
            return_convergence_delta=True)
    return attributions, float(delta.sum())


def _deeplift(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    embeds = runner.embed(prepared.input_ids)
    mask = torch.ones((1, len(prepared.input_ids)), dtype=torch.long, device=runner.device)
    ids = None if params["baseline"] == "zero" else baseline_ids(runner, prepared, params["baseline"])
    baseline = torch.zeros_like(embeds) if ids is None else runner.embed(ids)
    module = TargetProbability(runner, target)
    with runner.loaded.lock:
        attributions, delta = deeplift_scores(module, embeds, baseline, (mask,))
    token_scores = attributions[0].sum(-1).detach().cpu().numpy().astype(float)
    # Summation-to-delta (Shrikumar et al. 2017): sum of attributions = f(x) - f(baseline). Captum's
    # rescale rule covers the modules it recognises; attention's products and GELU pass plain
    # gradients, so on a transformer the gap is measured and reported, not assumed to be zero.
    f_gap = float(token_scores.sum()) - delta
    return Attribution(token_scores=token_scores, diagnostics={
        "convergence_delta": delta,
        "relative_delta": float(abs(delta) / max(abs(f_gap), 1e-12)),
    })


DEEPLIFT = Method(
    name="deeplift", title="DeepLIFT (rescale)", family=Family.GRADIENT, signed=True,
    citation="Shrikumar, Greenside & Kundaje (2017), 'Learning important features through propagating "
             "activation differences', ICML.",
    options=(Option("baseline", "str", "pad", "Reference input: pad or mask tokens, or the zero embedding.",
                    choices=("pad", "mask", "zero")),),
    attribute=_deeplift, cost=lambda p, n_words: 4,  # input and baseline in one batch, forward and backward
    compatibility=needs_input_embeddings,
    sensitivity_variants=tuple({"baseline": b} for b in ("pad", "mask", "zero")),
)
