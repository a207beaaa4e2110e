"""What a method is: its declared facts, its options and its one call shape (after Captum and LIT).

Every fact about a method that any other part of Rashomon needs lives on its `Method` entry:
family, signedness, citation, options, forward-pass cost model, speed class, stability variants,
whether it is random, the settings corpus runs use, and a compatibility check against a loaded
model. Estimates, checks, pages and the CLI derive their lists from the registry, never by name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel
    from core.engine.runner import ModelRunner, PreparedText, ProgressFn


class ExplainError(ValueError):
    """Bad input to an explanation (empty text, unknown method or label, bad option, incompatible model)."""


class Family(StrEnum):
    PERTURBATION = "perturbation"
    GRADIENT = "gradient"
    ATTENTION = "attention"


class Speed(StrEnum):
    """FAST methods cost a handful of passes per word; SLOW ones hundreds of passes per input."""

    FAST = "fast"
    SLOW = "slow"


@dataclass(frozen=True)
class Option:
    name: str
    type: str  # "int" | "float" | "str" | "bool"
    default: Any
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None

    def coerce(self, value: Any) -> Any:
        try:
            if self.type == "int":
                value = int(value)
            elif self.type == "float":
                value = float(value)
            elif self.type == "bool":
                value = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            else:
                value = str(value)
        except (TypeError, ValueError) as exc:
            raise ExplainError(f"Option '{self.name}' must be {self.type}, got {value!r}.") from exc
        if self.choices is not None and value not in self.choices:
            raise ExplainError(f"Option '{self.name}' must be one of {', '.join(map(str, self.choices))}; got {value!r}.")
        if self.minimum is not None and value < self.minimum:
            raise ExplainError(f"Option '{self.name}' must be at least {self.minimum}; got {value}.")
        if self.maximum is not None and value > self.maximum:
            raise ExplainError(f"Option '{self.name}' must be at most {self.maximum}; got {value}.")
        return value

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "type": self.type, "default": self.default, "help": self.help,
                "choices": list(self.choices) if self.choices else None,
                "minimum": self.minimum, "maximum": self.maximum}


def resolve_options(owner: str, options: tuple[Option, ...], params: dict[str, Any] | None) -> dict[str, Any]:
    """Every option's value: the given ones checked and coerced, the rest at their defaults."""
    params = dict(params or {})
    known = {o.name: o for o in options}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ExplainError(f"Method '{owner}' has no option {', '.join(unknown)}; it takes {', '.join(known) or 'none'}.")
    return {name: option.coerce(params.get(name, option.default)) for name, option in known.items()}


SEED = Option("seed", "int", 0, "Random seed.", minimum=0)


@dataclass
class Attribution:
    """What a method's `attribute` returns: token scores or word scores (or both)."""

    token_scores: np.ndarray | None = None
    word_scores: np.ndarray | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)


AttributeFn = Callable[["ModelRunner", "PreparedText", int, dict[str, Any], "ProgressFn"], Attribution]
# Forward passes one input of `n_words` words costs beyond the prediction (a backward pass counts as
# one more forward), given the method's resolved parameters.
CostFn = Callable[[dict[str, Any], int], float]
CompatibilityFn = Callable[["LoadedModel"], str | None]
# Whether, given the resolved options of the other methods in the same view, every query this method
# makes is one another method makes too (then it costs one pass at most: the runner's cache answers).
SharesQueriesFn = Callable[[dict[str, Any], dict[str, dict[str, Any]]], bool]
# Settings that should not change a deterministic method's answer: the same settings twice.
RERUN = ({}, {})


def needs_nothing(loaded: LoadedModel) -> str | None:
    return None


@dataclass(frozen=True, kw_only=True)
class Method:
    name: str
    title: str
    family: Family
    signed: bool
    citation: str
    options: tuple[Option, ...]
    attribute: AttributeFn
    cost: CostFn
    speed: Speed = Speed.FAST
    random: bool = False  # the answer depends on a seed
    # Settings that should not matter, for the stability check (full and quick sets).
    stability_variants: tuple[dict[str, Any], ...] = RERUN
    quick_stability_variants: tuple[dict[str, Any], ...] | None = None
    # Settings that legitimately change the answer (a choice, not noise): reported as sensitivity,
    # never counted against stability (e.g. Integrated Gradients' baseline).
    sensitivity_variants: tuple[dict[str, Any], ...] = ()
    corpus_params: dict[str, Any] = field(default_factory=dict)  # what corpus runs use instead of defaults
    # The model randomisation check re-initialises the classifier head (stage 0), then encoder layers
    # from the top (stage i randomises layer n_layers - i). The first stage that can change this
    # method's output, given its parameters and the number of layers; earlier stages are not judged.
    first_affecting_stage: Callable[[dict[str, Any], int], int] = lambda params, n_layers: 0
    compatibility: CompatibilityFn = needs_nothing
    shares_queries: SharesQueriesFn = lambda params, others: False

    def resolve(self, params: dict[str, Any] | None) -> dict[str, Any]:
        """Every option's value: the given ones checked and coerced, the rest at their defaults."""
        return resolve_options(self.name, self.options, params)

    def changed(self, params: dict[str, Any]) -> dict[str, Any]:
        """Only the options that differ from their defaults (what a share link needs to carry)."""
        resolved = self.resolve(params)
        return {o.name: resolved[o.name] for o in self.options if resolved[o.name] != o.default}

    def incompatibility(self, loaded: LoadedModel) -> str | None:
        """Why this method cannot explain `loaded`, or None when it can."""
        return self.compatibility(loaded)

    def estimated_passes(self, params: dict[str, Any] | None, n_words: int) -> float:
        return float(self.cost(self.resolve(params), n_words))

    def estimated_passes_beside(self, params: dict[str, Any] | None, n_words: int,
                                others: dict[str, dict[str, Any]]) -> float:
        """Passes when the methods in `others` (name -> resolved options) run on the same input too."""
        resolved = self.resolve(params)
        if self.shares_queries(resolved, others):
            return 1.0
        return float(self.cost(resolved, n_words))

    def variants(self, quick: bool = False) -> tuple[dict[str, Any], ...]:
        if quick and self.quick_stability_variants is not None:
            return self.quick_stability_variants
        return self.stability_variants

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "family": self.family.value, "signed": self.signed,
                "citation": self.citation, "speed": self.speed.value, "random": self.random,
                "options": [o.to_dict() for o in self.options],
                "stability_variants": list(self.stability_variants), "corpus_params": self.corpus_params}
