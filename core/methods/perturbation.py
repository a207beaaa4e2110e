"""Methods that read the model's answers on perturbed copies of the input: LIME, SHAP, occlusion."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from core.explanation import token_word_matrix
from core.methods.base import SEED, Attribution, Family, Method, Option, Speed
from core.methods.convergence import (
    ADAPTIVE,
    ROUND,
    TOLERANCE,
    TOP_K,
    Convergence,
    bootstrap_stability,
    round_overlap,
)

# Partition evaluations in the first adaptive round; each later round doubles it. Not 128: on 10 held-out
# tweets of 40-128 tokens a 128-evaluation tree agreed with a 5,000-evaluation run on 72% of the top 5
# and stopping when 128 and 256 agreed left 82%; starting at 256 (first comparison 256 vs 512) gave 94%
# for about 1,000 evaluations on average (scripts/bench_speed.py measures it on 20 other inputs).
SHAP_FIRST_ROUND = 256

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel
    from core.engine.runner import ModelRunner, PreparedText, ProgressFn


def needs_mask_token(loaded: LoadedModel) -> str | None:
    tokenizer = loaded.tokenizer
    if tokenizer.mask_token is None and tokenizer.unk_token is None:
        return "the tokenizer has neither a mask nor an unknown token to hide words with"
    return None


def lime_distinct_samples(num_samples: int, n_words: int) -> float:
    """Expected distinct perturbations LIME draws (only distinct ones reach the model; the rest are cache
    hits): the input itself, then for each other sample a number of words to hide, uniform in 1..n-1,
    and which ones, uniform among the subsets of that size."""
    if n_words < 2:
        return 1.0
    draws = num_samples - 1
    expected = 1.0
    for size in range(1, n_words):
        subsets = math.comb(n_words, size)
        # 1 - (1 - x)^draws, computed so that a tiny x (huge subset counts) does not round to nothing
        expected += subsets * -math.expm1(draws * math.log1p(-1 / ((n_words - 1) * subsets)))
    return expected


def shap_partition_evaluations(max_evals: int, n_words: int) -> float:
    """Partition SHAP stops well before `max_evals` on short inputs: measured, about 0.85 x tokens^2
    evaluations, with tokens ~ words (punctuation counts as a word) + 2 special tokens."""
    return min(float(max_evals), 0.85 * (n_words + 2) ** 2)


def lime_explainer(runner: ModelRunner, prepared: PreparedText, params: dict) -> tuple[Any, Any]:
    """LIME's text explainer and indexed input as the LIME method builds them (shared with KernelSHAP)."""
    from lime.lime_text import IndexedString, LimeTextExplainer

    words = [w for w, _, _ in prepared.words]
    explainer = LimeTextExplainer(
        class_names=runner.loaded.labels,
        split_expression=lambda _text: words,
        bow=False,  # each occurrence is its own feature, in text order
        mask_string=runner.mask_token,  # a single token keeps perturbations as short as the input
        kernel_width=params.get("kernel_width", 25.0),
        random_state=params["seed"],
    )
    indexed = IndexedString(prepared.text, bow=False, split_expression=lambda _text: words, mask_string=runner.mask_token)
    return explainer, indexed


@dataclass
class Neighbourhood:
    explainer: Any
    indexed: Any
    data: np.ndarray  # (samples, words) masks, row 0 the input itself
    probabilities: np.ndarray  # (samples, labels)
    distances: np.ndarray


def lime_rounds(runner: ModelRunner, prepared: PreparedText, params: dict, progress: ProgressFn) -> Iterator[Neighbourhood]:
    """LIME's own sampler, run through the runner, as a growing neighbourhood: one draw of `num_samples`
    when not adaptive, else rounds of ROUND new samples up to `num_samples`. The same seed gives the same
    perturbed texts round after round, so a second method that reads these rounds (KernelSHAP) finds
    every query LIME made in the runner's cache."""
    explainer, indexed = lime_explainer(runner, prepared, params)
    # explain_instance = this sampler + LimeBase.explain_instance_with_data; calling the two halves
    # lets the neighbourhood be shared and grown (lime has no public name for the first half).
    sampler = explainer._LimeTextExplainer__data_labels_distances

    def classify(texts: list[str]) -> np.ndarray:
        return runner.probabilities_for_texts(texts, progress)

    cap = params["num_samples"]
    if not params.get("adaptive"):
        yield Neighbourhood(explainer, indexed, *sampler(indexed, classify, cap))
        return
    data, probabilities, distances = sampler(indexed, classify, min(ROUND, cap))
    yield Neighbourhood(explainer, indexed, data, probabilities, distances)
    while len(data) < cap:
        more = sampler(indexed, classify, min(ROUND, cap - len(data)) + 1)  # its row 0 is the input again
        data, probabilities, distances = (np.concatenate([a, b[1:]]) for a, b in zip((data, probabilities, distances), more, strict=True))
        yield Neighbourhood(explainer, indexed, data, probabilities, distances)


