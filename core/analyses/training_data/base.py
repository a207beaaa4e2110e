"""What a training-data attribution method is: its declared facts, options and call shape (after
`core.methods.base`). The method modules import this; the registry imports them: no import cycle."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.analyses.training_data.features import Prepared, Query
from core.methods.base import Option, resolve_options

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
