"""Load any Hugging Face sequence classifier (hub id or local directory) for explanation.

Models load with `attn_implementation="eager"`: with sdpa, `output_attentions=True` returns an
empty tuple and the attention methods would have nothing to read.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as transformers_logging

from core.engine import counters
from core.storage.settings import load_settings

# Rashomon reports loading problems itself, in one sentence; keep transformers' bars and reports quiet.
transformers_logging.set_verbosity_error()
transformers_logging.disable_progress_bar()


PROBABILITIES = "probabilities"
VALUES = "values"


class ModelLoadError(RuntimeError):
    """A model could not be loaded; the message names the cause in one sentence."""


@dataclass
class LoadedModel:
    name: str
    path: str
    source: str  # "local directory" or "Hugging Face hub"
    model: Any  # None in a process that only describes the model (the Streamlit server): no weights, no pass
    tokenizer: Any
    labels: list[str]
    device: torch.device
    max_length: int
    card: str = ""
    # Serialises use of the network across threads (a corpus job and a page share one model, and an
    # attention intervention temporarily swaps the attention implementation).
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)
    _fingerprint: str | None = field(default=None, repr=False)
    # What the weights on disk are (files, sizes, times; or hub id and revision): how a process that never
    # loads the weights finds the fingerprint a worker computed from them (core/engine/fingerprints.py).
    signature: str = ""
    config: Any = field(default=None, repr=False, compare=False)
    # A described model's layout without weights (on PyTorch's meta device): structural checks only.
    skeleton: Any = field(default=None, repr=False, compare=False)
    # What runs plain forward passes (core/engine/backends.py). Not float32: part of the fingerprint, so results
    # computed through it are stored apart and never mixed with float32 ones.
    backend: str = "float32"
    # What the adapter (core/engine/adapters) declares about the model's outputs; the runner and the methods read
    # these and never ask which kind of model it is.
    kind: str = "sequence_classifier"
    outputs: str = "probabilities"  # PROBABILITIES: logits, normalised by softmax; VALUES: explained as they are
    readout: str = "first"  # the position attention is read from: "first" ([CLS]) or "last" (what predicts next)
    default_output: int | None = None  # the output explained by default (None: the predicted label)
    per_token_outputs: tuple[int, ...] = ()  # outputs that score one generated token each (the per-token view)
    files: str = ""  # where the weights are when `path` is an adapter's spec (a directory or hub id); "" = `path`

    @property
    def directory(self) -> Path:
        """The model's files: its directory (for a hub model, a path that does not exist)."""
        return Path(self.files or self.path)
    settings: dict[str, Any] = field(default_factory=dict, compare=False)  # the adapter's, shown with every result

    @property
    def fingerprint(self) -> str:
        """What stored results are keyed by: the weights' fingerprint, with the backend named unless float32."""
        weights = self.weights_fingerprint
        return weights if self.backend == "float32" else f"{weights}~{self.backend}"

    @property
    def weights_fingerprint(self) -> str:
        """SHA-256 over parameter names and values: two models with equal weights share it. A described model
        (no weights here) has the fingerprint a worker recorded for its files, or a placeholder no stored
        result carries until one has."""
        if self._fingerprint is None and self.model is None:
            return f"unmeasured-{hashlib.sha256(self.signature.encode()).hexdigest()[:12]}"
        if self._fingerprint is None:
            digest = hashlib.sha256()
            for key, tensor in sorted(self.model.state_dict().items()):
                digest.update(key.encode())
                digest.update(tensor.detach().to("cpu").contiguous().numpy().tobytes())
            self._fingerprint = digest.hexdigest()[:16]
        return self._fingerprint

    @property
    def has_weights(self) -> bool:
        return self.model is not None

    @property
    def architecture(self) -> torch.nn.Module | None:
        """The module tree, for checks of layout (which layers, which projections), with or without weights."""
        return self.model if self.model is not None else self.skeleton

    def with_fingerprint(self, fingerprint: str | None) -> LoadedModel:
        """This description with the fingerprint a worker recorded for its weights (None: none recorded yet)."""
        return replace(self, _fingerprint=fingerprint)

    def with_backend(self, backend: str) -> LoadedModel:
        """The same weights, tokenizer and lock, its passes run through `backend` (stored apart from float32)."""
        return replace(self, backend=backend)

    def with_model(self, model: Any) -> LoadedModel:
        """The same tokenizer and labels over other weights (e.g. a randomised copy): own fingerprint, own lock."""
        return replace(self, model=model, config=model.config, lock=threading.RLock(), _fingerprint=None)

    @property
    def language(self) -> str:
        """The language of the held-out texts that go with this model: "zh" for one built by `build-default
        --language zh` (or retrained from it), else "en" (its card says so; a hub model has no card here)."""
        try:
            return str(json.loads((self.directory / "rashomon.json").read_text()).get("language", "en"))
        except (OSError, ValueError, AttributeError):
            return "en"

    def describe(self) -> dict[str, Any]:
        described = {"name": self.name, "path": self.path, "labels": self.labels, "source": self.source}
        if self.kind != "sequence_classifier":  # what else defines the explained quantity (template, label words...)
            described |= {"kind": self.kind, **self.settings}
        return described