def sample_until_stable(rounds: Iterator[Neighbourhood], fit: Callable[[Neighbourhood, np.ndarray], np.ndarray],
                        params: dict) -> tuple[Neighbourhood, Convergence | None]:
    """Take rounds until the bootstrap says the top-k words are stable (adaptive), or all of them."""
    if not params.get("adaptive"):
        return next(rounds), None
    count = 0
    for count, hood in enumerate(rounds, start=1):  # noqa: B007 (the last round is returned)
        stability = bootstrap_stability(lambda rows, hood=hood: fit(hood, rows), len(hood.data), params["top_k"],
                                        params["seed"] + count)
        if stability >= 1 - params["tolerance"]:
            return hood, Convergence(len(hood.data), count, stability, True, params["tolerance"], params["top_k"])
    return hood, Convergence(len(hood.data), count, stability, False, params["tolerance"], params["top_k"])


def _lime_fit(target: int, feature_selection: str) -> Callable[[Neighbourhood, np.ndarray], np.ndarray]:
    def fit(hood: Neighbourhood, rows: np.ndarray) -> np.ndarray:
        rows = np.concatenate([[0], rows])  # the input itself first, as lime expects
        _, local_exp, _, _ = hood.explainer.base.explain_instance_with_data(
            hood.data[rows], hood.probabilities[rows], hood.distances[rows], target,
            num_features=hood.data.shape[1], feature_selection=feature_selection)
        scores = np.zeros(hood.data.shape[1])
        for feature, weight in local_exp:
            scores[feature] = weight
        return scores
    return fit


