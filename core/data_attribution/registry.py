"""The training-data attribution methods: one entry each, with their options and their facts.

Each method scores every training example for one input and one target label (positive: the
example pushed the model towards the target) from the prepared representations (`features`).
A method may also score each training example's influence on itself (for the suspicious-examples
list). Pages, the CLI and the stored results derive their lists from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.data_attribution.features import Prepared, Query
from core.methods.base import ExplainError, Option, resolve_options

ScoreFn = Callable[[Prepared, Query, int, dict[str, Any]], tuple[np.ndarray, dict[str, Any]]]
SelfInfluenceFn = Callable[[Prepared, dict[str, Any]], np.ndarray]


@dataclass(frozen=True, kw_only=True)
class DataMethod:
    name: str
    title: str
    citation: str
    summary: str
    options: tuple[Option, ...]
    score: ScoreFn
    self_influence: SelfInfluenceFn | None = None
    uses_checkpoints: bool = False

    def resolve(self, params: dict[str, Any] | None) -> dict[str, Any]:
        return resolve_options(self.name, self.options, params)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "citation": self.citation, "summary": self.summary,
                "uses_checkpoints": self.uses_checkpoints, "self_influence": self.self_influence is not None,
                "options": [o.to_dict() for o in self.options]}


def _registry() -> dict[str, DataMethod]:
    from core.data_attribution import influence, nearest, representer, tracin

    return {m.name: m for m in (nearest.METHOD, tracin.METHOD, representer.METHOD, influence.METHOD)}


_METHODS: dict[str, DataMethod] | None = None


def data_methods() -> dict[str, DataMethod]:
    global _METHODS
    if _METHODS is None:
        _METHODS = _registry()
    return _METHODS


def data_method(name: str) -> DataMethod:
    methods = data_methods()
    if name not in methods:
        raise ExplainError(f"Unknown training-data method '{name}'; choose from {', '.join(methods)}.")
    return methods[name]
