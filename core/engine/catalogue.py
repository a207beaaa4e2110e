"""The models a server offers: chosen by name, never by a path or hub id typed into an address.

A visitor of a shared link must not make the server open a path or download a hub model. The server's models
are the configured one (`default`), those named in `RASHOMON_MODELS` (comma-separated `name=hub-id-or-path`)
and the versions it built under RASHOMON_HOME/models; links carry `model=NAME`. The CLI, run by someone who
already has the machine, keeps taking paths and hub ids.
"""

from __future__ import annotations

import re

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
