"""The registry of explanation methods, all with one call shape (after Captum and LIT).

`explain(runner, text, method, target=None, params=None, progress=None)` validates its inputs
and delegates to the method's private `_attribute`. Every method explains the same quantity,
the model's **probability of the target label** (the predicted label by default), so that
scores are comparable across methods. Each method declares its options (`Option`) so that the
UI can build widgets and the CLI can list them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core.explanation import Explanation, token_word_matrix
from core.runner import ModelRunner, PreparedText, ProgressFn


class ExplainError(ValueError):
    """Bad input to an explanation (empty text, unknown method or label, bad option)."""


@dataclass(frozen=True)
class Option:
    name: str
    type: str  # "int" | "float" | "str" | "bool"
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def coerce(self, value: Any) -> Any:
        try:
            if self.type == "int":
                value = int(value)
            elif self.type == "float":
                value = float(value)
            elif self.type == "bool":
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            else:
                value = str(value)
        except (TypeError, ValueError) as exc:
            raise ExplainError(f"Option '{self.name}' must be {self.type}, got {value!r}.") from exc
        if self.choices is not None and value not in self.choices:
            raise ExplainError(f"Option '{self.name}' must be one of {', '.join(map(str, self.choices))}; got {value!r}.")
        if self.minimum is not None and value < self.minimum:
            raise ExplainError(f"Option '{self.name}' must be at least {self.minimum}; got {value}.")
        if self.maximum is not None and value > self.maximum:
            raise ExplainError(f"Option '{self.name}' must be at most {self.maximum}; got {value}.")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": self.default, "help": self.help,
                "choices": list(self.choices) if self.choices else None,
                "minimum": self.minimum, "maximum": self.maximum}


@dataclass
class Attribution:
    """What a method's `_attribute` returns: token scores or word scores (or both)."""

    token_scores: np.ndarray | None = None
    word_scores: np.ndarray | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    family: str  # "perturbation" | "gradient" | "attention"
    signed: bool
    citation: str
    options: tuple[Option, ...]
    attribute: Callable[[ModelRunner, PreparedText, int, dict[str, Any], ProgressFn], Attribution]

    def resolve(self, params: dict[str, Any] | None) -> dict[str, Any]:
        params = dict(params or {})
        known = {o.name: o for o in self.options}
        unknown = sorted(set(params) - set(known))
        if unknown:
            raise ExplainError(f"Method '{self.name}' has no option {', '.join(unknown)}; it takes {', '.join(known) or 'none'}.")
        return {name: option.coerce(params.get(name, option.default)) for name, option in known.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "family": self.family, "signed": self.signed,
                "citation": self.citation, "options": [o.to_dict() for o in self.options]}


SEED = Option("seed", "int", 0, "Random seed.", minimum=0)


