"""Where is the model wrong? Evaluation on a labelled set, as a stored corpus job that only predicts.

An evaluation is a corpus job with no methods (`core.analyses.corpus.jobs`): the same storage, background
runner, progress, stop and resume, and worker processes or Ray; each input stores its probabilities.
The metrics are computed from the stored items: per-class precision, recall and F1, macro-F1 and
accuracy (scikit-learn's definitions), the confusion matrix, and calibration (reliability diagram
over equal-width confidence bins and the expected calibration error, Guo et al. 2017), plus the
errors sorted by confidence, "confidently wrong" first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from sqlalchemy import Engine

from core.analyses.corpus.inputs import MAX_ROWS, CorpusError, Input
from core.analyses.corpus.jobs import create_job, items_of, require_job
from core.spreadsheet import original


class EvaluationError(CorpusError):
    """A labelled set that cannot be evaluated (no labels, labels the model does not have)."""


def heldout_inputs(limit: int | None = None, language: str = "en") -> list[Input]:
    """A default model's own held-out split, available with no upload: 2,000 labelled tweets ("en"), or the
    Chinese model's 2,000 labelled reviews ("zh", the same stratified split its build scored)."""
    from core.engine.default_model import BuildConfig, load_corpus, split_corpus

    if language == "zh":
        from core.engine.chinese_model import ZH_DEFAULTS, load_zh_corpus

        _, heldout = split_corpus(load_zh_corpus(), ZH_DEFAULTS)
        name = "held-out review"
    else:
        _, heldout = split_corpus(load_corpus(), BuildConfig())
        name = "held-out row"
    rows = list(zip(heldout["text"].astype(str), heldout["sentiment"].astype(str), strict=True))[:limit]
    return [Input(f"{name} {i + 1}", text, label) for i, (text, label) in enumerate(rows)]


LABEL_TAG = "label:"


def labelled_snapshot_inputs(engine: Engine, labels: Sequence[str], fits: Callable[[str], bool]) -> list[Input]:
    """Passages of the snapshots whose links carry a label tag (`label:negative`), labelled with it (matched to
    the model's labels regardless of case: tags are stored in lower case)."""
    from core.analyses.corpus.inputs import split_into_passages
    from core.library.snapshots import latest_good_snapshot, list_links

    by_lower = {label.lower(): label for label in labels}
    inputs, conflicts = [], []
    for view in list_links(engine):
        tagged = sorted({t[len(LABEL_TAG):] for t in view.tags if t.startswith(LABEL_TAG)})
        if not tagged:
            continue
        if len(tagged) > 1:
            conflicts.append(f"{view.url} ({', '.join(tagged)})")
            continue
        snap = latest_good_snapshot(engine, view.id)
        if snap is None:
            continue
        gold = by_lower.get(tagged[0], tagged[0])
        inputs += [Input(f"snapshot {snap.id}, passage {n + 1}", passage, gold)
                   for n, passage in enumerate(split_into_passages(snap.text, fits))]
    if conflicts:
        raise EvaluationError(f"Links tagged with two labels: {'; '.join(conflicts)}.")
    if not inputs:
        raise EvaluationError(f"No snapshot carries a label tag: tag links with {LABEL_TAG}LABEL "
                              f"(e.g. {LABEL_TAG}{labels[0].lower() if labels else 'negative'}).")
    return inputs


def inputs_from_file(content: str, name: str, text_column: str = "text", label_column: str = "label") -> list[Input]:
    """Labelled rows from a CSV or a JSONL file (one JSON object per line), read row by row up to MAX_ROWS."""
    rows: list[Input] = []
    if name.lower().endswith((".jsonl", ".ndjson")):
        for n, line in enumerate(io.StringIO(content), start=1):
            if not line.strip():
                continue
            check_row_count(len(rows), name)
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvaluationError(f"Line {n} of {name} is not JSON ({exc.msg}).") from exc
            if not isinstance(record, dict) or text_column not in record or label_column not in record:
                raise EvaluationError(f"Line {n} of {name} has no '{text_column}' and '{label_column}' fields.")
            rows.append(Input(f"line {n}", str(record[text_column]).strip(), str(record[label_column]).strip()))
    else:
        reader = csv.DictReader(io.StringIO(content))
        missing = [c for c in (text_column, label_column) if c not in (reader.fieldnames or [])]
        if missing:
            raise EvaluationError(f"The CSV has no column {', '.join(repr(c) for c in missing)} "
                                  f"(columns: {', '.join(reader.fieldnames or [])}).")
        for n, row in enumerate(reader, start=2):
            check_row_count(len(rows), name)
            rows.append(Input(f"csv row {n}", original((row[text_column] or "").strip()), (row[label_column] or "").strip()))
    rows = [r for r in rows if r.text]
    if not rows:
        raise EvaluationError(f"{name} has no labelled texts.")
    return rows