# Where the stack of transformer blocks lives, for the common encoder architectures.
ENCODER_LAYER_PATHS = ("bert.encoder.layer", "roberta.encoder.layer", "distilbert.transformer.layer",
                       "deberta.encoder.layer", "electra.encoder.layer", "albert.encoder.albert_layer_groups")


def encoder_layer_path(model: torch.nn.Module) -> str | None:
    """The dotted path of the model's list of transformer blocks, or None for an unknown architecture."""
    for path in ENCODER_LAYER_PATHS:
        try:
            model.get_submodule(path)
        except AttributeError:
            continue
        return path
    return None


def final_linear(model: torch.nn.Module) -> torch.nn.Linear:
    """The last linear layer that outputs one value per label: the classifier whose input is the
    representation training-data attribution works in (BERT's pooled vector, RoBERTa's dense output)."""
    labels = int(model.config.num_labels)
    found = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m.out_features == labels]
    if not found:
        raise ModelLoadError(f"No final linear layer with {labels} outputs in this model.")
    return found[-1]


def load_weights(loaded: LoadedModel, path: str) -> LoadedModel:
    """`loaded`'s tokenizer and labels over the weights in `path` (a training checkpoint directory)."""
    if Path(path).resolve() == Path(loaded.path).resolve():
        return loaded
    try:
        model = AutoModelForSequenceClassification.from_pretrained(path, attn_implementation="eager")
    except Exception as exc:
        raise ModelLoadError(f"Could not load the checkpoint in {path}: {_first_line(exc)}") from exc
    return loaded.with_model(model.to(loaded.device).eval())


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _labels_from_config(config: Any) -> list[str]:
    id2label = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    return [id2label.get(i, f"LABEL_{i}") for i in range(config.num_labels)]


def _resolve(spec: str | None) -> tuple[str, Path, bool, Any]:
    """(spec, local path, whether it is a local directory, config), or a one-sentence ModelLoadError."""
    settings = load_settings()
    spec = spec or settings.resolved_model
    local = Path(spec).expanduser()
    is_local = local.exists()
    if not is_local and (spec.startswith(("/", ".", "~")) or os.sep in spec and spec.count("/") > 1):
        if Path(spec).expanduser() == settings.default_model_dir:
            raise ModelLoadError(
                f"The default model has not been built yet (expected in {spec}); "
                "run `rashomon model build-default` or use the button on the home page."
            )
        raise ModelLoadError(f"No model directory at {spec}.")
    try:
        config = AutoConfig.from_pretrained(str(local) if is_local else spec)
    except Exception as exc:  # transformers raises OSError/ValueError with long texts
        if is_local:
            raise ModelLoadError(f"{spec} is not a readable model directory (no valid config.json): {_first_line(exc)}") from exc
        raise ModelLoadError(
            f"Could not find model '{spec}': it is not a local directory and the Hugging Face hub "
            "does not have it or cannot be reached (offline?)."
        ) from exc
    return spec, local, is_local, config


def _tokenizer(spec: str, where: str) -> Any:
    try:
        tokenizer = AutoTokenizer.from_pretrained(where)
    except Exception as exc:
        raise ModelLoadError(f"Could not load the tokenizer of '{spec}': {_first_line(exc)}") from exc
    if not getattr(tokenizer, "is_fast", False):
        raise ModelLoadError(f"'{spec}' has no fast tokenizer; character offsets need one.")
    return tokenizer


def _model(spec: str, local: Path, is_local: bool, config: Any, tokenizer: Any, model: Any) -> LoadedModel:
    from core.engine.fingerprints import weights_signature

    card_path = local / "README.md" if is_local else None
    card = card_path.read_text(encoding="utf-8") if card_path and card_path.exists() else ""
    max_length = min(int(getattr(tokenizer, "model_max_length", 512) or 512),
                     int(getattr(config, "max_position_embeddings", 512) or 512))
    return LoadedModel(
        name=_display_name(spec, local if is_local else None),
        path=str(local.resolve()) if is_local else spec,
        source="local directory" if is_local else "Hugging Face hub",
        model=model,
        tokenizer=tokenizer,
        labels=_labels_from_config(config),
        device=pick_device() if model is not None else torch.device("cpu"),
        max_length=max_length,
        card=card,
        signature=weights_signature(spec, local if is_local else None, config),
        config=config,
    )


