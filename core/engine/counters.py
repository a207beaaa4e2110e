"""Counting a process's model loads and forward passes, to prove where model work runs.

With RASHOMON_COUNT_PASSES=1 every model `load_model` returns is watched: each load and each batch
through its embeddings (every forward pass, the first-token shortcut and gradient passes on embeddings
included) is added to `RASHOMON_HOME/counters/<pid>.json`. The browser suite runs its server this
way and checks that the server process made no pass: model work belongs to the workers.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

ENV = "RASHOMON_COUNT_PASSES"
_counts = {"loads": 0, "passes": 0}
_lock = threading.Lock()


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def counters_file(pid: int | None = None) -> Path:
    from core.storage.settings import load_settings

    return load_settings().home / "counters" / f"{pid or os.getpid()}.json"


def count(what: str, n: int = 1) -> None:
    with _lock:
        _counts[what] += n
        path = counters_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(_counts))
        partial.replace(path)  # a reader never sees half a file


def read(pid: int) -> dict[str, int]:
    """What process `pid` counted (zeros when it never loaded a model)."""
    path = counters_file(pid)
    return json.loads(path.read_text()) if path.is_file() else {"loads": 0, "passes": 0}


def _batch(args: tuple, kwargs: dict[str, Any]) -> int:
    for value in (*args, *kwargs.values()):
        shape = getattr(value, "shape", None)
        if shape is not None and len(shape) >= 1:
            return int(shape[0])
    return 1


def watch(model: Any) -> None:
    """Count this model's load, and every batch that goes through its embeddings from now on."""
    count("loads")
    base = getattr(model, "base_model", model)
    module = getattr(base, "embeddings", None) or model
    module.register_forward_pre_hook(lambda _module, args, kwargs: count("passes", _batch(args, kwargs)),
                                     with_kwargs=True)
