"""Model vs model: did the fix work? Two classifiers with the same labels on the same labelled set,
and on one input, both models' explanations side by side.

- Predictions: each model once over every input (batched), so the comparison is paired.
- What changed: inputs fixed (A wrong, B right), broken (A right, B wrong) and changed among errors
  (both wrong, differently); accuracy, macro-F1 and per-class F1 deltas with 95% paired bootstrap
  intervals (inputs resampled together for both models).
- Rows either model records training on (a rebuild with an exported error group trains on some
  held-out rows) are left out, and counted, so the change is measured on rows neither model saw.
- One input: every chosen method explains both models' prediction of the same label; agreement between
  the two models' word scores per method (Spearman over words, top-k overlap), so a fix that changed the
  prediction's reasons shows even where the label did not change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import spearmanr
from sklearn.metrics import f1_score

from core.analyses.agreement import feature_agreement
from core.analyses.corpus.inputs import Input
from core.analyses.evaluation import EvaluationError, check_labels
from core.engine.runner import ModelRunner, ProgressFn
from core.explanation import Explanation


@dataclass(frozen=True)
class Delta:
    name: str  # "accuracy", "macro-F1" or "F1 <label>"
    a: float
    b: float
    delta: float  # b - a
    low: float
    high: float


@dataclass(frozen=True)
class Changed:
    position: int
    text: str
    gold: str
    a: str  # model A's prediction
    b: str


@dataclass(frozen=True)
class ModelDiff:
    model_a: str
    model_b: str
    labels: list[str]
    inputs: int
    deltas: list[Delta]
    fixed: list[Changed]  # A wrong, B right
    broken: list[Changed]  # A right, B wrong
    changed_errors: list[Changed]  # both wrong, differently
    seconds: float
    left_out: int = 0  # inputs left out because model A or B trained on them

    def to_dict(self) -> dict:
        return asdict(self)


def _same_labels(a: ModelRunner, b: ModelRunner) -> list[str]:
    if list(a.loaded.labels) != list(b.loaded.labels):
        raise EvaluationError(f"The models have different labels ({', '.join(a.loaded.labels)} vs "
                              f"{', '.join(b.loaded.labels)}); compare classifiers of the same labels.")
    return list(a.loaded.labels)


def _scores(gold: np.ndarray, predicted: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """accuracy, macro-F1, then F1 per label."""
    per_class = f1_score(gold, predicted, labels=list(labels), average=None, zero_division=0)
    macro = f1_score(gold, predicted, labels=list(labels), average="macro", zero_division=0)
    return np.concatenate([[np.mean(gold == predicted), macro], per_class])


def compare_models(a: ModelRunner, b: ModelRunner, inputs: Sequence[Input], *, draws: int = 1000, seed: int = 0,
                   progress: ProgressFn | None = None) -> ModelDiff:
    """What changed from model A to model B on the same labelled inputs, less those either trained on."""
    from core.analyses.training_data.training_sets import recorded_training_texts

    labels = _same_labels(a, b)
    check_labels(inputs, labels)
    seen = recorded_training_texts(a.loaded) | recorded_training_texts(b.loaded)
    kept = [i for i in inputs if i.text not in seen]
    if not kept:
        raise EvaluationError(f"Every one of the {len(inputs)} inputs is a training row of model A or B: "
                              "compare on rows neither model was trained on.")
    left_out, inputs = len(inputs) - len(kept), kept
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    texts = [i.text for i in inputs]
    predicted_a = a.probabilities_for_texts(texts, lambda f, m: report(0.5 * f, f"Model A: {m}")).argmax(axis=1)
    predicted_b = b.probabilities_for_texts(texts, lambda f, m: report(0.5 + 0.45 * f, f"Model B: {m}")).argmax(axis=1)
    gold = np.array([labels.index(i.gold_label) for i in inputs])
    indices = list(range(len(labels)))
    point_a, point_b = _scores(gold, predicted_a, indices), _scores(gold, predicted_b, indices)
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(draws):
        rows = rng.integers(0, len(gold), len(gold))
        samples.append(_scores(gold[rows], predicted_b[rows], indices) - _scores(gold[rows], predicted_a[rows], indices))
    low, high = np.quantile(np.array(samples), [0.025, 0.975], axis=0)
    names = ["accuracy", "macro-F1"] + [f"F1 {label}" for label in labels]
    deltas = [Delta(n, float(x), float(y), float(y - x), float(lo), float(hi))
              for n, x, y, lo, hi in zip(names, point_a, point_b, low, high, strict=True)]

    def changed(mask: np.ndarray) -> list[Changed]:
        return [Changed(int(i), inputs[i].text, labels[gold[i]], labels[predicted_a[i]], labels[predicted_b[i]])
                for i in np.flatnonzero(mask)]

    right_a, right_b = predicted_a == gold, predicted_b == gold
    report(1.0, "Done")
    return ModelDiff(a.loaded.name, b.loaded.name, labels, len(inputs), deltas, changed(~right_a & right_b),
                     changed(right_a & ~right_b), changed(~right_a & ~right_b & (predicted_a != predicted_b)),
                     time.perf_counter() - started, left_out)


@dataclass(frozen=True)
class MethodPair:
    method: str
    a: Explanation
    b: Explanation
    spearman: float  # between the two models' word scores
    top_k_overlap: float


def explain_both(a: ModelRunner, b: ModelRunner, text: str, methods: Sequence[str], *, target: str | None = None,
                 k: int = 5, explain: Callable[[ModelRunner, str, str, str], Explanation] | None = None,
                 ) -> list[MethodPair]:
    """Both models' explanations of the same label (default: model A's prediction) on one input, per method."""
    from core.methods.explain import explain as direct

    labels = _same_labels(a, b)
    run = explain or direct
    chosen = target or labels[int(np.argmax(a.probabilities_for_texts([text])[0]))]
    return _pairs(a, b, text, methods, chosen, k, run)


class _NotStored(LookupError):
    pass


def stored_pairs(engine, a: ModelRunner, b: ModelRunner, text: str, methods: Sequence[str], *, k: int = 5,
                 only_stored: bool = False) -> list[MethodPair] | None:
    """`explain_both` through the store (model A's predicted label). With `only_stored` no pass is made: the
    label is the one whose stored explanations say model A predicts it; None when any is missing."""
    from core.analyses.store import explain_stored

    def stored(runner: ModelRunner, words: str, method: str, target: str) -> Explanation:
        found = explain_stored(engine, runner, words, method, target, only_stored=only_stored)
        if found is None:
            raise _NotStored(method)
        return found.explanation

    if not only_stored:
        return explain_both(a, b, text, methods, k=k, explain=stored)
    labels = _same_labels(a, b)
    for candidate in labels:
        try:
            pairs = _pairs(a, b, text, methods, candidate, k, stored)
        except _NotStored:
            continue
        predicted = max(labels, key=lambda label: pairs[0].a.probabilities[label]) if pairs else candidate
        if predicted == candidate:
            return pairs
    return None


def _pairs(a: ModelRunner, b: ModelRunner, text: str, methods: Sequence[str], chosen: str, k: int,
           run: Callable[[ModelRunner, str, str, str], Explanation]) -> list[MethodPair]:
    pairs = []
    for method in methods:
        first, second = run(a, text, method, chosen), run(b, text, method, chosen)
        x, y = np.asarray(first.scores), np.asarray(second.scores)
        spearman = float(spearmanr(x, y).statistic) if len(x) > 1 and np.ptp(x) > 0 and np.ptp(y) > 0 else float("nan")
        pairs.append(MethodPair(method, first, second, spearman, feature_agreement(x, y, k)))
    return pairs


DIFF_KIND = "model-diff"


def stored_diff(engine, a: ModelRunner, b: ModelRunner, inputs: Sequence[Input], *, fresh: bool = False,
                only_stored: bool = False, progress: ProgressFn | None = None) -> ModelDiff | None:
    """`compare_models` through the store (kind "model-diff", keyed by both weights and the inputs), so a
    share link reopens the comparison with no model work."""
    import hashlib
    import json

    from core.storage.records import stored_or_computed

    digest = hashlib.sha256(json.dumps([[i.text, i.gold_label] for i in inputs], ensure_ascii=False).encode()).hexdigest()
    key = json.dumps({"a": a.loaded.fingerprint, "b": b.loaded.fingerprint, "inputs": digest})

    def decode(data: dict) -> ModelDiff:
        return ModelDiff(**{**data, "deltas": [Delta(**d) for d in data["deltas"]],
                            **{name: [Changed(**c) for c in data[name]] for name in ("fixed", "broken", "changed_errors")}})

    return stored_or_computed(engine, DIFF_KIND, a.loaded, key, lambda: compare_models(a, b, inputs, progress=progress),
                              encode=ModelDiff.to_dict, decode=decode, fresh=fresh, only_stored=only_stored)
