"""The "attention is not explanation" debate, tested on one input.

Jain & Wallace (2019) ask two things of attention as explanation: it should correlate with
gradient- and erasure-based importance, and changing it should change the prediction.
Wiegreffe & Pinter (2019) answer that the tests must be run per model and input. Both are run
here: rank correlations of attention (the registry's attention methods) with the deterministic
gradient and erasure methods, and an intervention that replaces one layer's attention weights
with uniform or permuted weights (through the runner) and reports how far the prediction moves.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from core.explanation import Explanation
from core.interventions import MODES, AttentionIntervention
from core.methods.registry import attention_methods, attention_reference_methods
from core.runner import ModelRunner


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
    n_layers = runner.model.config.num_hidden_layers
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
