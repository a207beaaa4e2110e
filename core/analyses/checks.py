"""Can a method's account be trusted at all? Stability and model-randomisation checks.

- **Stability**: rerun a method under settings that should not matter (seeds, sample counts,
  baselines, step counts) and measure its agreement with itself. A method that disagrees with
  itself cannot be trusted to disagree with others.
- **Model randomisation** (Adebayo et al., 2018, "Sanity checks for saliency maps"): re-initialise
  the model cumulatively from the top (classifier head, then encoder layers from the last down),
  on a copy, and compare each method's attribution with the one on the trained model. A method
  whose explanation barely changes when the model is destroyed explains the input, not the model.

Each check ends in a typed verdict per method (passed, the deciding figure, its threshold, and a
one-line sentence) from the thresholds below. The settings each method is varied over come from
the registry (`Method.stability_variants`): deterministic methods with nothing to vary are rerun
with the same settings, which a nondeterministic implementation would fail.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import torch
from sqlalchemy import Engine

from core.analyses.agreement import METRICS
from core.engine.modelling import encoder_layer_path
from core.engine.runner import ModelRunner
from core.methods.explain import explain
from core.methods.registry import METHODS, get_method
from core.storage.db import session_scope
from core.storage.provenance import saw
from core.storage.schema import CheckRecord

STABLE_SPEARMAN = 0.8  # mean pairwise Spearman of |scores| across variants
STABLE_TOPK = 0.6  # mean pairwise top-k feature agreement across variants
RANDOMISATION_PASS = 0.5  # Spearman with the trained model's attributions must stay below this at every stage

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class Verdict:
    passed: bool
    figure: float  # the number the verdict rests on
    threshold: float
    sentence: str


@dataclass(frozen=True)
class StabilityResult:
    method: str
    variants: list[dict[str, Any]]
    mean_spearman: float
    min_spearman: float
    mean_topk: float
    verdict: Verdict


def stability_variants(methods: Sequence[str] | None = None, quick: bool = False) -> dict[str, list[dict[str, Any]]]:
    """The settings each method is rerun with, from the registry (every method by default)."""
    return {name: [dict(v) for v in get_method(name).variants(quick)] for name in (methods or list(METHODS))}


def _stability_verdict(method: str, mean_s: float, mean_k: float, k: int, scope: str) -> Verdict:
    stable = mean_s >= STABLE_SPEARMAN and mean_k >= STABLE_TOPK
    sentence = (f"{method}: {'stable' if stable else 'UNSTABLE'}{scope}: agrees with itself at mean Spearman "
                f"{mean_s:.2f} (threshold {STABLE_SPEARMAN}) and top-{k} agreement {mean_k:.2f} "
                f"(threshold {STABLE_TOPK}).")
    return Verdict(stable, mean_s, STABLE_SPEARMAN, sentence)


def stability(runner: ModelRunner, text: str, variants: dict[str, list[dict[str, Any]]] | None = None,
              k: int = 5, target: str | None = None, progress: ProgressFn | None = None) -> list[StabilityResult]:
    variants = variants or stability_variants()
    total = sum(len(v) for v in variants.values())
    done = 0
    results = []
    for method, settings in variants.items():
        if progress:
            progress(done / total, f"{method}: {len(settings)} settings")
        explanations = _explain_variants(runner, text, method, settings, target)
        target = explanations[-1].target
        done += len(settings)
        spearman, topk = _pairwise(explanations, k)
        mean_s, min_s, mean_k = _nanmean(spearman), _nanmin(spearman), _nanmean(topk)
        verdict = _stability_verdict(method, mean_s, mean_k, k, f" across {len(settings)} settings")
        results.append(StabilityResult(method, settings, mean_s, min_s, mean_k, verdict))
    if progress:
        progress(1.0, "stability done")
    return results


@dataclass(frozen=True)
class SensitivityResult:
    """How much a method's answer changes with a choice that is allowed to change it (no pass or fail)."""

    method: str
    variants: list[dict[str, Any]]
    mean_spearman: float
    mean_topk: float
    sentence: str


