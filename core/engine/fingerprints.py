"""Which weights fingerprint belongs to which weight files.

A fingerprint hashes the weights themselves, so only a process that loaded them can compute it. The workers
record it under the files' signature when they load a model; the Streamlit server, which only describes a
model (configuration and tokenizer), looks the fingerprint up by the same signature to find what the workers
stored. Until a worker has loaded the files, nothing is stored under their weights, and the lookup says so.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlmodel import col, select

from core.storage.db import session_scope
from core.storage.records import save_keyed
from core.storage.schema import CheckRecord

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel

KIND = "weights"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weights_signature(spec: str, local: Path | None, config: Any) -> str:
    """The weight files as they are now: names, sizes and modification times in a local directory (rewriting
    a file changes it), or the hub id and the revision the configuration came from."""
    if local is None:
        return f"hub:{spec}@{getattr(config, '_commit_hash', None) or 'unknown'}"
    files = sorted(p for p in local.resolve().iterdir() if p.is_file() and p.suffix in WEIGHT_SUFFIXES)
    listing = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return "dir:" + hashlib.sha256(json.dumps([str(local.resolve()), listing]).encode()).hexdigest()


def remember(engine: Engine, loaded: LoadedModel) -> None:
    """Record the fingerprint of a model whose weights this process holds (once per signature and weights)."""
    if not loaded.has_weights or not loaded.signature:
        return
    if known_fingerprint(engine, loaded.signature) != loaded.weights_fingerprint:
        save_keyed(engine, KIND, loaded.name, loaded.weights_fingerprint, loaded.signature, {"path": loaded.path}, is_result=False)


def remember_where_configured(loaded: LoadedModel) -> None:
    """`remember` in the database the settings name; a process without a reachable database records nothing
    (a model loads without one)."""
    from core.storage.db import DatabaseUnavailable, get_engine

    with contextlib.suppress(DatabaseUnavailable):
        remember(get_engine(), loaded)


def known_fingerprint(engine: Engine, signature: str) -> str | None:
    """The fingerprint recorded for these weight files, or None when no process with the weights has run."""
    with session_scope(engine) as session:
        record = session.exec(select(CheckRecord).where(
            CheckRecord.kind == KIND,
            col(CheckRecord.payload).startswith(json.dumps({"key": signature})[:-1], autoescape=True))
            .order_by(col(CheckRecord.id).desc())).first()
        return record.model_fingerprint if record is not None else None