def check_row_count(rows_so_far: int, name: str) -> None:
    if rows_so_far >= MAX_ROWS:
        raise EvaluationError(f"{name} has more than {MAX_ROWS:,} rows, the most one upload may have; split it.")


def check_labels(inputs: Sequence[Input], labels: Sequence[str]) -> None:
    """Every gold label must be one of the model's labels; otherwise one error naming the mismatches."""
    unlabelled = sum(1 for i in inputs if not i.gold_label)
    if unlabelled:
        raise EvaluationError(f"{unlabelled} of {len(inputs)} inputs have no label.")
    unknown: dict[str, int] = {}
    for item in inputs:
        if item.gold_label not in labels:
            unknown[item.gold_label] = unknown.get(item.gold_label, 0) + 1
    if unknown:
        listed = ", ".join(f"'{label}' ({count})" for label, count in sorted(unknown.items(), key=lambda kv: -kv[1]))
        raise EvaluationError(f"Labels the model does not have: {listed}; its labels are {', '.join(labels)}.")


def create_evaluation(engine: Engine, name: str, inputs: Sequence[Input], labels: Sequence[str], *,
                      model: str = "", source: str = "") -> int:
    """A stored prediction-only job over labelled inputs (run it like any corpus job)."""
    check_labels(inputs, labels)
    return create_job(engine, name or f"evaluation of {len(inputs)}", inputs, [], model=model, source=source,
                      faithfulness_inputs=0, predict_only=True)


@dataclass(frozen=True)
class ClassScores:
    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class ReliabilityBin:
    low: float
    high: float
    inputs: int
    confidence: float  # mean confidence in the bin (nan when empty)
    accuracy: float


@dataclass(frozen=True)
class EvaluatedInput:
    position: int
    origin: str
    text: str
    gold: str
    predicted: str
    confidence: float  # probability of the predicted label


@dataclass(frozen=True)
class Evaluation:
    labels: list[str]
    inputs: int
    accuracy: float
    macro_f1: float
    per_class: list[ClassScores]
    confusion: list[list[int]]  # rows gold, columns predicted, in `labels` order
    ece: float
    reliability: list[ReliabilityBin]
    errors: list[EvaluatedInput]  # most confident first

    def to_dict(self) -> dict:
        return asdict(self)

    def errors_in(self, gold: str, predicted: str) -> list[EvaluatedInput]:
        """One cell of the confusion matrix, as the page's filter uses it."""
        return [e for e in self.errors if e.gold == gold and e.predicted == predicted]


def calibration(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> tuple[float, list[ReliabilityBin]]:
    """Expected calibration error over `bins` equal-width confidence bins, and the bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    rows, ece = [], 0.0
    for b in range(bins):
        inside = (confidence > edges[b]) & (confidence <= edges[b + 1]) if b else (confidence <= edges[1])
        n = int(inside.sum())
        mean_confidence = float(confidence[inside].mean()) if n else float("nan")
        accuracy = float(correct[inside].mean()) if n else float("nan")
        if n:
            ece += n / len(confidence) * abs(accuracy - mean_confidence)
        rows.append(ReliabilityBin(float(edges[b]), float(edges[b + 1]), n, mean_confidence, accuracy))
    return float(ece), rows


def evaluation(engine: Engine, job_id: int, labels: Sequence[str], bins: int = 10) -> Evaluation:
    """Metrics over the job's finished inputs (all of them once it is done)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support

    require_job(engine, job_id)
    items = [i for i in items_of(engine, job_id, "done") if i.gold_label and i.result.probabilities]
    if not items:
        raise EvaluationError("No evaluated inputs yet.")
    labels = list(labels)
    gold = [i.gold_label for i in items]
    predicted = [i.predicted_label for i in items]
    confidence = np.array([i.result.probabilities[i.predicted_label] for i in items])
    correct = np.array([g == p for g, p in zip(gold, predicted, strict=True)])
    precision, recall, f1, support = precision_recall_fscore_support(gold, predicted, labels=labels, zero_division=0)
    ece, reliability = calibration(confidence, correct, bins)
    errors = [EvaluatedInput(i.position, i.origin, i.text, g, p, float(c))
              for i, g, p, c in zip(items, gold, predicted, confidence, strict=True) if g != p]
    return Evaluation(
        labels=labels, inputs=len(items), accuracy=float(correct.mean()),
        macro_f1=float(f1_score(gold, predicted, labels=labels, average="macro", zero_division=0)),
        per_class=[ClassScores(label, float(p), float(r), float(f), int(s))
                   for label, p, r, f, s in zip(labels, precision, recall, f1, support, strict=True)],
        confusion=confusion_matrix(gold, predicted, labels=labels).tolist(), ece=ece, reliability=reliability,
        errors=sorted(errors, key=lambda e: (-e.confidence, e.position)))