def sensitivity(runner: ModelRunner, text: str, methods: Sequence[str] | None = None, k: int = 5,
                progress: ProgressFn | None = None) -> list[SensitivityResult]:
    """Each method with declared sensitivity variants (e.g. Integrated Gradients' baseline), run under each."""
    chosen = [m for m in (methods or list(METHODS)) if get_method(m).sensitivity_variants]
    results, target = [], None
    for index, method in enumerate(chosen):
        settings = [dict(v) for v in get_method(method).sensitivity_variants]
        if progress:
            progress(index / max(1, len(chosen)), f"{method} sensitivity")
        explanations = _explain_variants(runner, text, method, settings, target)
        target = explanations[-1].target
        spearman, topk = _pairwise(explanations, k)
        mean_s, mean_k = _nanmean(spearman), _nanmean(topk)
        varied = ", ".join(sorted({key for v in settings for key in v}))
        results.append(SensitivityResult(method, settings, mean_s, mean_k, (
            f"{method}: changing its {varied} ({'; '.join(', '.join(f'{k_}={v}' for k_, v in s.items()) for s in settings)}) "
            f"gives accounts that agree at mean Spearman {mean_s:.2f} and top-{k} agreement {mean_k:.2f}. "
            "This is a choice of question, reported apart from stability.")))
    if progress:
        progress(1.0, "sensitivity done")
    return results


def sensitivity_over(runner: ModelRunner, texts: Sequence[str], methods: Sequence[str] | None = None, k: int = 5,
                     progress: ProgressFn | None = None) -> list[SensitivityResult]:
    """Sensitivity averaged over several inputs."""
    per_input = [sensitivity(runner, text, methods, k) for text in texts]
    if not per_input or not per_input[0]:
        return []
    out = []
    for j, first in enumerate(per_input[0]):
        mean_s = _nanmean([r[j].mean_spearman for r in per_input])
        mean_k = _nanmean([r[j].mean_topk for r in per_input])
        sentence = first.sentence if len(texts) == 1 else (
            f"{first.method}: over {len(texts)} inputs, its accounts under "
            f"{'; '.join(', '.join(f'{k_}={v}' for k_, v in s.items()) for s in first.variants)} agree at mean "
            f"Spearman {mean_s:.2f} and top-{k} agreement {mean_k:.2f}; a choice of question, reported apart "
            "from stability.")
        out.append(SensitivityResult(first.method, first.variants, mean_s, mean_k, sentence))
    return out


def _explain_variants(runner: ModelRunner, text: str, method: str, settings: Sequence[dict[str, Any]],
                      target: str | None) -> list:
    """`method` on `text` once per setting, all explaining one label (the first run's, unless given)."""
    explanations = []
    for params in settings:
        explanations.append(explain(runner, text, method, target, params))
        target = explanations[-1].target
    return explanations


def _pairwise(explanations: Sequence, k: int) -> tuple[list[float], list[float]]:
    spearman, topk = [], []
    for a, b in itertools.combinations(explanations, 2):
        x, y = np.asarray(a.scores), np.asarray(b.scores)
        spearman.append(METRICS["spearman"].fn(x, y, k))
        topk.append(METRICS["feature_agreement"].fn(x, y, k))
    return spearman, topk


def _reinitialise(module: torch.nn.Module, std: float, generator: torch.Generator) -> None:
    for sub in module.modules():
        if isinstance(sub, torch.nn.Linear | torch.nn.Embedding):
            with torch.no_grad():
                sub.weight.copy_(torch.randn(sub.weight.shape, generator=generator) * std)
                if getattr(sub, "bias", None) is not None:
                    sub.bias.zero_()
        elif isinstance(sub, torch.nn.LayerNorm):
            with torch.no_grad():
                sub.weight.fill_(1.0)
                sub.bias.zero_()


def _encoder_layers(model: torch.nn.Module) -> list[torch.nn.Module]:
    """The transformer blocks, first to last, for the common architectures."""
    path = encoder_layer_path(model)
    if path is None:
        raise ValueError(f"The randomisation check re-initialises the layers of BERT-like encoders; "
                         f"{type(model).__name__} has none it knows (a causal LM is not checked this way yet).")
    return list(model.get_submodule(path))


def _head(model: torch.nn.Module) -> list[torch.nn.Module]:
    return [getattr(model, name) for name in ("classifier", "pre_classifier", "score") if hasattr(model, name)] + (
        [model.bert.pooler] if hasattr(model, "bert") and getattr(model.bert, "pooler", None) is not None else [])


@dataclass(frozen=True)
class RandomisationStage:
    name: str
    similarity: dict[str, float]  # method -> Spearman(|original|, |randomised|)


