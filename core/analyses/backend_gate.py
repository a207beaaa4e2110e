"""The fidelity gate: a faster backend is used by default only if it keeps float32's answers.

Measured on held-out inputs against the float32 backend of the same weights (core/engine/backends.py):

(a) labels: the predicted label kept on at least 99.5% of the inputs;
(b) probabilities: every label probability of every input within 0.02;
(c) methods the backend serves (the perturbation methods; gradients and attention stay float32): a sampling
    method's top-5 words agree with float32's at least as often as two float32 runs with different seeds agree
    with each other; a deterministic method keeps at least 95% of its top-5 positions and Spearman >= 0.95.

The gate also times both backends' passes, interleaved on the same inputs, so that `backend_for` picks the
fastest backend that passed. A gate that fails (a) or (b) stops there: (c) cannot rescue it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from sqlalchemy import Engine

from core.analyses.agreement import METRICS, feature_agreement, rank_agreement
from core.engine.backends import BACKENDS, FLOAT32, BackendError, get_backend
from core.engine.modelling import LoadedModel
from core.engine.runner import ModelRunner
from core.methods.base import Family
from core.methods.explain import explain
from core.methods.registry import METHODS

KIND = "backend-gate"
LABELS_KEPT = 0.995
PROBABILITY_TOLERANCE = 0.02
DETERMINISTIC_TOP_K = 0.95
DETERMINISTIC_SPEARMAN = 0.95
TOP_K = 5
MIN_SPEEDUP = 1.25  # a passed backend must beat float32 by more than the noise of one timing (interleaved)
DEFAULT_INPUTS = 2000
DEFAULT_METHOD_INPUTS = 5
MIN_WORDS = 15  # texts the methods are compared on
CHUNK = 64  # inputs per timed turn: the two backends alternate, so machine drift hits both alike
ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class MethodFidelity:
    method: str
    sampling: bool
    inputs: int
    top_k_agreement: float  # backend vs float32 (sampling: shared top-5 words; deterministic: same positions)
    reference: float | None  # sampling: two float32 seeds' agreement, the bar to reach
    spearman: float | None  # deterministic: mean Spearman of |scores|
    passed: bool


@dataclass(frozen=True)
class GateResult:
    backend: str
    weights_fingerprint: str
    inputs: int
    labels_kept: float
    max_probability_difference: float
    seconds_per_pass: dict[str, float]  # float32 and the backend, same inputs, interleaved
    speedup: float
    methods: list[MethodFidelity] = field(default_factory=list)
    passed: bool = False
    reasons: list[str] = field(default_factory=list)  # why it failed, one sentence each
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GateResult:
        return cls(**{**data, "methods": [MethodFidelity(**m) for m in data.get("methods", [])]})

    def sentence(self) -> str:
        if self.passed:
            return (f"{self.backend} passed its fidelity gate on {self.inputs} inputs ({self.labels_kept:.1%} of labels "
                    f"kept, probabilities within {self.max_probability_difference:.3f}) and runs passes "
                    f"{self.speedup:.2f}x as fast as float32.")
        # each reason is a sentence starting "it ...": the first follows the colon, the rest start capitalised
        rest = [reason[:1].upper() + reason[1:] for reason in self.reasons[1:]]
        return f"{self.backend} is refused: " + " ".join(self.reasons[:1] + rest)


# What a gate measures by default: the Models page's button (the CLI's --inputs and --method-inputs say the same).
DEFAULT_INPUTS = 2000
DEFAULT_METHOD_INPUTS = 5


def long_enough(texts: Sequence[str], count: int, min_words: int = MIN_WORDS) -> list[str]:
    """The first `count` texts long enough for a top-5 to mean something (with 5 words every top-5 agrees)."""
    return [t for t in texts if len(t.split()) >= min_words][:count]


def served_methods() -> list[str]:
    """The methods whose scores come from plain passes, so a backend changes them (the perturbation family)."""
    return [name for name, method in METHODS.items() if method.family == Family.PERTURBATION]


def _probabilities_timed(reference: ModelRunner, candidate: ModelRunner, ids: list[list[int]],
                         progress: ProgressFn) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    expected, got, seconds = [], [], {FLOAT32: 0.0, candidate.backend: 0.0}
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start:start + CHUNK]
        for runner, out in ((reference, expected), (candidate, got)):
            began = time.perf_counter()
            out.append(runner.probabilities(chunk))
            seconds[runner.backend] += time.perf_counter() - began
        progress(min(1.0, (start + len(chunk)) / len(ids)) * 0.5, f"labels: {start + len(chunk)}/{len(ids)} inputs")
    per_pass = {name: value / max(1, len(ids)) for name, value in seconds.items()}
    return np.concatenate(expected), np.concatenate(got), per_pass


def _method_fidelity(reference: ModelRunner, candidate: ModelRunner, method: str, texts: Sequence[str]) -> MethodFidelity:
    sampling = METHODS[method].random
    agreements, bars, correlations = [], [], []
    spearman = METRICS["spearman"].fn
    for text in texts:
        base = np.asarray(explain(reference, text, method, params={"seed": 0} if sampling else None).scores)
        mine = np.asarray(explain(candidate, text, method, params={"seed": 0} if sampling else None).scores)
        if sampling:
            other = np.asarray(explain(reference, text, method, params={"seed": 1}).scores)
            agreements.append(feature_agreement(base, mine, TOP_K))
            bars.append(feature_agreement(base, other, TOP_K))
        else:
            agreements.append(rank_agreement(base, mine, TOP_K))
            correlations.append(spearman(base, mine, TOP_K))
    agreement = float(np.nanmean(agreements))
    if sampling:
        bar = float(np.nanmean(bars))
        return MethodFidelity(method, True, len(texts), agreement, bar, None, agreement >= bar)
    correlation = float(np.nanmean(correlations)) if not np.all(np.isnan(correlations)) else 1.0
    passed = agreement >= DETERMINISTIC_TOP_K and correlation >= DETERMINISTIC_SPEARMAN
    return MethodFidelity(method, False, len(texts), agreement, None, correlation, passed)


def measure(loaded: LoadedModel, backend: str, texts: Sequence[str], *, method_texts: Sequence[str] = (),
            methods: Sequence[str] | None = None, every_criterion: bool = False,
            progress: ProgressFn | None = None) -> GateResult:
    """Run the gate for `backend` on the float32 weights `loaded`. `every_criterion` measures the methods even
    when labels or probabilities already failed (for benchmarks)."""
    get_backend(backend)
    if backend == FLOAT32:
        raise BackendError("float32 is the reference the gate measures other backends against.")
    report = progress or (lambda fraction, message: None)
    started = time.perf_counter()
    reference = ModelRunner(loaded.with_backend(FLOAT32))
    candidate = ModelRunner(loaded.with_backend(FLOAT32), backend=backend)
    ids = [reference.prepare(text).input_ids for text in texts]
    for runner in (reference, candidate):  # built (an ONNX export, a quantised copy) and first-called untimed
        runner.uncached_probabilities(ids[0] if ids else [0])
    expected, got, per_pass = _probabilities_timed(reference, candidate, ids, report)
    labels_kept = float(np.mean(expected.argmax(1) == got.argmax(1))) if len(ids) else 1.0
    difference = float(np.abs(expected - got).max()) if len(ids) else 0.0
    reasons = []
    if labels_kept < LABELS_KEPT:
        reasons.append(f"it kept the predicted label on {labels_kept:.1%} of {len(ids)} held-out inputs "
                       f"(at least {LABELS_KEPT:.1%} needed).")
    if difference > PROBABILITY_TOLERANCE:
        reasons.append(f"it moved a label probability by up to {difference:.3f} (at most {PROBABILITY_TOLERANCE} "
                       "allowed).")
    fidelity = []
    if (not reasons or every_criterion) and method_texts:
        chosen = list(methods or served_methods())
        for i, method in enumerate(chosen):
            report(0.5 + 0.5 * i / len(chosen), f"{method} on {len(method_texts)} inputs, both backends")
            fidelity.append(_method_fidelity(reference, candidate, method, method_texts))
        for f in fidelity:
            if f.passed:
                continue
            if f.sampling:
                reasons.append(f"{f.method}'s top-{TOP_K} words agreed with float32's on {f.top_k_agreement:.0%}, "
                               f"less than two float32 seeds agree ({f.reference:.0%}).")
            else:
                reasons.append(f"{f.method} kept {f.top_k_agreement:.0%} of its top-{TOP_K} positions (at least "
                               f"{DETERMINISTIC_TOP_K:.0%}) at Spearman {f.spearman:.3f} (at least "
                               f"{DETERMINISTIC_SPEARMAN}).")
    report(1.0, "gate done")
    speedup = per_pass[FLOAT32] / per_pass[backend] if per_pass[backend] > 0 else 1.0
    return GateResult(backend, loaded.weights_fingerprint, len(ids), labels_kept, difference, per_pass, speedup,
                      fidelity, not reasons, reasons, time.perf_counter() - started)


def gate(engine: Engine, loaded: LoadedModel, backend: str, texts: Sequence[str], *,
         method_texts: Sequence[str] = (), fresh: bool = False, only_stored: bool = False,
         progress: ProgressFn | None = None) -> GateResult | None:
    """`measure`, stored under the weights' fingerprint and the backend (the newest gate of a backend counts)."""
    from core.storage.records import find_keyed, save_keyed

    if not fresh and (stored := find_keyed(engine, KIND, loaded.weights_fingerprint, backend)) is not None:
        return GateResult.from_dict(stored)
    if only_stored:
        return None
    result = measure(loaded, backend, texts, method_texts=method_texts, progress=progress)
    save_keyed(engine, KIND, loaded.name, loaded.weights_fingerprint, backend, result.to_dict())
    return result


