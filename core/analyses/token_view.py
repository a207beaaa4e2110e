"""Which prompt words drove each generated token: one method's word scores for every per-token output of a
continuation model (log p(a_t | prompt, a_<t) for each token a_t of the continuation), as a tokens x words table.

Each row is an ordinary stored explanation (its target is that token's output), so a row computed once is read
back at no cost, and a perturbation method answers every row from the same model passes: the runner caches the
whole output vector of each masked prompt, so rows after the first are cache hits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine

from core.analyses.store import explain_stored
from core.engine.runner import ModelRunner

ProgressFn = Callable[[float, str], None]


@dataclass(frozen=True)
class TokenView:
    method: str
    tokens: list[str]  # the outputs, one per generated token, in order
    words: list[str]
    scores: list[list[float]]  # (tokens, words)
    computed: int  # rows computed now (the others came from the store)
    forward_passes: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class NoTokens(ValueError):
    """The model has no per-token outputs (it is not a continuation model)."""


def token_view(engine: Engine, runner: ModelRunner, text: str, method: str, params: dict[str, Any] | None = None,
               *, only_stored: bool = False, progress: ProgressFn | None = None) -> TokenView | None:
    """Every per-token row of `method` on `text` (None with `only_stored` while any row is missing)."""
    outputs = runner.loaded.per_token_outputs
    if not outputs:
        raise NoTokens(f"{runner.loaded.name} has no per-token outputs: only a continuation is explained token by token.")
    labels = runner.loaded.labels
    started, passes = time.perf_counter(), runner.forward_passes
    rows, computed = [], 0
    for step, index in enumerate(outputs):
        stored = explain_stored(engine, runner, text, method, labels[index], params, only_stored=only_stored)
        if stored is None:
            return None
        computed += not stored.cached
        rows.append(stored.explanation)
        if progress:
            progress((step + 1) / len(outputs), f"{step + 1}/{len(outputs)} tokens")
    return TokenView(method, [labels[i] for i in outputs], list(rows[0].words), [list(r.scores) for r in rows],
                     computed, runner.forward_passes - passes, time.perf_counter() - started)
