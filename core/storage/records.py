"""Results stored as `CheckRecord`s under a key (searches, training-data attributions, error groups, model
diffs): the key leads the stored JSON, so a prefix match finds a record without parsing the others."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import col, select

from core.storage.db import session_scope
from core.storage.schema import CheckRecord

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel

T = TypeVar("T")


def find_keyed(engine: Engine, kind: str, fingerprint: str, key: str) -> dict[str, Any] | None:
    """The newest stored result of `kind` for this model and key, or None."""
    with session_scope(engine) as session:
        record = session.exec(select(CheckRecord).where(
            CheckRecord.kind == kind, CheckRecord.model_fingerprint == fingerprint,
            col(CheckRecord.payload).startswith(json.dumps({"key": key})[:-1], autoescape=True))
            .order_by(col(CheckRecord.id).desc())).first()
        return json.loads(record.payload)["result"] if record is not None else None


def save_keyed(engine: Engine, kind: str, model_name: str, fingerprint: str, key: str, result: dict[str, Any]) -> None:
    with session_scope(engine) as session:
        session.add(CheckRecord(kind=kind, model_name=model_name, model_fingerprint=fingerprint,
                                payload=json.dumps({"key": key, "result": result}, ensure_ascii=False)))


def stored_or_computed(engine: Engine, kind: str, loaded: LoadedModel, key: str, compute: Callable[[], T], *,
                       encode: Callable[[T], dict[str, Any]], decode: Callable[[dict[str, Any]], T],
                       fresh: bool = False, only_stored: bool = False) -> T | None:
    """The stored result of `kind` for this model's weights and `key`, or `compute()` stored under them; with
    `only_stored` nothing is computed (None when nothing is stored), with `fresh` the store is not read."""
    if not fresh and (stored := find_keyed(engine, kind, loaded.fingerprint, key)) is not None:
        return decode(stored)
    if only_stored:
        return None
    result = compute()
    save_keyed(engine, kind, loaded.name, loaded.fingerprint, key, encode(result))
    return result
