"""Do the model's errors share a cause? Group them, describe each group, and test hypotheses by slice.

- **Representation**: the input of the model's final linear layer (what training-data attribution
  compares too), L2-normalised, so the groups are errors the model itself sees as alike.
- **Clustering**: scikit-learn's HDBSCAN (minimum group size max(5, errors / 40)): it chooses the number
  of groups itself and leaves errors that resemble no other unassigned ("scattered"), which is the
  honest answer when errors do not share a cause; k-means would force every error into a group.
- **Lifted words**: every member and a sample of correctly classified inputs are explained by the fast
  word-level methods (stored, so repeated runs are free); a word's share in a set is the mean, over its
  inputs, of the fraction of methods that rank the word in their top-k (for the predicted label). A
  group's words are ranked by lift = (share in the group + s) / (share among correct inputs + s),
  s = 1 / (2 x correct inputs), among words that at least two members (and a fifth of them) contain.
- **Training neighbours**: when the model has a training set, the training examples most often among
  the members' five nearest (`core.analyses.training_data.nearest`), and their label distribution.
- **Slices**: errors and accuracy (Wilson 95% interval) on the inputs that contain a word or match a
  pattern, against the rest.
"""

from __future__ import annotations

import io
import math
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from sqlalchemy import Engine

from core.analyses.agreement import top_k
from core.analyses.corpus.jobs import items_of, require_job
from core.analyses.evaluation import EvaluatedInput, EvaluationError
from core.engine.runner import ModelRunner, ProgressFn
from core.spreadsheet import SafeWriter
from core.storage.schema import sample_now

DEFAULT_METHODS = ("saliency", "input_x_gradient", "attention")  # a backward or a forward pass each: grouping stays cheap
WORD = re.compile(r"\w+(?:['’]\w+)*")


def _quiet(fraction: float, message: str) -> None:
    pass


def evaluated_inputs(engine: Engine, job_id: int) -> list[EvaluatedInput]:
    """Every evaluated input of an evaluation job (correct and wrong), in input order."""
    require_job(engine, job_id)
    items = [i for i in items_of(engine, job_id, "done") if i.gold_label and i.result.probabilities]
    if not items:
        raise EvaluationError("No evaluated inputs yet.")
    return [EvaluatedInput(i.position, i.origin, i.text, i.gold_label, i.predicted_label,
                           float(i.result.probabilities[i.predicted_label])) for i in items]


@dataclass(frozen=True)
class LiftedWord:
    word: str
    members: int  # members where at least one method ranks it in the top-k
    group_share: float
    reference_share: float
    lift: float


@dataclass(frozen=True)
class Neighbour:
    id: str
    text: str
    gold: str
    members: int  # members that have it among their nearest training examples


@dataclass(frozen=True)
class ErrorGroup:
    id: int
    confusion: str  # the most common "gold -> predicted" pair
    confusion_share: float
    members: list[EvaluatedInput]
    words: list[LiftedWord]
    neighbours: list[Neighbour] = field(default_factory=list)
    neighbour_labels: dict[str, float] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class ErrorGroups:
    groups: list[ErrorGroup]  # largest first
    scattered: list[EvaluatedInput]  # errors in no group
    errors: int
    reference_inputs: int
    methods: list[str]
    k: int
    clustering: str
    seconds: float
    forward_passes: int
    member_words: dict[int, list[str]] = field(default_factory=dict)  # input position -> its top words
    note: str = ""
    sample: bool = False  # computed for the sample workspace (core/work/samples.py)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ErrorGroups:
        def group(g: dict[str, Any]) -> ErrorGroup:
            return ErrorGroup(g["id"], g["confusion"], g["confusion_share"], [EvaluatedInput(**m) for m in g["members"]],
                              [LiftedWord(**w) for w in g["words"]], [Neighbour(**n) for n in g["neighbours"]],
                              g["neighbour_labels"])

        return cls(**{**data, "groups": [group(g) for g in data["groups"]],
                      "scattered": [EvaluatedInput(**e) for e in data["scattered"]],
                      "member_words": {int(k): v for k, v in data["member_words"].items()}})

    def group(self, group_id: int) -> ErrorGroup:
        for candidate in self.groups:
            if candidate.id == group_id:
                return candidate
        raise EvaluationError(f"There is no error group {group_id}; groups: "
                              f"{', '.join(str(g.id) for g in self.groups) or 'none'}.")