def _lime(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    # Every word is a feature, so lime's 'auto' selection keeps them all: the bootstrap fits skip the selection step.
    hood, convergence = sample_until_stable(lime_rounds(runner, prepared, params, progress),
                                            _lime_fit(target, "none"), params)
    intercept, local_exp, score, local_pred = hood.explainer.base.explain_instance_with_data(
        hood.data, hood.probabilities, hood.distances, target, num_features=len(prepared.words),
        feature_selection=hood.explainer.feature_selection)
    scores = np.zeros(len(prepared.words))
    for feature, weight in local_exp:
        scores[feature] = weight
    return Attribution(word_scores=scores, diagnostics={
        "intercept": float(intercept),
        "local_r2": float(score),
        "local_prediction": float(np.ravel(local_pred)[0]) if local_pred is not None else None,
        "samples": int(len(hood.data)),
        **(convergence.to_diagnostics() if convergence else {}),
    })


class _KeptEnds:
    """The runner's tokenizer as shap's Text masker sees it, except that the empty string encodes to nothing: shap
    guesses the tokens to keep at each end from how "" encodes and assumes as many before as after, which a prompt
    template (3 tokens before the text, 4 after) breaks. `text_masker` sets the kept ends from the input instead."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str, **kwargs: Any) -> Any:
        return self.tokenizer(text, **kwargs) if text else {"input_ids": []}

    def __getattr__(self, name: str) -> Any:
        if name == "tokenizer":
            raise AttributeError(name)
        return getattr(self.tokenizer, name)


def text_masker(runner: ModelRunner, prepared: PreparedText) -> Any:
    """shap's Text masker over the runner's tokenizer, token-id output (masked inputs reach the model exactly as
    masked, with no re-tokenization), keeping the input's leading and trailing special tokens ([CLS] and [SEP], or
    a prompt template's tokens) as the prediction keeps them."""
    import shap

    masker = shap.maskers.Text(_KeptEnds(runner.tokenizer), mask_token=runner.mask_id, collapse_mask_token=False,
                               output_type="token_ids")
    specials = prepared.special_mask
    masker.keep_prefix = next((i for i, special in enumerate(specials) if not special), len(specials))
    masker.keep_suffix = next((i for i, special in enumerate(reversed(specials)) if not special), 0)
    return masker


def _shap(runner: ModelRunner, prepared: PreparedText, target: int, params: dict, progress: ProgressFn) -> Attribution:
    import shap

    np.random.seed(params["seed"])  # Partition is deterministic; seeded in case shap samples
    masker = text_masker(runner, prepared)

    def target_probability(id_rows: Any) -> np.ndarray:
        return runner.probabilities([list(row) for row in np.atleast_2d(id_rows)], progress)[:, target]

    explainer = shap.explainers.Partition(target_probability, masker)

    def run(max_evals: int) -> tuple[Any, int]:
        before = runner.evaluations
        values = explainer([prepared.text], max_evals=max_evals, batch_size=runner.batch_size, silent=True)
        return values, runner.evaluations - before

    cap = params["max_evals"]
    convergence = None
    if not params["adaptive"]:
        values, _ = run(cap)
    else:
        # A bigger budget refines the same partition tree: the masks of a smaller budget come back as
        # cache hits, so each round pays only for its new masks. Stop when two rounds agree on the top
        # words, or when Partition finished its tree below the budget (more budget changes nothing).
        budget, rounds, previous, overlap = min(SHAP_FIRST_ROUND, cap), 0, None, 0.0
        while True:
            values, used = run(budget)
            rounds += 1
            scores = np.asarray(values.values[0], dtype=float)
            complete = used < budget
            if previous is not None:
                overlap = round_overlap(previous, scores, params["top_k"])
            if complete or overlap >= 1 - params["tolerance"] or budget >= cap:
                converged = complete or overlap >= 1 - params["tolerance"]
                convergence = Convergence(budget, rounds, 1.0 if complete else overlap, converged,
                                          params["tolerance"], params["top_k"])
                break
            previous, budget = scores, min(cap, 2 * budget)
    token_scores = np.asarray(values.values[0], dtype=float)
    if len(token_scores) != len(prepared.input_ids):
        raise RuntimeError(f"shap produced {len(token_scores)} features for {len(prepared.input_ids)} tokens")
    base = float(np.ravel(values.base_values)[0])
    return Attribution(token_scores=token_scores, diagnostics={
        "base_value": base,
        "additivity_gap": float(base + token_scores.sum() - runner.probabilities([prepared.input_ids])[0, target]),
        **(convergence.to_diagnostics() if convergence else {}),
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


LIME = Method(
    name="lime", title="LIME", family=Family.PERTURBATION, signed=True, speed=Speed.SLOW, random=True,
    citation="Ribeiro, Singh & Guestrin (2016), 'Why should I trust you?', KDD.",
    options=(Option("num_samples", "int", 1000, "Perturbed samples (the cap when adaptive).", minimum=10, maximum=20000),
             Option("kernel_width", "float", 25.0, "Width of the exponential kernel on cosine distance.", minimum=0.01),
             ADAPTIVE, TOLERANCE, TOP_K, SEED),
    attribute=_lime, cost=lambda p, n_words: lime_distinct_samples(p["num_samples"], n_words),
    compatibility=needs_mask_token,
    stability_variants=tuple({"seed": s, "num_samples": n} for s, n in ((0, 500), (1, 500), (2, 500), (0, 250), (0, 1000))),
    quick_stability_variants=tuple({"seed": s, "num_samples": n} for s, n in ((0, 200), (1, 200), (2, 200), (0, 400))),
)

SHAP = Method(
    name="shap", title="SHAP (Partition)", family=Family.PERTURBATION, signed=True, speed=Speed.SLOW, random=True,
    citation="Lundberg & Lee (2017), 'A unified approach to interpreting model predictions', NeurIPS.",
    options=(Option("max_evals", "int", 1000, "Model evaluations for the Partition explainer (the cap when adaptive).",
                    minimum=10, maximum=20000),
             ADAPTIVE, TOLERANCE, TOP_K, SEED),
    attribute=_shap, cost=lambda p, n_words: shap_partition_evaluations(p["max_evals"], n_words),
    compatibility=needs_mask_token,
    stability_variants=tuple({"seed": s, "max_evals": n} for s, n in ((0, 500), (1, 500), (0, 250), (0, 1000))),
    quick_stability_variants=tuple({"seed": s, "max_evals": n} for s, n in ((0, 200), (1, 200), (0, 400))),
)

OCCLUSION = Method(
    name="occlusion", title="Occlusion (leave one word out)", family=Family.PERTURBATION, signed=True,
    citation="Zeiler & Fergus (2014); Li, Monroe & Jurafsky (2016), 'Understanding neural networks through "
             "representation erasure'.",
    options=(), attribute=_occlusion, cost=lambda p, n_words: n_words, compatibility=needs_mask_token,
)
