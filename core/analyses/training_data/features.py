"""What every training-data attribution method reads: for each training checkpoint, each training
example's representation (the input of the final linear layer), its probabilities, and the head.

Prepared once per (model, training set, checkpoints), stored under RASHOMON_HOME/training-data/KEY
and reused across restarts; methods add their own stored extras (an index, influence embeddings,
representer weights) through `Prepared.extra`. The gradient of the cross-entropy loss with respect
to the final layer's weights is the outer product (p - onehot(y)) x [a, 1], so these arrays hold every
per-example last-layer gradient without storing one.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.analyses.training_data.training_sets import TrainingSet
from core.engine.modelling import LoadedModel, final_linear, load_weights
from core.engine.runner import ModelRunner, ProgressFn
from core.storage.settings import load_settings

FORMAT = 1


@dataclass(frozen=True)
class CheckpointState:
    learning_rate: float
    step: int | None
    activations: np.ndarray  # (n, d) input of the final linear layer
    probabilities: np.ndarray  # (n, labels)
    weight: np.ndarray  # (labels, d)
    bias: np.ndarray  # (labels,)

    def loss_gradients(self, targets: np.ndarray) -> np.ndarray:
        """d loss / d logits for every example: p - onehot(target), shape (n, labels)."""
        gradients = self.probabilities.astype(np.float64).copy()
        gradients[np.arange(len(targets)), targets] -= 1.0
        return gradients


@dataclass
class Prepared:
    training: TrainingSet
    labels: list[str]
    targets: np.ndarray  # label index each training example was trained with
    states: list[CheckpointState]  # in training order; the last is the model itself
    directory: Path
    seconds: float  # what preparing the representations cost (0 when read back)
    passes: int
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _extras: dict[str, dict[str, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def final(self) -> CheckpointState:
        return self.states[-1]

    @property
    def predicted(self) -> np.ndarray:
        return self.final.probabilities.argmax(axis=1)

    def extra(self, name: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """A method's stored preparation (arrays): built on first use, stored, kept in memory afterwards."""
        path = self.directory / f"{name}.npz"
        with self._lock:
            if name in self._extras:
                return self._extras[name]
            if path.is_file():
                with np.load(path) as stored:
                    arrays = {key: stored[key] for key in stored.files}
            else:
                arrays = build()
                temporary = path.with_suffix(".partial.npz")
                np.savez(temporary, **arrays)
                temporary.replace(path)
            self._extras[name] = arrays
            return arrays


@dataclass(frozen=True)
class Query:
    """One input seen by every checkpoint."""

    text: str
    activations: list[np.ndarray]  # per checkpoint, (d,)
    probabilities: list[np.ndarray]  # per checkpoint, (labels,)
    passes: int

    @property
    def final_probabilities(self) -> np.ndarray:
        return self.probabilities[-1]


def preparation_key(loaded: LoadedModel, training: TrainingSet) -> str:
    plan = json.dumps([FORMAT, loaded.fingerprint, training.sha256,
                       [(c.step, c.learning_rate) for c in training.checkpoints]])
    return hashlib.sha256(plan.encode()).hexdigest()[:20]


def preparation_dir(loaded: LoadedModel, training: TrainingSet) -> Path:
    return load_settings().home / "training-data" / preparation_key(loaded, training)


_CHECKPOINTS: dict[str, LoadedModel] = {}
_CHECKPOINTS_LOCK = threading.Lock()


def checkpoint_model(loaded: LoadedModel, path: str) -> LoadedModel:
    """Checkpoint weights, loaded once per process (a query runs the input through each)."""
    with _CHECKPOINTS_LOCK:
        key = f"{loaded.fingerprint}:{Path(path).resolve()}"
        if key not in _CHECKPOINTS:
            if len(_CHECKPOINTS) >= 12:
                _CHECKPOINTS.pop(next(iter(_CHECKPOINTS)))
            _CHECKPOINTS[key] = load_weights(loaded, path)
        return _CHECKPOINTS[key]


