"""Which account does retraining support? Two checks that actually retrain.

1. Linear datamodeling score (Park et al. 2023, TRAK): retrain a surrogate on many random halves of
   the training set and ask, per test input, whether the sum of a method's scores over each half ranks
   the halves as the retrained models' outputs do (Spearman over subsets, averaged over inputs). The
   surrogate keeps the whole encoder and pooler frozen at the model's final weights and retrains only
   the final linear layer from scratch (L2-regularised multinomial logistic regression, scikit-learn),
   on the representations stored by `features`; the output is the target label's margin (its logit
   minus the log-sum-exp of the others).
2. Removal (leave-top-k-out): remove a method's top-k proponents (k = 1% and 5% of the set), or k
   random examples, retrain the whole model from the weights its training started from with the same
   settings and seed, and report how far the target probability moves. Only for models trained by
   Rashomon (their start weights and settings are recorded).
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from core.analyses.training_data.attribute import attribute
from core.analyses.training_data.features import Prepared, prepare, query
from core.analyses.training_data.training_sets import TrainingDataError, TrainingSet
from core.engine.modelling import LoadedModel
from core.engine.runner import ModelRunner, ProgressFn


def _quiet(fraction: float, message: str) -> None:
    pass


def margins(logits: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """Target logit minus the log-sum-exp of the other logits, per row."""
    rows = np.arange(len(targets))
    others = logits.copy()
    others[rows, targets] = -np.inf
    return logits[rows, targets] - np.logaddexp.reduce(others, axis=1)


def lds(predicted: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Per test input (columns), Spearman over subsets (rows) between predicted and actual outputs."""
    values = []
    for j in range(predicted.shape[1]):
        if np.ptp(predicted[:, j]) == 0 or np.ptp(actual[:, j]) == 0:
            values.append(float("nan"))
        else:
            values.append(float(spearmanr(predicted[:, j], actual[:, j]).statistic))
    return np.array(values)