@dataclass(frozen=True)
class RandomisationResult:
    stages: list[RandomisationStage]
    verdicts: dict[str, Verdict]
    judged: dict[str, list[str]]  # method -> the stages that can change it (the only ones judged)


def _randomisation_verdict(method: str, stages: Sequence[RandomisationStage], first: int, scope: str) -> Verdict:
    """Judge `method` on the stages from `first` on: earlier ones cannot change its output (the classifier
    head cannot change attention weights), so its similarity there says nothing about the method."""
    judged = stages[first:]
    if not judged:
        return Verdict(False, math.nan, RANDOMISATION_PASS,
                       f"{method}: not judged{scope}: no stage that was run can change it "
                       f"(randomise more layers).")
    values = [s.similarity[method] for s in judged if not math.isnan(s.similarity[method])]
    worst = max(values) if values else math.nan
    passed = not math.isnan(worst) and worst < RANDOMISATION_PASS
    skipped = (f" Not judged: {', '.join(s.name for s in stages[:first])} (cannot change it)." if first else "")
    sentence = (f"{method}: {'passes' if passed else 'FAILS'}{scope}: once the model is randomised from the top, "
                f"its attributions keep Spearman up to {worst:.2f} with the trained model's at the stages that can "
                f"change it ({judged[0].name} onwards; must stay below {RANDOMISATION_PASS}).{skipped}")
    return Verdict(passed, worst, RANDOMISATION_PASS, sentence)


def _judged(runner: ModelRunner, methods: Sequence[str], params: dict[str, dict[str, Any]]) -> dict[str, int]:
    n_layers = len(_encoder_layers(runner.loaded.model))
    return {m: get_method(m).first_affecting_stage(get_method(m).resolve(params.get(m)), n_layers) for m in methods}


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _nanmin(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.min(finite)) if finite else math.nan


def _randomised_similarities(runner: ModelRunner, texts: Sequence[str], methods: Sequence[str],
                             max_layers: int | None, params: dict[str, dict[str, Any]], seed: int,
                             progress: ProgressFn | None) -> tuple[list[str], list[list[dict[str, float]]]]:
    """Stage names, and for each stage and input each method's Spearman(|original|, |randomised|).

    The model is copied and randomised once, stage by stage, and every input is explained at
    every stage; the trained model itself is never modified.
    """
    originals = [{m: explain(runner, text, m, None, params.get(m)) for m in methods} for text in texts]
    model = copy.deepcopy(runner.loaded.model)
    std = float(getattr(model.config, "initializer_range", 0.02))
    generator = torch.Generator().manual_seed(seed)
    layers = _encoder_layers(model)
    steps: list[tuple[str, list[torch.nn.Module]]] = [("classifier head", _head(model))]
    count = len(layers) if max_layers is None else min(max_layers, len(layers))
    for n in range(1, count + 1):
        steps.append((f"+ layer {len(layers) - n}", [layers[len(layers) - n]]))
    copy_loaded = runner.loaded.with_model(model)
    similarities = []
    for index, (name, modules) in enumerate(steps):
        if progress:
            progress(index / len(steps), f"randomising {name}")
        for module in modules:
            _reinitialise(module, std, generator)
        scrambled = ModelRunner(copy_loaded, batch_size=runner.batch_size)
        per_input = []
        for text, original in zip(texts, originals, strict=True):
            target = next(iter(original.values())).target
            per_input.append({m: METRICS["spearman"].fn(
                np.asarray(original[m].scores), np.asarray(explain(scrambled, text, m, target, params.get(m)).scores), 0)
                for m in methods})
        similarities.append(per_input)
    if progress:
        progress(1.0, "randomisation done")
    return [name for name, _ in steps], similarities


def randomisation(runner: ModelRunner, text: str, methods: Sequence[str], *, max_layers: int | None = None,
                  params: dict[str, dict[str, Any]] | None = None, seed: int = 0,
                  progress: ProgressFn | None = None) -> RandomisationResult:
    """Cascading randomisation from the top; the trained model itself is never modified."""
    names, similarities = _randomised_similarities(runner, [text], methods, max_layers, params or {}, seed, progress)
    stages = [RandomisationStage(name, per_input[0]) for name, per_input in zip(names, similarities, strict=True)]
    return _result(runner, methods, params or {}, stages, "")


