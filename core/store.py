"""Stored explanations: asking again for the same thing returns the stored result at once.

A result is keyed by model fingerprint (a hash of the weights, so a retrained model never reuses
stale results), the text's SHA-256, the method, its resolved parameters and the target label.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core.db import session_scope
from core.explainers import ProgressFn, explain_prepared, get_method, resolve_target
from core.explanation import Explanation, text_sha256
from core.runner import ModelRunner
from core.schema import ExplanationRecord


@dataclass(frozen=True)
class StoredExplanation:
    explanation: Explanation
    cached: bool


def params_key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True, separators=(",", ":"))


def explain_stored(
    engine: Engine,
    runner: ModelRunner,
    text: str,
    method: str,
    target: str | int | None = None,
    params: dict[str, Any] | None = None,
    *,
    fresh: bool = False,
    only_stored: bool = False,
    progress: ProgressFn | None = None,
) -> StoredExplanation | None:
    """`core.explainers.explain`, through the store: a stored result unless `fresh`.

    With `only_stored=True` nothing is computed: the stored result, or None.
    """
    from core.explainers import explain  # validation lives there; reuse it for the error messages

    spec = get_method(method)
    resolved = spec.resolve(params)
    if not text or not text.strip():
        return StoredExplanation(explain(runner, text, method, target, params), False)  # raises the clear error
    prepared = runner.prepare(text)
    base_key = dict(model_fingerprint=runner.loaded.fingerprint, text_sha256=text_sha256(prepared.text),
                    method=method, params_key=params_key(resolved))
    # "" stands for "the predicted label": for a fixed model and text it is fixed too, so a stored
    # result for it comes back without running the model at all.
    requested = "" if target is None or target == "" else str(target)
    if not fresh and (stored := _lookup(engine, {**base_key, "target": requested})):
        return stored
    probabilities = runner.probabilities([prepared.input_ids])[0]
    target_label = runner.loaded.labels[resolve_target(runner, target, probabilities)]
    if not fresh and requested != target_label and (stored := _lookup(engine, {**base_key, "target": target_label})):
        return stored
    if only_stored:
        return None
    result = explain_prepared(runner, prepared, spec, target_label, resolved, progress or (lambda f, m: None))
    for key_target in [target_label] + ([""] if requested == "" else []):
        _save(engine, runner, {**base_key, "target": key_target}, result)
    return StoredExplanation(result, False)


def _lookup(engine: Engine, key: dict[str, str]) -> StoredExplanation | None:
    with session_scope(engine) as session:
        record = session.exec(select(ExplanationRecord).filter_by(**key)).first()
        return StoredExplanation(Explanation.from_dict(json.loads(record.payload)), True) if record else None


def _save(engine: Engine, runner: ModelRunner, key: dict[str, str], result: Explanation) -> None:
    with session_scope(engine) as session:
        record = session.exec(select(ExplanationRecord).filter_by(**key)).first()
        if record is None:
            record = ExplanationRecord(model_name=runner.loaded.name, **key, payload="", seconds=0, forward_passes=0)
        record.payload = result.to_json()
        record.seconds = result.seconds
        record.forward_passes = result.forward_passes
        session.add(record)
        try:
            session.flush()
        except IntegrityError:  # another process stored the same result meanwhile; theirs is as good
            session.rollback()


def stored_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        # Results for "the predicted label" are stored twice (under "" and the label): count one.
        return len(session.exec(select(ExplanationRecord.id).where(ExplanationRecord.target != "")).all())
