"""Results stored as `CheckRecord`s under a key (searches, training-data attributions, error groups, model
diffs): the key leads the stored JSON, so a prefix match finds a record without parsing the others."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Engine
from sqlmodel import col, select

from core.storage.db import session_scope
from core.storage.provenance import saw
from core.storage.schema import CheckRecord

if TYPE_CHECKING:
    from core.engine.modelling import LoadedModel

T = TypeVar("T")


def _newest_keyed(what, kind: str, fingerprint: str, key: str):
    """The statement selecting `what` of the newest stored result of `kind` for this model and key."""
    return (select(what).where(
        CheckRecord.kind == kind, CheckRecord.model_fingerprint == fingerprint,
        col(CheckRecord.payload).startswith(json.dumps({"key": key})[:-1], autoescape=True))
        .order_by(col(CheckRecord.id).desc()))


def keyed_record_id(engine: Engine, kind: str, fingerprint: str, key: str) -> int | None:
    """The id of the newest stored result of `kind` for this model and key (what a note on it names), or None."""
    with session_scope(engine) as session:
        return session.exec(_newest_keyed(CheckRecord.id, kind, fingerprint, key)).first()


def find_keyed(engine: Engine, kind: str, fingerprint: str, key: str, *, is_result: bool = True) -> dict[str, Any] | None:
    """The newest stored result of `kind` for this model and key, or None. `is_result=False`: bookkeeping (pass
    times, fingerprints), not a result a person asked for, so it is not named as one (`provenance`)."""
    with session_scope(engine) as session:
        record = session.exec(_newest_keyed(CheckRecord, kind, fingerprint, key)).first()
        if record is None:
            return None
        if is_result:
            saw("check_record", record.id, record.requested_by, record.created_at)
        return json.loads(record.payload)["result"]


def save_keyed(engine: Engine, kind: str, model_name: str, fingerprint: str, key: str, result: dict[str, Any], *,
               is_result: bool = True) -> None:
    with session_scope(engine) as session:
        record = CheckRecord(kind=kind, model_name=model_name, model_fingerprint=fingerprint,
                             payload=json.dumps({"key": key, "result": result}, ensure_ascii=False))
        session.add(record)
        session.flush()
        if is_result:
            saw("check_record", record.id, record.requested_by, record.created_at)


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