def _result(runner: ModelRunner, methods: Sequence[str], params: dict[str, dict[str, Any]],
            stages: list[RandomisationStage], scope: str) -> RandomisationResult:
    first = _judged(runner, methods, params)
    return RandomisationResult(stages, {m: _randomisation_verdict(m, stages, first[m], scope) for m in methods},
                               {m: [s.name for s in stages[first[m]:]] for m in methods})


def stability_over(runner: ModelRunner, texts: Sequence[str], variants: dict[str, list[dict[str, Any]]] | None = None,
                   k: int = 5, progress: ProgressFn | None = None) -> list[StabilityResult]:
    """Stability averaged over several inputs, with the same thresholds and verdict wording."""
    per_input = []
    for i, text in enumerate(texts):
        inner = (lambda f, m, _i=i: progress((_i + f) / len(texts), f"input {_i + 1}: {m}")) if progress else None
        per_input.append(stability(runner, text, variants, k, progress=inner))
    results = []
    for j, first in enumerate(per_input[0]):
        mean_s = _nanmean([r[j].mean_spearman for r in per_input])
        min_s = _nanmin([r[j].min_spearman for r in per_input])
        mean_k = _nanmean([r[j].mean_topk for r in per_input])
        verdict = _stability_verdict(first.method, mean_s, mean_k, k, f" over {len(texts)} inputs")
        results.append(StabilityResult(first.method, first.variants, mean_s, min_s, mean_k, verdict))
    return results


def randomisation_over(runner: ModelRunner, texts: Sequence[str], methods: Sequence[str],
                       max_layers: int | None = None, progress: ProgressFn | None = None) -> RandomisationResult:
    """Randomisation similarities averaged stage by stage over several inputs."""
    names, similarities = _randomised_similarities(runner, texts, methods, max_layers, {}, 0, progress)
    stages = [RandomisationStage(name, {m: _nanmean([sim[m] for sim in per_input]) for m in methods})
              for name, per_input in zip(names, similarities, strict=True)]
    return _result(runner, methods, {}, stages, f" over {len(texts)} inputs")


# -- stored checks -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StoredCheck:
    """A check as it was run: kind, model, inputs and results; reopened by id (the page's share link)."""

    id: int
    kind: str  # "stability" | "randomisation"
    model_name: str
    model_fingerprint: str
    texts: list[str]
    stability: list[StabilityResult]
    sensitivity: list[SensitivityResult]
    randomisation: RandomisationResult | None
    requested_by: str = "unknown"  # who ran it (core/storage/people.py)
    created_at: datetime | None = None


def save_check(engine: Engine, runner: ModelRunner, kind: str, texts: Sequence[str], *,
               stability: Sequence[StabilityResult] = (), sensitivity: Sequence[SensitivityResult] = (),
               randomisation: RandomisationResult | None = None) -> int:
    payload = {"texts": list(texts), "stability": [asdict(r) for r in stability],
               "sensitivity": [asdict(r) for r in sensitivity],
               "randomisation": asdict(randomisation) if randomisation else None}
    with session_scope(engine) as session:
        record = CheckRecord(kind=kind, model_name=runner.loaded.name, model_fingerprint=runner.loaded.fingerprint,
                             payload=json.dumps(payload, ensure_ascii=False))
        session.add(record)
        session.flush()
        return int(record.id)


def load_check(engine: Engine, check_id: int) -> StoredCheck | None:
    with session_scope(engine) as session:
        record = session.get(CheckRecord, check_id)
        if record is None:
            return None
        data = json.loads(record.payload)
        saw("check_record", record.id, record.requested_by, record.created_at)
        asked = (record.requested_by, record.created_at)
    stability_results = [StabilityResult(**{**r, "verdict": Verdict(**r["verdict"])}) for r in data["stability"]]
    sensitivity_results = [SensitivityResult(**r) for r in data["sensitivity"]]
    raw = data["randomisation"]
    randomisation_result = None if raw is None else RandomisationResult(
        [RandomisationStage(**s) for s in raw["stages"]], {m: Verdict(**v) for m, v in raw["verdicts"].items()},
        raw["judged"])
    return StoredCheck(record.id, record.kind, record.model_name, record.model_fingerprint, data["texts"],
                       stability_results, sensitivity_results, randomisation_result, *asked)
