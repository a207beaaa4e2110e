"""Plugin modules named in an environment variable (methods: RASHOMON_PLUGINS; task kinds:
RASHOMON_TASK_PLUGINS): each is imported and registers what it adds. Worker processes inherit the variables,
so they know what the server that submitted the work knows."""

from __future__ import annotations

import importlib
import os


def import_plugins(variable: str, names: str | None, error: type[Exception]) -> list[str]:
    """Import each module in `names` (comma-separated; default: the variable's value); the modules imported.
    A module that cannot be imported is `error` with one sentence."""
    modules = [n.strip() for n in (os.environ.get(variable, "") if names is None else names).split(",") if n.strip()]
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise error(f"{variable} names '{module}', which cannot be imported: {exc}") from exc
    return modules
