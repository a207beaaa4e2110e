"""The training-data attribution methods: one entry each, with their options and their facts.

Each method scores every training example for one input and one target label (positive: the
example pushed the model towards the target) from the prepared representations (`features`).
A method may also score each training example's influence on itself (for the suspicious-examples
list). Pages, the CLI and the stored results derive their lists from here.
"""

from __future__ import annotations

from core.analyses.training_data import influence, nearest, representer, tracin
from core.analyses.training_data.base import DataMethod
from core.methods.base import ExplainError

# One entry per method, in the order pages and the CLI list them.
METHODS: dict[str, DataMethod] = {m.name: m for m in (nearest.METHOD, tracin.METHOD, representer.METHOD,
                                                      influence.METHOD)}


def data_methods() -> dict[str, DataMethod]:
    return METHODS


def data_method(name: str) -> DataMethod:
    if name not in METHODS:
        raise ExplainError(f"Unknown training-data method '{name}'; choose from {', '.join(METHODS)}.")
    return METHODS[name]