def cluster(vectors: np.ndarray, min_size: int | None = None) -> np.ndarray:
    """HDBSCAN labels over L2-normalised rows (-1: in no group)."""
    from sklearn.cluster import HDBSCAN

    if len(vectors) < 4:
        return np.full(len(vectors), -1)
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    size = max(2, min_size or max(5, len(vectors) // 40))  # HDBSCAN needs two points to a group
    return HDBSCAN(min_cluster_size=min(size, len(vectors)), copy=True).fit_predict(unit)


def word_shares(word_sets: Sequence[dict[str, float]]) -> dict[str, float]:
    """Mean over inputs of each word's fraction of methods ranking it in the top-k."""
    totals: Counter[str] = Counter()
    for words in word_sets:
        totals.update(words)
    return {w: total / max(1, len(word_sets)) for w, total in totals.items()}


def lifted_words(members: Sequence[dict[str, float]], reference: Sequence[dict[str, float]],
                 limit: int = 8) -> list[LiftedWord]:
    """The words a group's members rank high far more often than correctly classified inputs do."""
    group_share, reference_share = word_shares(members), word_shares(reference)
    counts = Counter(w for words in members for w in words)
    smoothing = 1.0 / (2 * max(1, len(reference)))
    least = max(2, math.ceil(0.2 * len(members)))
    rows = [LiftedWord(w, counts[w], group_share[w], reference_share.get(w, 0.0),
                       (group_share[w] + smoothing) / (reference_share.get(w, 0.0) + smoothing))
            for w in group_share if counts[w] >= least]
    return sorted(rows, key=lambda r: (-r.lift, -r.group_share, r.word))[:limit]


def top_words(runner: ModelRunner, engine: Engine | None, text: str, methods: Sequence[str], k: int) -> dict[str, float]:
    """word -> fraction of `methods` that rank it in their top-k for the predicted label (lowercased words)."""
    from core.analyses.store import explain_stored
    from core.methods.explain import explain

    votes: Counter[str] = Counter()
    for method in methods:
        result = explain_stored(engine, runner, text, method).explanation if engine is not None else \
            explain(runner, text, method)
        chosen = {result.words[i].lower() for i in top_k(result.scores, k) if WORD.fullmatch(result.words[i])}
        votes.update(chosen)
    return {w: n / len(methods) for w, n in votes.items()}


def error_groups(engine: Engine, runner: ModelRunner, job_id: int, *, methods: Sequence[str] = DEFAULT_METHODS,
                 k: int = 3, reference: int = 300, min_size: int | None = None, seed: int = 0,
                 store_explanations: bool = True, progress: ProgressFn | None = None) -> ErrorGroups:
    """Group the evaluation's errors and describe each group (see the module docstring)."""
    from core.methods.registry import get_method

    for method in methods:
        get_method(method)
    report = progress or _quiet
    started, passes_before = time.perf_counter(), runner.forward_passes
    inputs = evaluated_inputs(engine, job_id)
    errors = [i for i in inputs if i.gold != i.predicted]
    correct = [i for i in inputs if i.gold == i.predicted]
    if not errors:
        raise EvaluationError("The model made no errors on this set: nothing to group.")
    rng = np.random.default_rng(seed)
    sample = [correct[i] for i in sorted(rng.choice(len(correct), size=min(reference, len(correct)), replace=False))]
    report(0.02, f"Representations of {len(errors)} errors")
    vectors, _ = runner.head_inputs([e.text for e in errors])
    labels = cluster(vectors, min_size)
    store = engine if store_explanations else None
    explained = errors + sample
    words: dict[int, dict[str, float]] = {}
    for n, item in enumerate(explained):
        words[item.position] = top_words(runner, store, item.text, methods, k)
        report(0.05 + 0.85 * (n + 1) / len(explained), f"Explained {n + 1}/{len(explained)} inputs")
    reference_words = [words[i.position] for i in sample]
    neighbours = _training_neighbours(engine, runner, vectors)
    groups = []
    for label in sorted(set(labels.tolist()) - {-1}):
        rows = [i for i, value in enumerate(labels) if value == label]
        members = sorted((errors[i] for i in rows), key=lambda e: -e.confidence)
        pairs = Counter(f"{e.gold} -> {e.predicted}" for e in members)
        confusion, count = pairs.most_common(1)[0]
        near, distribution = neighbours(rows) if neighbours else ([], {})
        groups.append(ErrorGroup(0, confusion, count / len(members), members,
                                 lifted_words([words[e.position] for e in members], reference_words), near, distribution))
    groups.sort(key=lambda g: -g.size)
    groups = [ErrorGroup(n + 1, g.confusion, g.confusion_share, g.members, g.words, g.neighbours, g.neighbour_labels)
              for n, g in enumerate(groups)]
    scattered = sorted((errors[i] for i, value in enumerate(labels) if value == -1), key=lambda e: -e.confidence)
    report(1.0, f"{len(groups)} groups")
    member_words = {e.position: sorted(words[e.position], key=lambda w: -words[e.position][w]) for e in errors}
    note = "" if neighbours else "No training set for this model: groups are shown without training neighbours."
    return ErrorGroups(groups, scattered, len(errors), len(sample), list(methods), k,
                       f"HDBSCAN over the final layer's input, minimum group size {min_size or max(5, len(errors) // 40)}",
                       time.perf_counter() - started, runner.forward_passes - passes_before, member_words, note)


def _training_neighbours(engine: Engine, runner: ModelRunner, vectors: np.ndarray, per_member: int = 5,
                         ) -> Callable[[Sequence[int]], tuple[list[Neighbour], dict[str, float]]] | None:
    """A function from member rows to (most frequent nearest training examples, their label shares), or None."""
    from core.analyses.training_data.features import prepare
    from core.analyses.training_data.nearest import index_for, search
    from core.analyses.training_data.training_sets import TrainingDataError, training_set_for

    try:
        training = training_set_for(engine, runner.loaded)
    except TrainingDataError:
        return None
    prepared = prepare(runner.loaded, training)
    index = index_for(prepared, 100_000)
    found = [search(index, vector, per_member)[0] for vector in vectors]

    def describe(rows: Sequence[int]) -> tuple[list[Neighbour], dict[str, float]]:
        counts = Counter(int(r) for row in rows for r in found[row])
        listed = [Neighbour(training.examples[r].id, training.examples[r].text, training.examples[r].label, n)
                  for r, n in counts.most_common(5)]
        labels = Counter(training.examples[r].label for row in rows for r in found[row])
        total = sum(labels.values())
        return listed, {label: labels.get(label, 0) / total for label in runner.loaded.labels}

    return describe


def group_csv(groups: ErrorGroups, group_id: int) -> str:
    """One group as CSV (text, gold, predicted, confidence, top words): for relabelling or extra training data."""
    group = groups.group(group_id)
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(["text", "gold", "predicted", "confidence", "top_words", "group", "confusion"])
    for member in group.members:
        writer.writerow([member.text, member.gold, member.predicted, f"{member.confidence:.4f}",
                         " ".join(groups.member_words.get(member.position, [])), group.id, group.confusion])
    return out.getvalue()


def wilson_interval(successes: int, total: int, z: float = 1.96) -> tuple[float, float]:
    if total == 0:
        return (float("nan"), float("nan"))
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class SliceSide:
    inputs: int
    errors: int
    accuracy: float
    low: float
    high: float


@dataclass(frozen=True)
class SliceReport:
    pattern: str
    matching: SliceSide
    rest: SliceSide
    errors: list[EvaluatedInput]  # the slice's errors, most confident first


def _side(items: Sequence[EvaluatedInput]) -> SliceSide:
    right = sum(1 for i in items if i.gold == i.predicted)
    low, high = wilson_interval(right, len(items))
    return SliceSide(len(items), len(items) - right, right / len(items) if items else float("nan"), low, high)


def slice_report(inputs: Sequence[EvaluatedInput], pattern: str, regex: bool = False) -> SliceReport:
    """Accuracy on the inputs containing `pattern` (a whole word, case-insensitive; or a regular expression)."""
    if not pattern.strip():
        raise EvaluationError("Give a word or a pattern to slice by.")
    try:
        compiled = re.compile(pattern if regex else rf"(?<!\w){re.escape(pattern.strip())}(?!\w)", re.IGNORECASE)
    except re.error as exc:
        raise EvaluationError(f"'{pattern}' is not a valid regular expression: {exc}.") from exc
    matching = [i for i in inputs if compiled.search(i.text)]
    rest = [i for i in inputs if not compiled.search(i.text)]
    errors = sorted((i for i in matching if i.gold != i.predicted), key=lambda e: -e.confidence)
    return SliceReport(pattern, _side(matching), _side(rest), errors)


GROUPS_KIND = "error-groups"


def stored_groups(engine: Engine, runner: ModelRunner, job_id: int, *, methods: Sequence[str] = DEFAULT_METHODS,
                  k: int = 3, reference: int = 300, min_size: int | None = None, fresh: bool = False,
                  only_stored: bool = False, progress: ProgressFn | None = None) -> ErrorGroups | None:
    """`error_groups` through the store (kind "error-groups"): a page reload or a CLI call reads it back."""
    import json

    from core.storage.records import stored_or_computed

    key = json.dumps({"job": job_id, "methods": list(methods), "k": k, "reference": reference,
                      **({"min_size": min_size} if min_size else {})})  # automatic size: the keys stored before
    return stored_or_computed(
        engine, GROUPS_KIND, runner.loaded, key,
        lambda: replace(error_groups(engine, runner, job_id, methods=methods, k=k, reference=reference,
                                     min_size=min_size, progress=progress), sample=sample_now()),
        encode=ErrorGroups.to_dict, decode=ErrorGroups.from_dict, fresh=fresh, only_stored=only_stored)