_PREPARED: dict[Path, Prepared] = {}
_PREPARED_LOCK = threading.Lock()


def prepare(loaded: LoadedModel, training: TrainingSet, progress: ProgressFn | None = None) -> Prepared:
    """Representations of every training example at every checkpoint: computed once, stored, read back
    once per process and kept in memory (a query then reads no file)."""
    directory = preparation_dir(loaded, training)
    with _PREPARED_LOCK:
        kept = _PREPARED.get(directory)
    if kept is not None and (directory / "states.npz").is_file():
        (progress or (lambda fraction, message: None))(1.0, "Representations already prepared")
        return kept
    prepared = _prepare(loaded, training, directory, progress)
    with _PREPARED_LOCK:
        if len(_PREPARED) >= 4:
            _PREPARED.pop(next(iter(_PREPARED)))
        _PREPARED[directory] = prepared
    return prepared


def _prepare(loaded: LoadedModel, training: TrainingSet, directory: Path, progress: ProgressFn | None) -> Prepared:
    report = progress or (lambda fraction, message: None)
    targets = np.array([loaded.labels.index(label) for label in training.labels], dtype=np.int64)
    stored = directory / "states.npz"
    if stored.is_file():
        with np.load(stored) as arrays:
            states = [CheckpointState(float(arrays[f"lr{i}"]), int(arrays[f"step{i}"]) if int(arrays[f"step{i}"]) >= 0 else None,
                                      arrays[f"a{i}"], arrays[f"p{i}"], arrays[f"w{i}"], arrays[f"b{i}"])
                      for i in range(len(training.checkpoints))]
        report(1.0, "Representations read back from the store")
        return Prepared(training, list(loaded.labels), targets, states, directory, 0.0, 0)
    started = time.perf_counter()
    texts = [e.text for e in training.examples]
    states, passes = [], 0
    count = len(training.checkpoints)
    for i, checkpoint in enumerate(training.checkpoints):
        def step_progress(fraction: float, message: str, i: int = i) -> None:
            report((i + fraction) / count, f"Checkpoint {i + 1}/{count}: {message}")

        model = checkpoint_model(loaded, checkpoint.path)
        runner = ModelRunner(model, batch_size=64)
        activations, probabilities = runner.head_inputs(texts, step_progress)
        passes += runner.forward_passes
        head = final_linear(model.model)
        bias = head.bias.detach().cpu().numpy() if head.bias is not None else np.zeros(head.out_features)
        states.append(CheckpointState(checkpoint.learning_rate, checkpoint.step, activations, probabilities,
                                      head.weight.detach().cpu().numpy().astype(np.float32), bias.astype(np.float32)))
    directory.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    for i, state in enumerate(states):
        arrays |= {f"lr{i}": np.array(state.learning_rate), f"step{i}": np.array(-1 if state.step is None else state.step),
                   f"a{i}": state.activations, f"p{i}": state.probabilities, f"w{i}": state.weight, f"b{i}": state.bias}
    temporary = directory / "states.partial.npz"
    np.savez(temporary, **arrays)
    temporary.replace(stored)
    (directory / "about.json").write_text(json.dumps({"model": loaded.name, "fingerprint": loaded.fingerprint,
                                                      "training_set": training.name, "rows": len(texts),
                                                      "checkpoints": count}, indent=2))
    return Prepared(training, list(loaded.labels), targets, states, directory, time.perf_counter() - started, passes)


def query(loaded: LoadedModel, prepared: Prepared, text: str, every_checkpoint: bool = True) -> Query:
    """The input's representation and probabilities at every checkpoint (one pass each), or at the final
    weights only (one pass) when no method reads the earlier checkpoints."""
    activations, probabilities = [], []
    checkpoints = prepared.training.checkpoints if every_checkpoint else prepared.training.checkpoints[-1:]
    for checkpoint in checkpoints:
        runner = ModelRunner(checkpoint_model(loaded, checkpoint.path))
        a, p = runner.head_inputs([text])
        activations.append(a[0])
        probabilities.append(p[0])
    return Query(text, activations, probabilities, len(checkpoints))