def _adapter_for(spec: str | None) -> tuple[Any, dict[str, Any]] | None:
    """The adapter and settings a `KIND:{...}` spec names, or None for a sequence classifier's hub id or path."""
    from core.engine.adapters import SEQUENCE_CLASSIFIER, AdapterSpecError, adapters, split_spec

    try:
        kind, settings = split_spec(spec or load_settings().resolved_model)
    except AdapterSpecError as exc:
        raise ModelLoadError(str(exc)) from exc
    return None if kind == SEQUENCE_CLASSIFIER else (adapters()[kind], settings)


def describe_model(spec: str | None = None) -> LoadedModel:
    """What a page needs to know of `spec` without its weights: labels, window, tokenizer, card, and the
    signature of its weight files. Reads the configuration and the tokenizer only; runs nothing."""
    adapter = _adapter_for(spec)
    if adapter is not None:
        return adapter[0].describe(adapter[1])
    return describe_classifier(spec)


def describe_classifier(spec: str | None = None) -> LoadedModel:
    """`describe_model` for a sequence classifier (hub id or directory)."""
    spec, local, is_local, config = _resolve(spec)
    if not int(getattr(config, "num_labels", 0) or 0):
        raise ModelLoadError(f"'{spec}' declares no labels ({config.model_type}).")
    described = _model(spec, local, is_local, config, _tokenizer(spec, str(local) if is_local else spec), None)
    try:  # no memory and no numbers: the layout alone, for the methods' compatibility checks
        with torch.device("meta"):
            skeleton = AutoModelForSequenceClassification.from_config(config, attn_implementation="eager")
    except Exception:  # an architecture transformers cannot build here: checks that need the layout say so
        skeleton = None
    return replace(described, skeleton=skeleton)


def load_model(spec: str | None = None, *, allow_new_head: bool = False, record: bool = True) -> LoadedModel:
    """Load `spec` (hub id or directory; default: RASHOMON_MODEL) on GPU when present, else CPU.

    `allow_new_head=True` accepts an encoder without a trained classification head (the head is
    freshly initialised); otherwise such a model is refused as "not a classifier". Every process that loads
    weights records their fingerprint in the configured database (`record=False`: not), so that the pages,
    which never load weights, find whatever it stores under them. `spec` may name another kind of model
    (`KIND:{...}`, core/engine/adapters): its adapter loads it.
    """
    adapter = _adapter_for(spec)
    if adapter is not None:
        loaded = adapter[0].load(adapter[1])
    else:
        loaded = load_classifier(spec, allow_new_head=allow_new_head)
    if counters.enabled():  # tests that prove where model work runs
        counters.watch(loaded.model)
    if record:
        from core.engine.fingerprints import remember_where_configured

        remember_where_configured(loaded)
    return loaded


def load_classifier(spec: str | None = None, *, allow_new_head: bool = False) -> LoadedModel:
    """`load_model` for a sequence classifier (hub id or directory), without recording its fingerprint."""
    spec, local, is_local, config = _resolve(spec)
    where = str(local) if is_local else spec
    tokenizer = _tokenizer(spec, where)
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            where, attn_implementation="eager", output_loading_info=True
        )
    except ValueError as exc:
        raise ModelLoadError(f"'{spec}' is not a sequence-classification model ({config.model_type}): {_first_line(exc)}") from exc
    except Exception as exc:
        raise ModelLoadError(f"Could not load model '{spec}': {_first_line(exc)}") from exc
    fresh_head = [k for k in info.get("missing_keys", []) if "classifier" in k or "score" in k]
    if fresh_head and not allow_new_head:
        raise ModelLoadError(
            f"'{spec}' is not a classifier: it has no trained classification head "
            f"(missing {', '.join(sorted(fresh_head)[:2])})."
        )
    model.to(pick_device()).eval()
    return _model(spec, local, is_local, model.config, tokenizer, model)


def _display_name(spec: str, local: Path | None) -> str:
    if local is None:
        return spec
    meta = local / "rashomon.json"
    if meta.exists():
        try:
            return json.loads(meta.read_text())["name"]
        except (ValueError, KeyError):
            pass
    return local.name


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
