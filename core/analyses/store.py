"""Stored explanations: asking again for the same thing returns the stored result at once.

A result is keyed by model fingerprint (a hash of the weights, so a retrained model never reuses
stale results), the text's SHA-256, the method, its resolved parameters and the target label.
The request is validated once, by `ExplainRequest.build`, exactly as for a direct explanation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import func, select

from core.engine.runner import ModelRunner, ProgressFn
from core.explanation import Explanation
from core.methods.explain import PREDICTED, ExplainRequest, run_request, target_index
from core.storage.db import session_scope
from core.storage.schema import ExplanationRecord


@dataclass(frozen=True)
class StoredExplanation:
    explanation: Explanation
    cached: bool


def explain_stored(engine: Engine, runner: ModelRunner, text: str, method: str, target: str | int | None = None,
                   params: dict[str, Any] | None = None, *, fresh: bool = False, only_stored: bool = False,
                   progress: ProgressFn | None = None) -> StoredExplanation | None:
    """`core.methods.explain.explain`, through the store: a stored result unless `fresh`.

    With `only_stored=True` nothing is computed: the stored result, or None.
    """
    request = ExplainRequest.build(runner, text, method, target, params)
    return run_stored(engine, runner, request, fresh=fresh, only_stored=only_stored, progress=progress)


def run_stored(engine: Engine, runner: ModelRunner, request: ExplainRequest, *, fresh: bool = False,
               only_stored: bool = False, progress: ProgressFn | None = None) -> StoredExplanation | None:
    if not fresh and (stored := lookup(engine, request)):
        return stored
    if request.target == PREDICTED:
        # The predicted label costs one (cached) pass; a result stored under it serves this request too.
        probabilities = runner.probabilities([request.prepared.input_ids])[0]
        label = runner.loaded.labels[target_index(runner, request, probabilities)]
        if not fresh and (stored := lookup(engine, request, label)):
            return stored
    if only_stored:
        return None
    result = run_request(runner, request, progress)
    for key_target in [result.target] + ([PREDICTED] if request.target == PREDICTED else []):
        _save(engine, runner, _key(request, key_target), result)
    return StoredExplanation(result, False)


def lookup(engine: Engine, request: ExplainRequest, target: str | None = None) -> StoredExplanation | None:
    """The stored result for `request` (under `target` instead of its own target, if given); no model pass.

    PREDICTED ("") stands for "the predicted label": for a fixed model and text it is fixed too, so
    a result stored under it comes back without running the model at all.
    """
    key = _key(request, request.target if target is None else target)
    with session_scope(engine) as session:
        record = session.exec(select(ExplanationRecord).filter_by(**key)).first()
        return StoredExplanation(Explanation.from_dict(json.loads(record.payload)), True) if record else None


def _key(request: ExplainRequest, target: str) -> dict[str, str]:
    return dict(model_fingerprint=request.model_fingerprint, text_sha256=request.text_sha256,
                method=request.method.name, params_key=request.params_key, target=target)


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
        return int(session.exec(select(func.count(ExplanationRecord.id)).where(ExplanationRecord.target != "")).one())