def stored_gates(engine: Engine, weights_fingerprint: str) -> dict[str, GateResult]:
    """The newest stored gate of each backend for these weights."""
    from core.storage.records import find_keyed

    found = {}
    for name in BACKENDS:
        if name != FLOAT32 and (data := find_keyed(engine, KIND, weights_fingerprint, name)) is not None:
            found[name] = GateResult.from_dict(data)
    return found


def backend_for(engine: Engine, loaded: LoadedModel, wanted: str = "auto") -> tuple[str, str]:
    """(backend, why) for a model: float32 unless a backend passed its gate for these weights; "auto" takes the
    fastest that passed (at least MIN_SPEEDUP faster), a named one is used only if it passed."""
    if wanted == FLOAT32:
        return FLOAT32, "float32 (asked for)"
    if wanted != "auto":
        try:
            get_backend(wanted)
        except BackendError as exc:
            return FLOAT32, f"float32: RASHOMON_BACKEND is not usable. {exc}"
    gates = stored_gates(engine, loaded.weights_fingerprint)
    if wanted != "auto":
        found = gates.get(wanted)
        if found is None:
            return FLOAT32, f"float32: {wanted} was asked for but has no fidelity gate for this model yet"
        return (wanted, found.sentence()) if found.passed else (FLOAT32, "float32: " + found.sentence())
    passed = [g for g in gates.values() if g.passed and g.speedup >= MIN_SPEEDUP and not BACKENDS[g.backend].unavailable()]
    if not passed:
        return FLOAT32, "float32: no faster backend has passed its fidelity gate for this model"
    best = max(passed, key=lambda g: g.speedup)
    return best.backend, best.sentence()
