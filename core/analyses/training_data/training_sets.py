"""Which rows a model was trained on, and the checkpoints it passed through.

Two sources, in this order:
- the model directory: the default build writes `training.jsonl` (the exact rows, with the label
  each was trained with) and `checkpoints.json` (evenly spaced checkpoints, the last being the model,
  each with the mean learning rate of the steps it closes);
- a set attached to the model in the database (`rashomon data attach`): any labelled CSV or JSONL.
  Such a model has no training checkpoints, so checkpoint-based methods use the final weights only
  (a single checkpoint with learning rate 1) and say so.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property

from sqlalchemy import Engine
from sqlmodel import col, select

from core.analyses.evaluation import EvaluationError, check_labels, inputs_from_file
from core.engine.modelling import LoadedModel
from core.storage.db import session_scope
from core.storage.schema import TrainingExampleRecord, TrainingSetRecord

FINAL_WEIGHTS_ONLY = ("no training checkpoints recorded for this model: checkpoint-based methods use the "
                      "final weights only (one checkpoint, learning rate 1)")


class TrainingDataError(ValueError):
    """No usable training set (none attached, a bad file, labels the model does not have)."""


@dataclass(frozen=True)
class TrainingExample:
    id: str
    text: str
    label: str


@dataclass(frozen=True)
class Checkpoint:
    path: str  # a model directory
    learning_rate: float
    step: int | None = None


@dataclass(frozen=True)
class TrainingSet:
    name: str
    source: str  # "model directory" | "attached"
    examples: tuple[TrainingExample, ...]
    checkpoints: tuple[Checkpoint, ...]
    checkpoint_note: str = ""
    flipped: frozenset[str] = field(default_factory=frozenset)  # ids of deliberately mislabelled rows
    start: str | None = None  # the weights training started from (a retraining starts there too)
    config: dict | None = None  # the training settings (core.engine.default_model.BuildConfig)

    @cached_property
    def sha256(self) -> str:  # once per set: hashing 8,000 rows costs tens of milliseconds
        return examples_sha256(self.examples)

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.examples]

    def index_of(self, example_id: str) -> int:
        for position, example in enumerate(self.examples):
            if example.id == example_id:
                return position
        raise TrainingDataError(f"No training example '{example_id}' in {self.name}.")


def examples_sha256(examples: Sequence[TrainingExample]) -> str:
    digest = hashlib.sha256()
    for example in examples:
        digest.update(json.dumps([example.id, example.text, example.label], ensure_ascii=False).encode())
    return digest.hexdigest()


def read_examples(content: str, name: str, labels: Sequence[str], text_column: str = "text",
                  label_column: str = "label") -> list[TrainingExample]:
    """Labelled rows from CSV or JSONL; every label must be one of the model's (one error listing the rest)."""
    try:
        inputs = inputs_from_file(content, name, text_column, label_column)
        check_labels(inputs, labels)
    except EvaluationError as exc:
        raise TrainingDataError(str(exc)) from exc
    return [TrainingExample(f"row-{n + 1}", item.text, item.gold_label) for n, item in enumerate(inputs)]


def attach(engine: Engine, loaded: LoadedModel, examples: Sequence[TrainingExample], name: str) -> int:
    """Store `examples` as the training set of `loaded` (the newest attached set is the one used)."""
    if not examples:
        raise TrainingDataError("The training set is empty.")
    with session_scope(engine) as session:
        record = TrainingSetRecord(model_path=loaded.path, model_name=loaded.name, name=name, rows=len(examples),
                                   sha256=examples_sha256(examples))
        session.add(record)
        session.flush()
        session.add_all(TrainingExampleRecord(set_id=record.id, position=n, example_id=e.id, text=e.text, label=e.label)
                        for n, e in enumerate(examples))
        return int(record.id)


@dataclass(frozen=True)
class AttachedSet:
    id: int
    model_path: str
    model_name: str
    name: str
    rows: int
    sha256: str
    created_at: str
    requested_by: str  # who attached it


def attached_sets(engine: Engine, model_path: str | None = None) -> list[AttachedSet]:
    with session_scope(engine) as session:
        query = select(TrainingSetRecord).order_by(col(TrainingSetRecord.id).desc())
        if model_path:
            query = query.where(TrainingSetRecord.model_path == model_path)
        return [AttachedSet(r.id, r.model_path, r.model_name, r.name, r.rows, r.sha256, r.created_at.isoformat(),
                             r.requested_by)
                for r in session.exec(query)]


def _attached_examples(engine: Engine, set_id: int) -> tuple[TrainingExample, ...]:
    with session_scope(engine) as session:
        rows = session.exec(select(TrainingExampleRecord).where(TrainingExampleRecord.set_id == set_id)
                            .order_by(col(TrainingExampleRecord.position)))
        return tuple(TrainingExample(r.example_id, r.text, r.label) for r in rows)


def _from_model_directory(loaded: LoadedModel) -> TrainingSet | None:
    directory = loaded.directory
    rows_file = directory / "training.jsonl"
    if not rows_file.is_file():
        return None
    examples, flipped = [], set()
    for line in rows_file.read_text(encoding="utf-8").split("\n"):  # not splitlines: tweets hold U+2028
        if line.strip():
            record = json.loads(line)
            examples.append(TrainingExample(str(record["id"]), record["text"], record["label"]))
            if record.get("flipped"):
                flipped.add(str(record["id"]))
    checkpoints: tuple[Checkpoint, ...] = ()
    note, start, config = "", None, None
    plan_file = directory / "checkpoints.json"
    if plan_file.is_file():
        plan = json.loads(plan_file.read_text())
        checkpoints = tuple(Checkpoint(str((directory / c["path"]).resolve()), float(c["learning_rate"]), c.get("step"))
                            for c in plan["checkpoints"])
        if plan.get("start") and (directory / plan["start"]).is_dir():
            start, config = str(directory / plan["start"]), plan.get("config")
    if not checkpoints:
        checkpoints, note = (Checkpoint(str(directory), 1.0),), FINAL_WEIGHTS_ONLY
    return TrainingSet(f"{loaded.name} training rows", "model directory", tuple(examples), checkpoints, note,
                       frozenset(flipped), start, config)


def recorded_training_texts(loaded: LoadedModel) -> frozenset[str]:
    """The texts a model directory records training on (empty when it records none)."""
    own = _from_model_directory(loaded)
    return frozenset(e.text for e in own.examples) if own else frozenset()


def training_set_for(engine: Engine, loaded: LoadedModel) -> TrainingSet:
    """The training set of `loaded`: its own recorded rows, else the newest attached set, else a clear error."""
    own = _from_model_directory(loaded)
    if own is not None:
        return own
    sets = attached_sets(engine, loaded.path)
    if sets:
        newest = sets[0]
        return TrainingSet(newest.name, "attached", _attached_examples(engine, newest.id),
                           (Checkpoint(loaded.path, 1.0),), FINAL_WEIGHTS_ONLY)
    if (loaded.directory / "rashomon.json").is_file() and "rashomon-minilm" in (loaded.directory / "rashomon.json").read_text():
        raise TrainingDataError("This default model was built before training rows were recorded: rebuild it with "
                                "`rashomon model build-default` (or the button on the Training data page).")
    raise TrainingDataError(f"No training set for {loaded.name}: attach one with "
                            "`rashomon data attach FILE` (CSV or JSONL with text and label columns).")