def bootstrap_interval(values: np.ndarray, seed: int = 0, draws: int = 2000) -> tuple[float, float]:
    values = values[~np.isnan(values)]
    if len(values) < 2:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = rng.choice(values, size=(draws, len(values)), replace=True).mean(axis=1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


@dataclass(frozen=True)
class MethodLds:
    method: str
    lds: float  # mean over test inputs
    low: float  # 95% bootstrap interval over test inputs (nan with one input)
    high: float
    per_input: list[float]


@dataclass(frozen=True)
class LdsResult:
    inputs: list[str]
    targets: list[str]
    subsets: int
    fraction: float
    retrained: str
    methods: list[MethodLds]
    seconds: float
    surrogate_accuracy: float  # mean training accuracy of the retrained surrogates against the gold labels
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LdsResult:
        return cls(**{**data, "methods": [MethodLds(**m) for m in data["methods"]]})


SURROGATE = "the final linear layer only (encoder and pooler frozen at the final weights), refitted from scratch"


def surrogate_outputs(prepared: Prepared, test_activations: np.ndarray, test_targets: Sequence[int], subsets: int,
                      fraction: float, seed: int, l2: float = 1.0,
                      progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray, float]:
    """(membership (subsets, n) as 0/1, margins (subsets, inputs), mean training accuracy): one surrogate per subset."""
    from sklearn.linear_model import LogisticRegression

    report = progress or _quiet
    features = prepared.final.activations
    n = len(features)
    rng = np.random.default_rng(seed)
    membership = np.zeros((subsets, n), dtype=np.float64)
    outputs = np.zeros((subsets, len(test_targets)))
    accuracy = []
    for m in range(subsets):
        chosen = rng.choice(n, size=max(2, int(round(fraction * n))), replace=False)
        membership[m, chosen] = 1.0
        model = LogisticRegression(C=l2, max_iter=500)
        model.fit(features[chosen], prepared.targets[chosen])
        logits = np.full((len(test_targets), len(prepared.labels)), -np.inf)
        logits[:, model.classes_] = model.decision_function(test_activations).reshape(len(test_targets), -1) \
            if len(model.classes_) > 2 else _binary_logits(model, test_activations)
        outputs[m] = margins(logits, list(test_targets))
        accuracy.append(model.score(features[chosen], prepared.targets[chosen]))
        report((m + 1) / subsets, f"Retrained surrogate {m + 1}/{subsets}")
    return membership, outputs, float(np.mean(accuracy))


def _binary_logits(model: Any, activations: np.ndarray) -> np.ndarray:
    score = model.decision_function(activations)
    return np.stack([np.zeros_like(score), score], axis=1)


def linear_datamodeling(loaded: LoadedModel, training: TrainingSet, texts: Sequence[str],
                        methods: Sequence[str], *, target: str | None = None, subsets: int = 50, fraction: float = 0.5,
                        seed: int = 0, params: dict[str, dict[str, Any]] | None = None,
                        progress: ProgressFn | None = None) -> LdsResult:
    """Each method's linear datamodeling score on `texts` against `subsets` retrained surrogates."""
    if subsets < 5:
        raise TrainingDataError("The datamodeling check needs at least 5 retrained subsets.")
    if not 0 < fraction < 1:
        raise TrainingDataError("The subset fraction must be between 0 and 1.")
    if not texts:
        raise TrainingDataError("The datamodeling check needs at least one test input.")
    report = progress or _quiet
    started = time.perf_counter()
    prepared = prepare(loaded, training, lambda f, m: report(0.2 * f, m))
    scores: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    activations, targets = [], []
    for j, text in enumerate(texts):
        results = attribute(loaded, training, text, methods, target=target, k=1, params=params)
        for result in results:
            scores[result.method].append(np.asarray(result.scores))
        targets.append(loaded.labels.index(results[0].target))
        activations.append(query(loaded, prepared, text).activations[-1])
        report(0.2 + 0.2 * (j + 1) / len(texts), f"Attributed input {j + 1}/{len(texts)}")
    membership, actual, accuracy = surrogate_outputs(prepared, np.stack(activations), targets, subsets, fraction, seed,
                                                     progress=lambda f, m: report(0.4 + 0.6 * f, m))
    rows = []
    for method in methods:
        predicted = membership @ np.stack(scores[method]).T  # (subsets, inputs)
        per_input = lds(predicted, actual)
        low, high = bootstrap_interval(per_input, seed)
        rows.append(MethodLds(method, float(np.nanmean(per_input)) if not np.all(np.isnan(per_input)) else float("nan"),
                              low, high, [float(v) for v in per_input]))
    return LdsResult(list(texts), [loaded.labels[t] for t in targets], subsets, fraction, SURROGATE, rows,
                     time.perf_counter() - started, accuracy, {"seed": seed})


# -- removal: retrain the whole model --------------------------------------------------------------------
def retrain_without(loaded: LoadedModel, training: TrainingSet, removed: Sequence[int],
                    progress: ProgressFn | None = None) -> LoadedModel:
    """The model retrained from its start weights, same settings and seed, without the rows at `removed`."""
    import pandas as pd
    from transformers import AutoModelForSequenceClassification

    from core.engine.default_model import BuildConfig, fine_tune

    if training.start is None or training.config is None:
        raise TrainingDataError("This model's training was not recorded by Rashomon (no start weights and settings), "
                                "so it cannot be retrained; the datamodeling check with the surrogate still works.")
    config = BuildConfig(**{**training.config, "checkpoints": 0, "flip_fraction": 0.0})
    dropped = set(int(r) for r in removed)
    frame = pd.DataFrame([{"text": e.text, "label": loaded.labels.index(e.label)}
                          for i, e in enumerate(training.examples) if i not in dropped])
    model = AutoModelForSequenceClassification.from_pretrained(training.start, attn_implementation="eager")
    with tempfile.TemporaryDirectory() as directory:
        fine_tune(model, loaded.tokenizer, frame, config, Path(directory), progress or _quiet, span=(0.0, 1.0))
    return loaded.with_model(model.to(loaded.device).eval())


@dataclass(frozen=True)
class Removal:
    method: str  # a method name, or "random"
    fraction: float
    removed: int
    probability_before: float
    probability_after: float
    seconds: float

    @property
    def change(self) -> float:
        return self.probability_after - self.probability_before


@dataclass(frozen=True)
class RemovalResult:
    text: str
    target: str
    probability: float  # the model's own target probability
    full_retrain_probability: float  # retrained on every row: how exactly a retraining repeats the model
    removals: list[Removal]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RemovalResult:
        return cls(**{**data, "removals": [Removal(**r) for r in data["removals"]]})

    def summary(self) -> list[dict[str, Any]]:
        """Per method and fraction: the mean change of the target probability (random: mean and range over repeats)."""
        rows = []
        for fraction in sorted({r.fraction for r in self.removals}):
            for method in dict.fromkeys(r.method for r in self.removals):
                changes = [r.change for r in self.removals if r.method == method and r.fraction == fraction]
                if changes:
                    rows.append({"method": method, "fraction": fraction, "removed": next(
                        r.removed for r in self.removals if r.fraction == fraction), "change": float(np.mean(changes)),
                        "low": float(min(changes)), "high": float(max(changes)), "retrainings": len(changes)})
        return rows


def removal_check(loaded: LoadedModel, training: TrainingSet, text: str, methods: Sequence[str], *,
                  target: str | None = None, fractions: Sequence[float] = (0.01, 0.05), random_repeats: int = 1,
                  seed: int = 0, progress: ProgressFn | None = None) -> RemovalResult:
    """Remove each method's top proponents (and random rows), retrain the whole model, re-measure the target."""
    report = progress or _quiet
    started = time.perf_counter()
    results = attribute(loaded, training, text, methods, target=target, k=1)
    target_name = results[0].target
    index = loaded.labels.index(target_name)
    n = len(training.examples)
    plan: list[tuple[str, float, np.ndarray]] = []
    rng = np.random.default_rng(seed)
    for fraction in fractions:
        k = max(1, int(math.ceil(fraction * n)))
        for result in results:
            plan.append((result.method, fraction, np.argsort(-np.asarray(result.scores), kind="stable")[:k]))
        for _ in range(random_repeats):
            plan.append(("random", fraction, rng.choice(n, size=k, replace=False)))
    total = len(plan) + 1

    def probability(model: LoadedModel) -> float:
        return float(ModelRunner(model).uncached_probabilities(ModelRunner(model).prepare(text).input_ids)[index])

    def step(i: int, what: str) -> ProgressFn:
        return lambda f, m: report((i + f) / total, f"Retraining {i + 1}/{total} ({what}): {m}")

    before = probability(loaded)
    full = probability(retrain_without(loaded, training, [], step(0, "every row")))
    removals = []
    for i, (method, fraction, rows) in enumerate(plan, start=1):
        tick = time.perf_counter()
        after = probability(retrain_without(loaded, training, rows.tolist(), step(i, f"{method}, {fraction:.0%}")))
        removals.append(Removal(method, fraction, len(rows), before, after, time.perf_counter() - tick))
    return RemovalResult(text, target_name, before, full, removals, time.perf_counter() - started)
