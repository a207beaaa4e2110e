"""Sampling until the answer has converged: draw perturbations in rounds, stop once the top-k words are stable.

Stability after a round is measured by the bootstrap (Efron 1979) over the samples drawn so far: refit
the method's regression on `BOOTSTRAPS` resamples of the rows and average the share of the full fit's
top-k words each resample keeps. The method stops when that share is at least 1 - tolerance, or at the
sample cap, and says which. For a deterministic method whose answer grows with its budget (SHAP's
Partition explainer) the measure is instead the top-k overlap between consecutive rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from core.methods.base import Option

BOOTSTRAPS = 16
ROUND = 100  # samples per round

ADAPTIVE = Option("adaptive", "bool", True, "Draw samples in rounds and stop once the top words are stable "
                  "(off: exactly the sample count).")
TOLERANCE = Option("tolerance", "float", 0.1, "Adaptive: the share of top-k words allowed to change across "
                   "bootstrap refits (or rounds) when stopping.", minimum=0.0, maximum=1.0)
TOP_K = Option("top_k", "int", 5, "Adaptive: how many top words must be stable.", minimum=1, maximum=50)


@dataclass(frozen=True)
class Convergence:
    samples: int  # samples (or evaluations) used
    rounds: int
    stability: float  # share of top-k words stable at the stop (1.0: fully stable)
    converged: bool  # stopped because stable, not because of the cap
    tolerance: float
    top_k: int

    def to_diagnostics(self) -> dict:
        return {f"convergence_{k}": v for k, v in asdict(self).items()}


def top_set(scores: np.ndarray, k: int) -> set[int]:
    return set(np.argsort(-np.abs(np.asarray(scores)), kind="stable")[:k].tolist())


def bootstrap_stability(fit: Callable[[np.ndarray], np.ndarray], n_rows: int, k: int, seed: int,
                        bootstraps: int = BOOTSTRAPS) -> float:
    """Mean share of the full fit's top-k words kept by fits on bootstrap resamples of the rows
    (`fit` takes row indices and returns one score per word)."""
    full = fit(np.arange(n_rows))
    k = min(k, len(full))
    if k == 0:
        return 1.0
    reference = top_set(full, k)
    rng = np.random.default_rng(seed)
    kept = [len(reference & top_set(fit(rng.integers(0, n_rows, n_rows)), k)) / k for _ in range(bootstraps)]
    return float(np.mean(kept))


def round_overlap(previous: np.ndarray, current: np.ndarray, k: int) -> float:
    k = min(k, len(current))
    return 1.0 if k == 0 else len(top_set(previous, k) & top_set(current, k)) / k
