"""The models a server offers: chosen by name, never by a path or hub id typed into an address.

A visitor of a shared link must not make the server open a path or download a hub model. The server's models
are the configured one (`default`), those named in `RASHOMON_MODELS` (comma-separated `name=hub-id-or-path`)
and the versions it built under RASHOMON_HOME/models; links carry `model=NAME`. The CLI, run by someone who
already has the machine, keeps taking paths and hub ids.

Causal LMs are entries too, each carrying what makes it explainable (core/engine/adapters): a classifier's template
and label words, or a continuation model's template (the continuation and contrast come with each request). They
come from `RASHOMON_HOME/language_models.json` (`rashomon model add-lm`) and from the LMs Rashomon built under
`RASHOMON_HOME/language_models/` (`rashomon model build-tiny-lm`: one classifier and one continuation entry each).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from core.engine.modelling import ModelLoadError
from core.storage.settings import load_settings

DEFAULT_NAME = "default"
CHINESE_NAME = "default-zh"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def configured_models(value: str) -> dict[str, str]:
    """`name=spec` pairs from RASHOMON_MODELS' value; a malformed entry is a one-sentence error."""
    models: dict[str, str] = {}
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        name, _, spec = entry.partition("=")
        name, spec = name.strip(), spec.strip()
        if not _NAME.fullmatch(name) or not spec:
            raise ModelLoadError(f"RASHOMON_MODELS entry '{entry[:80]}' is not name=hub-id-or-path "
                                 "(names: letters, digits, '.', '_', '-').")
        models[name] = spec
    return models


def model_choices() -> dict[str, str]:
    """Every model this server offers: name -> hub id or path (the configured one first, as `default`)."""
    from core.engine.default_model import model_versions

    settings = load_settings()
    choices = {DEFAULT_NAME: settings.resolved_model}
    for name, spec in configured_models(settings.models).items():
        choices.setdefault(name, spec)
    chinese = str(settings.chinese_model_dir)
    for name, spec in language_models().items():
        choices.setdefault(name, spec)
    for version in model_versions():
        name = version["path"].rstrip("/").rsplit("/", 1)[-1]
        if version["path"] == chinese:
            name = CHINESE_NAME  # the Chinese default model (`build-default --language zh`)
        if version["path"] not in choices.values():
            choices.setdefault(name, version["path"])
    return choices


def resolve(name: str) -> str:
    """The hub id or path behind a model name ("" is the configured model), or a one-sentence error."""
    choices = model_choices()
    name = name.strip() or DEFAULT_NAME
    if name not in choices:
        raise ModelLoadError(f"There is no model named '{name[:80]}' on this server; its models are "
                             f"{', '.join(choices)}.")
    return choices[name]


def name_for(spec: str) -> str:
    """The name a link gives the model at `spec` ("" for the configured model or one the server does not list)."""
    settings = load_settings()
    if not spec or spec == settings.resolved_model:
        return ""
    return next((name for name, path in model_choices().items() if path == spec), "")


def language_models_file() -> Path:
    return load_settings().home / "language_models.json"


def built_language_models_dir() -> Path:
    return load_settings().home / "language_models"


def language_models() -> dict[str, str]:
    """The causal-LM entries: added ones (name -> adapter spec), then two per LM built here."""
    from core.engine.adapters import make_spec

    entries: dict[str, str] = {}
    try:
        added = json.loads(language_models_file().read_text(encoding="utf-8"))
    except FileNotFoundError:
        added = {}
    except ValueError as exc:
        raise ModelLoadError(f"{language_models_file()} is not valid JSON: {exc}.") from exc
    for name, spec in added.items() if isinstance(added, dict) else ():
        if _NAME.fullmatch(str(name)) and isinstance(spec, str):
            entries[str(name)] = spec
    for card_path in sorted(built_language_models_dir().glob("*/rashomon.json")):
        try:
            card = json.loads(card_path.read_text(encoding="utf-8"))
        except ValueError:
            continue
        base = card_path.parent.name
        entries.setdefault(f"{base}-classifier", make_spec("lm_classifier", {
            "model": str(card_path.parent), "template": card["template"], "labels": card["labels"]}))
        entries.setdefault(f"{base}-continuation", make_spec("lm_continuation", {
            "model": str(card_path.parent), "template": card["template"], "continuation": ""}))
    return entries


def add_language_model(name: str, spec: str) -> None:
    """Offer `spec` (an adapter spec, checked by the caller) under `name` on this server's model list."""
    if not _NAME.fullmatch(name):
        raise ModelLoadError(f"'{name[:80]}' is not a model name (letters, digits, '.', '_', '-').")
    path = language_models_file()
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        entries = {}
    entries[name] = spec
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entries, indent=2, ensure_ascii=False), encoding="utf-8")
