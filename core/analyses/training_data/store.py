"""Stored training-data attributions: one record per (model, training set, input, target, k, method,
options), so a page reload, a share link or a repeated CLI call costs no model work."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine
from sqlmodel import col, select

from core.analyses.training_data.attribute import DEFAULT_METHODS, attribute
from core.analyses.training_data.registry import data_method
from core.analyses.training_data.retraining import LdsResult, RemovalResult
from core.analyses.training_data.training_sets import TrainingSet
from core.engine.modelling import LoadedModel
from core.engine.runner import ProgressFn
from core.explanation import TrainingAttribution
from core.storage.db import session_scope
from core.storage.provenance import saw
from core.storage.records import find_keyed, save_keyed
from core.storage.schema import CheckRecord, sample_now

KIND = "training-attribution"


def _key(loaded: LoadedModel, training: TrainingSet, text: str, target: str | None, k: int, method: str,
         params: dict[str, Any]) -> str:
    plan = json.dumps([loaded.fingerprint, training.sha256, text, target or "", k, method, params], sort_keys=True)
    return hashlib.sha256(plan.encode()).hexdigest()


def stored_attributions(engine: Engine, loaded: LoadedModel, training: TrainingSet, text: str,
                        methods: Sequence[str] = DEFAULT_METHODS, *, target: str | None = None, k: int = 10,
                        params: dict[str, dict[str, Any]] | None = None, fresh: bool = False, only_stored: bool = False,
                        progress: ProgressFn | None = None) -> tuple[list[TrainingAttribution], bool]:
    """(results in `methods` order, whether all came from the store). Missing ones are computed together."""
    params = params or {}
    keys = {m: _key(loaded, training, text, target, k, m, data_method(m).resolve(params.get(m))) for m in methods}
    found = {} if fresh else {m: TrainingAttribution.from_dict(r) for m in methods
                              if (r := find_keyed(engine, KIND, loaded.fingerprint, keys[m])) is not None}
    missing = [m for m in methods if m not in found]
    if missing and only_stored:
        return [found[m] for m in methods if m in found], False
    if missing:
        computed = [replace(r, sample=sample_now()) for r in attribute(
            loaded, training, text, missing, target=target, k=k, params={m: params[m] for m in missing if m in params},
            progress=progress)]
        for result in computed:
            save_keyed(engine, KIND, loaded.name, loaded.fingerprint, keys[result.method], result.to_dict())
        found |= {r.method: r for r in computed}
    return [found[m] for m in methods], not missing


RETRAINING_KINDS = ("datamodeling", "removal")


def save_retraining(engine: Engine, loaded: LoadedModel, training: TrainingSet, result: LdsResult | RemovalResult) -> int:
    kind = "datamodeling" if isinstance(result, LdsResult) else "removal"
    with session_scope(engine) as session:
        record = CheckRecord(kind=kind, model_name=loaded.name, model_fingerprint=loaded.fingerprint,
                             payload=json.dumps({"training_sha256": training.sha256, "result": result.to_dict()},
                                                ensure_ascii=False))
        session.add(record)
        session.flush()
        saw("check_record", record.id, record.requested_by, record.created_at)
        return int(record.id)


def retraining_checks(engine: Engine, loaded: LoadedModel, training: TrainingSet) -> list[LdsResult | RemovalResult]:
    """Stored retraining checks of this model and training set, newest first."""
    with session_scope(engine) as session:
        records = session.exec(select(CheckRecord).where(
            col(CheckRecord.kind).in_(RETRAINING_KINDS), CheckRecord.model_fingerprint == loaded.fingerprint)
            .order_by(col(CheckRecord.id).desc())).all()
        payloads = [(r.kind, json.loads(r.payload)) for r in records]
    return [(LdsResult if kind == "datamodeling" else RemovalResult).from_dict(p["result"])
            for kind, p in payloads if p["training_sha256"] == training.sha256]
