"""Model adapters: the one place that knows which kind of model a spec names (after LIT's model layer).

A model spec is a hub id or a directory (a sequence classifier, as always), or `KIND:{json settings}` naming
another adapter, e.g. `lm_classifier:{"model": "gpt2", "template": "Review: {text} Sentiment:", "labels": [...]}`.
Every adapter gives back a `LoadedModel` whose `model` answers like a sequence classifier (one value per output
"label", from input ids or input embeddings, with attention weights when asked) and whose tokenizer adds whatever
the adapter puts around the input (a template, a continuation) as special tokens. So the runner, every method,
agreement, faithfulness, edits and corpus runs work on every adapter unchanged, and what differs is declared on
the loaded model: whether its outputs are logits to normalise or values to explain as they are, which position
attention is read from, and which output is explained by default.

Adding a kind of model: one module with an `Adapter` and one entry in `ADAPTERS` (or `register_adapter`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel

SEQUENCE_CLASSIFIER = "sequence_classifier"


@dataclass(frozen=True)
class Adapter:
    name: str
    title: str
    # settings -> a model with weights; settings -> a description without weights (no pass, for the pages)
    load: Callable[[dict[str, Any]], LoadedModel]
    describe: Callable[[dict[str, Any]], LoadedModel]
    summary: str = ""
    # (settings, text) -> settings for explaining that text: what the adapter must compute from the input before
    # it can load (a continuation's greedy answer); runs where the weights are (a worker, the CLI).
    bind: Callable[[dict[str, Any], str], dict[str, Any]] | None = None
    # Settings that come with each request rather than with the model's entry (a continuation and its contrast):
    # (name, label, help) for the pages' fields; `with_request` puts them in the spec.
    request_fields: tuple[tuple[str, str, str], ...] = ()


def _adapters() -> dict[str, Adapter]:
    from core.engine.adapters import lm_classifier, lm_continuation, sequence_classifier

    return {a.name: a for a in (sequence_classifier.ADAPTER, lm_classifier.ADAPTER, lm_continuation.ADAPTER)}


_registry: dict[str, Adapter] = {}


def adapters() -> dict[str, Adapter]:
    """Every registered adapter by name (the built-in ones load on first use: they import transformers)."""
    if not _registry:
        _registry.update(_adapters())
    return _registry


def register_adapter(adapter: Adapter) -> Adapter:
    """Add a kind of model (from a plugin module); `KIND:{...}` specs then load through it."""
    known = adapters()
    if adapter.name in known and known[adapter.name] is not adapter:
        raise ValueError(f"An adapter named '{adapter.name}' is already registered.")
    known[adapter.name] = adapter
    return adapter


class AdapterSpecError(ValueError):
    """A `KIND:{...}` spec that does not parse; the message is one sentence."""


def split_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """(adapter name, settings) of a model spec; a plain hub id or path is a sequence classifier's `model`."""
    kind, colon, rest = spec.partition(":")
    if not colon or not rest.startswith("{") or not kind.replace("_", "").isalnum():
        return SEQUENCE_CLASSIFIER, {"model": spec}
    if kind not in adapters():
        raise AdapterSpecError(f"Unknown kind of model '{kind[:40]}'; the kinds are {', '.join(adapters())}.")
    try:
        settings = json.loads(rest)
    except ValueError as exc:
        raise AdapterSpecError(f"The settings of the {kind} model are not valid JSON: {exc.msg}.") from exc
    if not isinstance(settings, dict) or not isinstance(settings.get("model"), str):
        raise AdapterSpecError(f"The settings of the {kind} model must be an object naming its \"model\".")
    return kind, settings


def make_spec(kind: str, settings: dict[str, Any]) -> str:
    """The canonical spec string of `kind` with `settings` (a sequence classifier's is its model)."""
    if kind == SEQUENCE_CLASSIFIER:
        return str(settings["model"])
    if kind not in adapters():
        raise AdapterSpecError(f"Unknown kind of model '{kind[:40]}'; the kinds are {', '.join(adapters())}.")
    clean = {k: v for k, v in settings.items() if v not in (None, "", [], ())}
    return f"{kind}:{json.dumps(clean, sort_keys=True, ensure_ascii=False, separators=(',', ':'))}"


def is_plain(spec: str) -> bool:
    """Whether `spec` names a sequence classifier (a hub id or directory)."""
    return split_spec(spec)[0] == SEQUENCE_CLASSIFIER


def bind_spec(spec: str, text: str) -> str:
    """`spec` made ready to explain `text` (the adapter's `bind`; most adapters need nothing)."""
    kind, settings = split_spec(spec)
    adapter = adapters()[kind]
    return spec if adapter.bind is None else make_spec(kind, adapter.bind(settings, text))


def request_fields(spec: str) -> tuple[tuple[str, str, str], ...]:
    """The per-request fields the adapter of `spec` asks for (none for a classifier)."""
    return adapters()[split_spec(spec)[0]].request_fields


def with_request(spec: str, values: dict[str, str]) -> str:
    """`spec` with the adapter's per-request settings set from `values` (others are ignored)."""
    kind, settings = split_spec(spec)
    fields = [name for name, _, _ in adapters()[kind].request_fields]
    if not fields:
        return spec
    return make_spec(kind, {**settings, **{name: values.get(name, "") for name in fields}})
