"""The "attention is not explanation" debate, tested on one input.

Jain & Wallace (2019) ask two things of attention as explanation: it should correlate with
gradient- and erasure-based importance, and changing it should change the prediction.
Wiegreffe & Pinter (2019) answer that the tests must be run per model and input. Both are run
here: rank correlations of attention (the registry's attention methods) with the deterministic
gradient and erasure methods, and an intervention that replaces one layer's attention weights
with uniform or permuted weights (through the runner) and reports how far the prediction moves;
down to single heads, head importance silences each head in turn (Michel et al. 2019).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from core.engine.interventions import MODES, AttentionIntervention
from core.engine.runner import ModelRunner, ProgressFn
from core.explanation import Explanation
from core.methods.registry import attention_methods, attention_reference_methods


@dataclass(frozen=True)
class Intervention:
    layer: int
    mode: str
    probabilities: dict[str, float]
    target_change: float  # p_new(target) - p(target)
    total_variation: float  # half the L1 distance between the two distributions
    label_flipped: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Intervention:
        return cls(**data)


def intervene(runner: ModelRunner, text: str, target: str, layers: Sequence[int] | None = None,
              modes: Sequence[str] = MODES) -> list[Intervention]:
    """Replace each layer's attention in turn (each mode) and measure how far the prediction moves."""
    prepared = runner.prepare(text)
    labels = runner.loaded.labels
    t = labels.index(target)
    base = runner.probabilities([prepared.input_ids])[0]
    n_layers = runner.loaded.config.num_hidden_layers
    layers = list(range(n_layers)) if layers is None else [layer % n_layers for layer in layers]
    results = []
    for layer in layers:
        for mode in modes:
            probs, _ = runner.intervened(prepared.input_ids, AttentionIntervention(layer, mode))
            results.append(Intervention(
                layer=layer, mode=mode, probabilities={lab: float(p) for lab, p in zip(labels, probs, strict=True)},
                target_change=float(probs[t] - base[t]), total_variation=float(0.5 * np.abs(probs - base).sum()),
                label_flipped=int(np.argmax(probs)) != int(np.argmax(base)),
            ))
    return results


@dataclass(frozen=True)
class AttentionCorrelation:
    attention_method: str
    reference_method: str
    spearman: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AttentionCorrelation:
        return cls(**data)


def correlations(explanations: Sequence[Explanation]) -> list[AttentionCorrelation]:
    """Spearman correlation of |score| between each attention method and each reference method present."""
    by_name = {e.method: e for e in explanations}
    out = []
    for a in attention_methods():
        for r in attention_reference_methods():
            if a in by_name and r in by_name:
                x, y = np.abs(by_name[a].scores), np.abs(by_name[r].scores)
                rho = math.nan if len(x) < 2 or np.ptp(x) == 0 or np.ptp(y) == 0 else float(spearmanr(x, y)[0])
                out.append(AttentionCorrelation(a, r, rho))
    return out


@dataclass(frozen=True)
class HeadImportance:
    """Michel, Levy & Neubig (2019), 'Are sixteen heads really better than one?': the change in the
    target probability when one head is silenced (its attention output set to zero), every head in turn."""

    target: str
    probability: float  # p(target) with every head working
    effects: tuple[tuple[float, ...], ...]  # (layers, heads): p(target | head silenced) - probability
    flipped: tuple[tuple[bool, ...], ...]  # whether silencing the head changes the predicted label
    forward_passes: int
    seconds: float

    @property
    def array(self) -> np.ndarray:
        return np.array(self.effects, dtype=float)

    def most_important(self, n: int = 5) -> list[tuple[int, int, float]]:
        """(layer, head, effect) of the n heads whose silencing moves the target probability most."""
        effects = self.array
        order = np.argsort(-np.abs(effects), axis=None)[:n]
        return [(int(i // effects.shape[1]), int(i % effects.shape[1]), float(effects.flat[i])) for i in order]

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "effects": [list(r) for r in self.effects], "flipped": [list(r) for r in self.flipped]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> HeadImportance:
        return cls(**{**data, "effects": tuple(tuple(r) for r in data["effects"]),
                      "flipped": tuple(tuple(r) for r in data["flipped"])})


def head_importance(runner: ModelRunner, text: str, target: str | None = None,
                    progress: ProgressFn | None = None) -> HeadImportance:
    """Silence each head of each layer in turn: one pass per head plus the unmasked prediction, batched."""
    started, passes = time.perf_counter(), runner.forward_passes
    prepared = runner.prepare(text)
    labels = runner.loaded.labels
    base = runner.probabilities([prepared.input_ids])[0]
    t = int(np.argmax(base)) if not target else labels.index(target)
    n_layers, n_heads = runner.loaded.config.num_hidden_layers, runner.loaded.config.num_attention_heads
    masks = np.ones((n_layers * n_heads, n_layers, n_heads), dtype=np.float32)
    for row in range(n_layers * n_heads):
        masks[row, row // n_heads, row % n_heads] = 0.0
    probabilities = runner.head_masked(prepared.input_ids, masks, progress)
    effects = (probabilities[:, t] - base[t]).reshape(n_layers, n_heads)
    flipped = (np.argmax(probabilities, axis=1) != np.argmax(base)).reshape(n_layers, n_heads)
    return HeadImportance(target=labels[t], probability=float(base[t]),
                          effects=tuple(tuple(float(v) for v in row) for row in effects),
                          flipped=tuple(tuple(bool(v) for v in row) for row in flipped),
                          forward_passes=runner.forward_passes - passes, seconds=time.perf_counter() - started)


HEADS_KIND = "head-importance"


def stored_head_importance(engine, runner: ModelRunner, text: str, target: str | None = None, *,
                           fresh: bool = False, only_stored: bool = False,
                           progress: ProgressFn | None = None) -> HeadImportance | None:
    """`head_importance` through the store (kind "head-importance", keyed by weights, text and target): a page
    reads it back with no model pass; None when `only_stored` and nothing is stored."""
    import json

    from core.storage.records import stored_or_computed

    key = json.dumps({"text": text, "target": target or ""}, ensure_ascii=False)
    return stored_or_computed(engine, HEADS_KIND, runner.loaded, key, lambda: head_importance(runner, text, target, progress),
                              encode=HeadImportance.to_dict, decode=HeadImportance.from_dict, fresh=fresh,
                              only_stored=only_stored)
