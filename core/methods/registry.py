"""The one registry of word-level explanation methods. Adding a method: a module and one entry here.

Every list of methods anywhere in Rashomon (widgets, CLI listing, corpus defaults, estimates,
stability variants, the attention check's references) is derived from this registry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from core.methods import (
    attention,
    attention_gradient,
    attention_norm,
    deeplift,
    gradient,
    gradient_shap,
    kernel_shap,
    perturbation,
)
from core.methods.base import ExplainError, Family, Method, Speed
from core.plugins import import_plugins

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel

METHODS: dict[str, Method] = {m.name: m for m in (
    perturbation.LIME,
    perturbation.SHAP,
    kernel_shap.KERNEL_SHAP,
    gradient.INTEGRATED_GRADIENTS,
    gradient.SALIENCY,
    gradient.INPUT_X_GRADIENT,
    deeplift.DEEPLIFT,
    gradient_shap.GRADIENT_SHAP,
    perturbation.OCCLUSION,
    attention.ATTENTION,
    attention.ATTENTION_ROLLOUT,
    attention_gradient.ATTENTION_X_GRADIENT,
    attention_gradient.GRADIENT_ROLLOUT,
    attention_norm.ATTENTION_NORM,
)}


# Modules (comma-separated) imported when the registry loads, each adding methods with `register`:
# a method of one's own without editing Rashomon. Worker processes inherit the variable, so they know
# the same methods as the server that submitted the work.
PLUGINS_ENV = "RASHOMON_PLUGINS"


def register(method: Method) -> Method:
    """Add a method to the registry (from a plugin module); every list and widget then offers it."""
    if method.name in METHODS and METHODS[method.name] is not method:
        raise ExplainError(f"A method named '{method.name}' is already registered.")
    METHODS[method.name] = method
    return method


def load_plugins(names: str | None = None) -> list[str]:
    """Import each module named in `names` (default: $RASHOMON_PLUGINS); the modules imported."""
    return import_plugins(PLUGINS_ENV, names, ExplainError)


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ExplainError(f"Unknown method '{name}'; choose from {', '.join(METHODS)}.")
    return METHODS[name]


def split_compatible(names: list[str] | tuple[str, ...], loaded: LoadedModel) -> tuple[list[str], dict[str, str]]:
    """(the methods that can explain `loaded`, {each other method: why not}): lists of methods drop the
    incompatible ones and show them with the reason, never silently."""
    kept, skipped = [], {}
    for name in names:
        reason = get_method(name).incompatibility(loaded)
        if reason:
            skipped[name] = reason
        else:
            kept.append(name)
    return kept, skipped


def method_names(*, family: Family | None = None, speed: Speed | None = None, random: bool | None = None) -> list[str]:
    """Names of the registered methods with the given facts, in registry order."""
    return [m.name for m in METHODS.values()
            if (family is None or m.family == family) and (speed is None or m.speed == speed)
            and (random is None or m.random == random)]


def fast_methods() -> list[str]:
    """What corpus runs use by default: every method of the FAST speed class."""
    return method_names(speed=Speed.FAST)


def attention_methods() -> list[str]:
    return method_names(family=Family.ATTENTION)


def attention_reference_methods() -> list[str]:
    """What attention is tested against (Jain & Wallace 2019): deterministic gradient and erasure scores."""
    return [m.name for m in METHODS.values() if m.family != Family.ATTENTION and not m.random]


def methods_passes(methods: list[str] | tuple[str, ...], options: dict[str, dict], n_words: int) -> float:
    """Forward passes the methods should cost together on one input of `n_words` words, queries that
    one method shares with another (`Method.shares_queries`) counted once."""
    resolved = {name: get_method(name).resolve(options.get(name)) for name in methods}
    return sum(get_method(name).estimated_passes_beside(options.get(name), n_words,
                                                        {o: p for o, p in resolved.items() if o != name})
               for name in methods)


def corpus_options(methods: list[str] | tuple[str, ...]) -> dict[str, dict]:
    """The settings corpus runs use for these methods (where they differ from the defaults)."""
    return {name: dict(METHODS[name].corpus_params) for name in methods if METHODS[name].corpus_params}


load_plugins()