# -- perturbation methods ---------------------------------------------------------------------
def _lime(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    from lime.lime_text import LimeTextExplainer

    words = [w for w, _, _ in prepared.words]
    explainer = LimeTextExplainer(
        class_names=runner.loaded.labels,
        split_expression=lambda _text: words,
        bow=False,  # each occurrence is its own feature, in text order
        mask_string=runner.mask_token,  # a single token keeps perturbations as short as the input
        kernel_width=params["kernel_width"],
        random_state=params["seed"],
    )
    result = explainer.explain_instance(
        prepared.text,
        lambda texts: runner.probabilities_for_texts(texts, progress),
        labels=(target,),
        num_features=len(words),
        num_samples=params["num_samples"],
    )
    scores = np.zeros(len(words))
    for feature, weight in result.local_exp[target]:
        scores[feature] = weight
    return Attribution(word_scores=scores, diagnostics={
        "intercept": float(result.intercept[target]),
        "local_r2": float(result.score[target] if isinstance(result.score, dict) else result.score),
        "local_prediction": float(np.ravel(result.local_pred)[0]) if result.local_pred is not None else None,
    })


def _shap(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    import shap

    np.random.seed(params["seed"])  # Partition is deterministic; seeded in case shap samples
    # Token-id output: masked inputs reach the model exactly as masked, with no re-tokenization.
    masker = shap.maskers.Text(runner.tokenizer, mask_token=runner.mask_token, collapse_mask_token=False,
                               output_type="token_ids")

    def target_probability(id_rows: Any) -> np.ndarray:
        return runner.probabilities([list(row) for row in np.atleast_2d(id_rows)], progress)[:, target]

    explainer = shap.explainers.Partition(target_probability, masker)
    values = explainer([prepared.text], max_evals=params["max_evals"], batch_size=runner.batch_size, silent=True)
    token_scores = np.asarray(values.values[0], dtype=float)
    if len(token_scores) != len(prepared.input_ids):
        raise RuntimeError(f"shap produced {len(token_scores)} features for {len(prepared.input_ids)} tokens")
    base = float(np.ravel(values.base_values)[0])
    return Attribution(token_scores=token_scores, diagnostics={
        "base_value": base,
        "additivity_gap": float(base + token_scores.sum() - runner.probabilities([prepared.input_ids])[0, target]),
    })


def _occlusion(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    from captum.attr import FeatureAblation

    matrix = token_word_matrix(prepared.token_offsets, [(s, e) for _, s, e in prepared.words], len(prepared.text))
    groups = np.where(matrix.any(axis=1), matrix.argmax(axis=1), len(prepared.words))  # specials: one extra group
    feature_mask = torch.tensor(groups, dtype=torch.long).unsqueeze(0)
    inputs = torch.tensor([prepared.input_ids], dtype=torch.long)

    def forward(ids: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(runner.probabilities(ids.tolist(), progress)[:, target])

    # Special tokens are their own baseline: ablating their group gives back the input itself, a
    # cache hit, so occlusion costs one pass per word. All groups go to the runner in one call,
    # which batches them by its token budget.
    baselines = torch.tensor([[i if special else runner.mask_id
                               for i, special in zip(prepared.input_ids, prepared.special_mask, strict=True)]])
    ablation = FeatureAblation(forward)
    token_scores = ablation.attribute(inputs, baselines=baselines, feature_mask=feature_mask,
                                      perturbations_per_eval=len(prepared.words) + 1)[0].numpy().astype(float)
    word_scores = np.zeros(len(prepared.words))
    for token, group in enumerate(groups):
        if group < len(prepared.words):
            word_scores[group] = token_scores[token]
    return Attribution(token_scores=np.where(groups < len(prepared.words), token_scores, 0.0),
                       word_scores=word_scores, diagnostics={"replacement": runner.mask_token})


# -- gradient methods ---------------------------------------------------------------------------
def _embedding_setup(runner: ModelRunner, prepared: PreparedText, target: int):
    embeds = runner.embed(prepared.input_ids)
    mask = torch.ones((1, len(prepared.input_ids)), dtype=torch.long, device=runner.device)

    def forward(inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return runner.forward_embeddings(inputs_embeds, attention_mask)[:, target]

    return embeds, mask, forward


def _baseline_ids(runner: ModelRunner, prepared: PreparedText, kind: str) -> list[int]:
    fill = runner.pad_id if kind == "pad" else runner.mask_id
    # Special tokens stay as they are: the baseline differs from the input only in the words.
    return [i if special else fill for i, special in zip(prepared.input_ids, prepared.special_mask, strict=True)]


def _integrated_gradients(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    from captum.attr import IntegratedGradients

    embeds, mask, forward = _embedding_setup(runner, prepared, target)
    baseline_ids = None if params["baseline"] == "zero" else _baseline_ids(runner, prepared, params["baseline"])
    baseline = torch.zeros_like(embeds) if baseline_ids is None else runner.embed(baseline_ids)
    progress(0.0, f"{params['n_steps']} interpolation steps")
    attributions = IntegratedGradients(forward).attribute(
        embeds, baselines=baseline, additional_forward_args=(mask,), n_steps=params["n_steps"],
        method=params["method"],
        internal_batch_size=params["internal_batch_size"] or runner.batch_size_for(len(prepared.input_ids)),
    )
    token_scores = attributions[0].sum(-1).detach().cpu().numpy().astype(float)
    # Completeness check (Sundararajan et al., 2017): sum of attributions vs f(x) - f(baseline).
    # Captum's convergence delta would run both end points again; f(x) is the runner's cached
    # prediction and an id baseline is a cacheable input, so this costs at most one pass.
    f_input = float(runner.probabilities([prepared.input_ids])[0, target])
    if baseline_ids is None:
        with torch.no_grad():
            f_baseline = float(forward(baseline, mask)[0])
    else:
        f_baseline = float(runner.probabilities([baseline_ids])[0, target])
    delta = float(token_scores.sum()) - (f_input - f_baseline)
    return Attribution(token_scores=token_scores, diagnostics={
        "convergence_delta": delta,
        "f_input": f_input,
        "f_baseline": f_baseline,
        "relative_delta": float(abs(delta) / max(abs(f_input - f_baseline), 1e-12)),
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


# -- attention methods -----------------------------------------------------------------------
def attention_rollout(attentions: np.ndarray, residual_weight: float = 0.5) -> np.ndarray:
    """Abnar & Zuidema (2020) rollout over layers of head-averaged attention (layers, seq, seq).

    Each layer becomes `residual_weight * I + (1 - residual_weight) * A`, rows renormalised,
    and the layers are multiplied from the first up: R = Â_L ... Â_2 Â_1.
    """
    size = attentions.shape[-1]
    rollout = np.eye(size)
    for layer in attentions:
        mixed = residual_weight * np.eye(size) + (1 - residual_weight) * layer
        mixed = mixed / mixed.sum(axis=-1, keepdims=True)
        rollout = mixed @ rollout
    return rollout


def _attention(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    weights, _ = runner.attentions(prepared.input_ids)
    layers, heads = weights.shape[:2]
    layer, head = params["layer"], params["head"]
    if not -layers <= layer < layers:
        raise ExplainError(f"Layer {layer} does not exist: the model has {layers} layers (0..{layers - 1}, or -1 for the last).")
    if not -1 <= head < heads:
        raise ExplainError(f"Head {head} does not exist: the model has {heads} heads (0..{heads - 1}, or -1 for their mean).")
    chosen = weights[layer].mean(axis=0) if head == -1 else weights[layer, head]
    return Attribution(token_scores=chosen[0].astype(float), diagnostics={
        "layers": int(layers), "heads": int(heads),
        "max_row_sum_error": float(np.abs(weights.sum(-1) - 1).max()),
    })


def _attention_rollout(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    weights, _ = runner.attentions(prepared.input_ids)
    rollout = attention_rollout(weights.mean(axis=1), params["residual_weight"])
    return Attribution(token_scores=rollout[0].astype(float), diagnostics={"layers": int(weights.shape[0])})


METHODS: dict[str, Method] = {
    m.name: m
    for m in [
        Method("lime", "LIME", "perturbation", True,
               "Ribeiro, Singh & Guestrin (2016), 'Why should I trust you?', KDD.",
               (Option("num_samples", "int", 500, "Perturbed samples.", minimum=10, maximum=20000),
                Option("kernel_width", "float", 25.0, "Width of the exponential kernel on cosine distance.", minimum=0.01),
                SEED), _lime),
        Method("shap", "SHAP (Partition)", "perturbation", True,
               "Lundberg & Lee (2017), 'A unified approach to interpreting model predictions', NeurIPS.",
               (Option("max_evals", "int", 500, "Model evaluations for the Partition explainer.", minimum=10, maximum=20000),
                SEED), _shap),
        Method("integrated_gradients", "Integrated Gradients", "gradient", True,
               "Sundararajan, Taly & Yan (2017), 'Axiomatic attribution for deep networks', ICML.",
               (Option("baseline", "str", "pad", "Reference input: pad or mask tokens, or the zero embedding.",
                       choices=("pad", "mask", "zero")),
                Option("n_steps", "int", 50, "Steps of the path integral.", minimum=2, maximum=2000),
                Option("method", "str", "gausslegendre", "Quadrature rule.",
                       choices=("gausslegendre", "riemann_trapezoid", "riemann_middle", "riemann_left", "riemann_right")),
                Option("internal_batch_size", "int", 0, "Interpolation steps per forward batch (0: automatic, "
                       "fewer for long inputs).", minimum=0, maximum=1024)),
               _integrated_gradients),
        Method("saliency", "Saliency (|gradient|)", "gradient", False,
               "Simonyan, Vedaldi & Zisserman (2014), 'Deep inside convolutional networks', ICLR workshop.",
               (), _saliency),
        Method("input_x_gradient", "Input x Gradient", "gradient", True,
               "Shrikumar et al. (2016), 'Not just a black box'; Kindermans et al. (2016).",
               (), _input_x_gradient),
        Method("occlusion", "Occlusion (leave one word out)", "perturbation", True,
               "Zeiler & Fergus (2014); Li, Monroe & Jurafsky (2016), 'Understanding neural networks through representation erasure'.",
               (), _occlusion),
        Method("attention", "Attention weights ([CLS] row)", "attention", False,
               "Jain & Wallace (2019), 'Attention is not explanation'; Wiegreffe & Pinter (2019), 'Attention is not not explanation'.",
               (Option("layer", "int", -1, "Layer (-1: the last).", minimum=-64, maximum=63),
                Option("head", "int", -1, "Head (-1: mean of all heads).", minimum=-1, maximum=63)), _attention),
        Method("attention_rollout", "Attention rollout", "attention", False,
               "Abnar & Zuidema (2020), 'Quantifying attention flow in transformers', ACL.",
               (Option("residual_weight", "float", 0.5, "Weight of the residual identity in each layer.", minimum=0.0, maximum=1.0),),
               _attention_rollout),
    ]
}


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ExplainError(f"Unknown method '{name}'; choose from {', '.join(METHODS)}.")
    return METHODS[name]


def resolve_target(runner: ModelRunner, target: str | int | None, probabilities: np.ndarray) -> int:
    labels = runner.loaded.labels
    if target is None or target == "":
        return int(np.argmax(probabilities))
    if isinstance(target, str) and target in labels:
        return labels.index(target)
    if isinstance(target, int) or (isinstance(target, str) and target.isdigit()):
        index = int(target)
        if 0 <= index < len(labels):
            return index
    raise ExplainError(f"Unknown label '{target}'; the model's labels are {', '.join(labels)}.")


def explain(
    runner: ModelRunner,
    text: str,
    method: str,
    target: str | int | None = None,
    params: dict[str, Any] | None = None,
    progress: ProgressFn | None = None,
) -> Explanation:
    """Explain the model's probability of `target` (default: the predicted label) on `text`."""
    if not text or not text.strip():
        raise ExplainError("The text is empty: give some words to explain.")
    spec = get_method(method)
    resolved = spec.resolve(params)
    prepared = runner.prepare(text)
    if not prepared.words:
        raise ExplainError("The text has no words the model can read.")
    return explain_prepared(runner, prepared, spec, target, resolved, progress or (lambda f, m: None))


def explain_prepared(runner: ModelRunner, prepared: PreparedText, spec: Method, target: str | int | None,
                     params: dict[str, Any], progress: ProgressFn) -> Explanation:
    """The work behind `explain`, for callers that validated and prepared the input (the store)."""
    started, passes_before, evaluations_before = time.perf_counter(), runner.forward_passes, runner.evaluations
    if spec.family == "attention":
        runner.attentions(prepared.input_ids)  # one pass gives both the prediction and the weights
    probabilities = runner.probabilities([prepared.input_ids])[0]
    target_index = resolve_target(runner, target, probabilities)
    torch.manual_seed(params.get("seed", 0))
    attribution = spec.attribute(runner, prepared, target_index, params, progress)
    matrix = token_word_matrix(prepared.token_offsets, [(s, e) for _, s, e in prepared.words], len(prepared.text))
    if attribution.word_scores is not None:
        word_scores = np.asarray(attribution.word_scores, dtype=float)
        token_scores = attribution.token_scores
        if token_scores is None:
            per_word_tokens = matrix.sum(axis=0)
            token_scores = matrix @ np.divide(word_scores, per_word_tokens, out=np.zeros_like(word_scores),
                                              where=per_word_tokens > 0)
    else:
        token_scores = np.asarray(attribution.token_scores, dtype=float)
        word_scores = token_scores @ matrix
    seconds = time.perf_counter() - started
    progress(1.0, f"{spec.name} done")
    return Explanation(
        text=prepared.text,
        words=tuple(w for w, _, _ in prepared.words),
        offsets=tuple((s, e) for _, s, e in prepared.words),
        scores=tuple(float(s) for s in word_scores),
        tokens=tuple(prepared.tokens),
        token_scores=tuple(float(s) for s in np.asarray(token_scores, dtype=float)),
        method=spec.name,
        target=runner.loaded.labels[target_index],
        signed=spec.signed,
        probabilities={label: float(p) for label, p in zip(runner.loaded.labels, probabilities, strict=True)},
        seconds=seconds,
        forward_passes=runner.forward_passes - passes_before,
        params=params,
        diagnostics={**attribution.diagnostics, "evaluations": runner.evaluations - evaluations_before},
        truncated_words=prepared.truncated_words,
    )
